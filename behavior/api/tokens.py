"""Customer tokens: the shop's server vouches that a browser is one customer.

A token is `<expires>.<signature>`: the expiry in Unix seconds, and the hex HMAC-SHA256 of
`<customer id>.<expires>` under the API key's token secret. It needs no library to mint (README:
Python and one line of shell), names no customer (the path does), and cannot be turned to another
customer or key. Tokens living longer than FORESIGHT_CUSTOMER_TOKEN_MAX_AGE are refused, so a leaked
one cannot be good forever.
"""

import hashlib
import hmac
import time

from behavior.conf import foresight_settings


class TokenRefused(Exception):
    pass


def _signature(secret: str, customer_id: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"{customer_id}.{expires}".encode(), hashlib.sha256).hexdigest()


def customer_token(*, secret: str, customer_id: str, lifetime: int = 3600, now: float | None = None) -> str:
    """What a shop's server running Django beside Foresight can call to mint a token."""
    expires = int(now if now is not None else time.time()) + lifetime
    return f"{expires}.{_signature(secret, customer_id, expires)}"


def customer_token_check(token: str, *, secret: str, customer_id: str) -> None:
    """Raise TokenRefused, saying why, unless `token` is a live token for this customer under this secret."""
    expires_text, _, signature = token.partition(".")
    if not (expires_text.isascii() and expires_text.isdigit() and len(expires_text) <= 12 and signature.isascii()):
        raise TokenRefused("the customer token is malformed: expected <expires>.<signature>")
    expires = int(expires_text)
    if not secret or not hmac.compare_digest(signature, _signature(secret, customer_id, expires)):
        raise TokenRefused("the customer token is not signed for this customer with this key's token secret")
    now = time.time()
    if expires <= now:
        raise TokenRefused("the customer token has expired")
    if expires > now + foresight_settings.CUSTOMER_TOKEN_MAX_AGE:
        raise TokenRefused(f"the customer token lives longer than {foresight_settings.CUSTOMER_TOKEN_MAX_AGE} seconds")
