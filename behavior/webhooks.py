"""Signed webhooks to the shop's own services (its helpdesk, its e-mail or messaging service), to public
addresses only.

Each request carries `X-Foresight-Signature: t=<unix time>,v1=<hex>`, the HMAC-SHA256 with the shared
secret of `<t>.` followed by the body: a receiver recomputes it and refuses old timestamps (replays).

Whoever may edit a webhook's URL could otherwise make Foresight's workers post to the machines behind the
shop's firewall (a database console on 127.0.0.1, cloud metadata on 169.254.169.254, an intranet page on
10.0.0.5) and read their answers back where errors are kept. The URL is checked when it is saved, and again
on every connection, against the address the socket actually reached: DNS can change after the save, or
answer differently between a check and the connection. FORESIGHT_WEBHOOKS_ALLOW_PRIVATE turns both checks
off, for services on the shop's own network.

An egress proxy taken from the environment (HTTPS_PROXY) connects on the workers' behalf, so only the
check on saving applies there; such a proxy should filter destinations itself.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import re
import socket
import time
import unicodedata
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from behavior.conf import foresight_settings

SIGNATURE_HEADER = "X-Foresight-Signature"
REQUEST_TIMEOUT = (3.05, 10)  # seconds to connect, and to wait for the answer
# Of an answer, a sender reads at most this much (a {"reference": ...} fits many times over) and keeps an
# excerpt of EXCERPT characters as the last error, which people read: a receiver's page is no one's business.
ANSWER_BYTES = 16 * 1024
EXCERPT = 200
MAX_BACKOFF = timedelta(hours=1)


class DestinationRefused(Exception):
    """A webhook URL leads to an address that is not public."""


def _not_public(address: str) -> str | None:
    """What kind of non-public address this is ("loopback", "private", ...), or None for a public one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) is no part of the address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    # Shared address space (100.64.0.0/10, carrier NAT) and the like are neither private nor global.
    return None if ip.is_global else "non-public"


def refusal(url: str) -> str | None:
    """Why the URL may not be used, or None when it may.

    A host name is resolved, and refused when any of its addresses is not public. A name that does not
    resolve (yet) is let through: nothing can be reached by it, and each connection is checked again.
    """
    if foresight_settings.WEBHOOKS_ALLOW_PRIVATE:
        return None
    host = urlsplit(url).hostname
    if not host:
        return None
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError):
        return None
    for address in sorted(addresses):
        kind = _not_public(address)
        if kind:
            return _explain(host, address, kind)
    return None


def _explain(host: str, address: str, kind: str) -> str:
    where = address if host == address else f"{host} at {address}"
    article = "an" if kind[0] in "aeiou" else "a"
    return (f"The URL leads to {where}, {article} {kind} address; webhooks must go to a public one "
            f"(FORESIGHT_WEBHOOKS_ALLOW_PRIVATE=1 allows others).")


class _PublicPeerOnly:
    """Closes a new connection, before anything is sent on it, when its peer is not a public address."""

    host: str

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        address = sock.getpeername()[0]
        kind = _not_public(address)
        if kind:
            sock.close()
            raise DestinationRefused(_explain(self.host, address, kind))
        return sock


class _HTTPConnection(_PublicPeerOnly, HTTPConnection):
    pass


class _HTTPSConnection(_PublicPeerOnly, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _PublicOnlyAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def webhook_session() -> requests.Session:
    """A session for webhooks: its connections raise DestinationRefused at a non-public peer."""
    session = requests.Session()
    if not foresight_settings.WEBHOOKS_ALLOW_PRIVATE:
        adapter = _PublicOnlyAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def post_signed(session: requests.Session, *, url: str, secret: str, body: bytes,
                headers: dict[str, str]) -> tuple[str, bytes]:
    """POST a signed body; returns (the error, "" when a 2xx answered; the answer's first ANSWER_BYTES)."""
    stamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", **headers,
               SIGNATURE_HEADER: f"t={stamp},v1={signature(secret, stamp, body)}"}
    answer = b""
    try:
        with session.post(url, data=body, headers=headers, timeout=REQUEST_TIMEOUT, allow_redirects=False,
                          stream=True) as response:
            answer = next(response.iter_content(ANSWER_BYTES), b"")
        ok = 200 <= response.status_code < 300
        error = "" if ok else f"HTTP {response.status_code}: {answer_excerpt(answer)}".removesuffix(": ")
    except requests.RequestException as failure:
        error = f"{type(failure).__name__}: {failure}"
    except DestinationRefused as refused:
        error = str(refused)
    return error[:500], answer


def backoff(base_seconds: int, attempts: int) -> timedelta:
    """How long to wait after a failed attempt: doubling from `base_seconds`, at most an hour."""
    return min(timedelta(seconds=base_seconds) * 2 ** min(attempts, 20), MAX_BACKOFF)  # 2**20 x base: past the hour


_SCRIPTS = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]*>")


def answer_excerpt(answer: bytes) -> str:
    """The start of an answer as plain text on one line: no markup, no control characters, at most EXCERPT."""
    return plain_text(answer.decode("utf-8", errors="replace"))


def plain_text(text: str, limit: int = EXCERPT) -> str:
    """What a receiver sent, to keep and show: one line of at most `limit` characters, without markup or
    control characters."""
    text = _TAGS.sub(" ", _SCRIPTS.sub(" ", text))
    # Control and format characters (newlines, escapes, bidi overrides) could forge lines or hide text.
    text = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in html.unescape(text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
