"""Where the helpdesk webhook may go: to public addresses only.

Whoever may edit the helpdesk URL could otherwise make Foresight's workers post to the machines behind the
shop's firewall (a database console on 127.0.0.1, cloud metadata on 169.254.169.254, an intranet page on
10.0.0.5) and read their answers back in the outbox. The URL is checked when it is saved, and again on
every connection, against the address the socket actually reached: DNS can change after the save, or answer
differently between a check and the connection. FORESIGHT_HELPDESK_ALLOW_PRIVATE turns both checks off, for
a helpdesk on the shop's own network.

An egress proxy taken from the environment (HTTPS_PROXY) connects on the workers' behalf, so only the
check on saving applies there; such a proxy should filter destinations itself.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from behavior.conf import foresight_settings


class DestinationRefused(Exception):
    """The helpdesk URL leads to an address that is not public."""


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
    if foresight_settings.HELPDESK_ALLOW_PRIVATE:
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
    return (f"The helpdesk URL leads to {where}, {article} {kind} address; the helpdesk must be at a public one "
            f"(FORESIGHT_HELPDESK_ALLOW_PRIVATE=1 allows others).")


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


def helpdesk_session() -> requests.Session:
    """A session for the helpdesk: its connections raise DestinationRefused at a non-public peer."""
    session = requests.Session()
    if not foresight_settings.HELPDESK_ALLOW_PRIVATE:
        adapter = _PublicOnlyAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session
