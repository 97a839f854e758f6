"""Logs leave the shop's hands (log shippers, support tools); personal data must not: a filter that masks it, and
the settings line that puts the filter on every handler of a project's logging."""

import copy
import logging
import re

from django.utils.log import DEFAULT_LOGGING


def _spelled_any_way(word: str) -> str:
    """A pattern for `word` with any of its characters percent-encoded (once or more): a server decodes a path
    before routing it, so `/api/v1/%63ustomers/<id>` is served, and an access log quotes it as sent."""
    return "".join(f"(?:{re.escape(c)}|%(?:25)*{ord(c):02x})" for c in word)


# A customer's external id is often an email address; a coupon code is as good as money.
# An id may hold spaces and quotes (log lines quote paths decoded), so it runs to the next "/", "?", the
# " HTTP/1.1" of an access log line, or the end of the message.
_IDENTIFYING_PATH = re.compile(
    rf"({_spelled_any_way('/')}(?:{_spelled_any_way('customers')}|{_spelled_any_way('offers')}){_spelled_any_way('/')})"
    r".+?(?=/|\?|\s+HTTP/|$)",
    re.DOTALL | re.IGNORECASE,
)
# PostgreSQL's error text quotes the rows it was given: a duplicate key's value (DETAIL), the line a COPY was
# loading (CONTEXT), the statement with its values bound (LINE n), the text that is not a number. The error's
# kind and the constraint's name stay.
_DATABASE_ERROR_ROWS = re.compile(r"^(DETAIL|CONTEXT|LINE \d+):.*$|(invalid input syntax for type [\w ]+: ).*$",
                                  re.MULTILINE)


def _redacted(text: str) -> str:
    text = _IDENTIFYING_PATH.sub(r"\1***", text)
    return _DATABASE_ERROR_ROWS.sub(lambda m: f"{m[1]}: ***" if m[1] else f"{m[2]}***", text)


class RedactIdentifiers(logging.Filter):
    """Masks customer ids and coupon codes in the URLs that request and error logs quote, and the rows that
    database errors quote, in messages and tracebacks alike."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _redacted(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            # What a formatter would write, written now: the traceback quotes the database error's text.
            record.exc_text = _redacted(logging.Formatter().formatException(record.exc_info))
        return True


def masked_logging(config: dict | None) -> dict:
    """The project's LOGGING (Django's defaults when it has none) with RedactIdentifiers on every handler: what
    the README's settings line `LOGGING = masked_logging(globals().get("LOGGING"))` sets."""
    masked = copy.deepcopy(config if config is not None else {**DEFAULT_LOGGING, "disable_existing_loggers": False})
    masked.setdefault("filters", {})["foresight_redact"] = {"()": f"{__name__}.RedactIdentifiers"}
    for handler in masked.get("handlers", {}).values():
        handler["filters"] = [*handler.get("filters", []), "foresight_redact"]
    return masked
