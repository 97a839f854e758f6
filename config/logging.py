"""Log filters: logs leave the shop's hands (log shippers, support tools), personal data must not."""

import logging
import re

# A customer's external id is often an email address; a coupon code is as good as money.
# An id may hold spaces and quotes (log lines quote paths decoded), so it runs to the next "/", "?", the
# " HTTP/1.1" of an access log line, or the end of the message.
_IDENTIFYING_PATH = re.compile(r"(/(?:customers|offers)/).+?(?=/|\?|\s+HTTP/|$)", re.DOTALL)


class RedactIdentifiers(logging.Filter):
    """Masks customer ids and coupon codes in the URLs that request and error logs quote."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _IDENTIFYING_PATH.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True
