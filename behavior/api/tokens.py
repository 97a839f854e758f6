"""Customer tokens: the shop's server vouches that a browser is one customer.

A token is `<expires>.<signature>`: the expiry in Unix seconds, and the hex HMAC-SHA256 of
`<customer id>.<expires>` under the API key's token secret. It needs no library to mint (README:
Python and one line of shell), names no customer (the path does), and cannot be turned to another
customer or key. Tokens living longer than FORESIGHT_CUSTOMER_TOKEN_MAX_AGE are refused, so a leaked
one cannot be good forever.
"""

import hashlib
import hmac
import re
import time

from behavior.conf import foresight_settings


class TokenRefused(Exception):
    pass


# The one form a token is written in, as the README mints it: the expiry without a sign, a space or a leading
# zero, a dot, 64 lowercase hex digits. Anything else is another text, refused before any signature is compared,
# so no second spelling of a token (0<expires>, "<expires>.") is ever the same token. [0-9] is ASCII only.
_TOKEN = re.compile(r"([1-9][0-9]{0,11})\.([0-9a-f]{64})")


def _signature(secret: str, customer_id: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"{customer_id}.{expires}".encode(), hashlib.sha256).hexdigest()


def customer_token(*, secret: str, customer_id: str, lifetime: int = 3600, now: float | None = None) -> str:
    """What a shop's server running Django beside Foresight can call to mint a token."""
    expires = int(now if now is not None else time.time()) + lifetime
    return f"{expires}.{_signature(secret, customer_id, expires)}"


def customer_token_check(token: str, *, secret: str, customer_id: str) -> None:
    """Raise TokenRefused, saying why, unless `token` is a live token for this customer under this secret."""
    written = _TOKEN.fullmatch(token)
    if written is None:
        raise TokenRefused("the customer token is malformed: expected <expires>.<signature>")
    expires, signature = int(written[1]), written[2]
    if not secret or not hmac.compare_digest(signature, _signature(secret, customer_id, expires)):
        raise TokenRefused("the customer token is not signed for this customer with this key's token secret")
    now = time.time()
    if expires <= now:
        raise TokenRefused("the customer token has expired")
    if expires > now + foresight_settings.CUSTOMER_TOKEN_MAX_AGE:
        raise TokenRefused(f"the customer token lives longer than {foresight_settings.CUSTOMER_TOKEN_MAX_AGE} seconds")
