"""gunicorn's settings for Foresight, from the project folder: `gunicorn -c python:config.gunicorn`.

Worker counts, the address and the access log stay on the command line (`--workers 4 --bind 0.0.0.0:8000
--access-logfile -`); this module makes gunicorn's own logs redact what the app's logs redact.
"""

from gunicorn.glogging import Logger

from behavior.redaction import RedactIdentifiers

wsgi_app = "config.wsgi:application"


class RedactingLogger(Logger):
    """gunicorn's logger, with customer ids and coupon codes masked in the request lines it writes."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.access_log, self.error_log):
            if not any(isinstance(f, RedactIdentifiers) for f in log.filters):  # setup runs again on a reload
                log.addFilter(RedactIdentifiers())


logger_class = RedactingLogger
