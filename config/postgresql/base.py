"""Django's PostgreSQL backend, with a health check that costs no round trip.

Django's check of a kept connection is a `SELECT 1` at the start of every request: on the storefront's
placements call, one of its three round trips (throttle, health check, query). A connection the server
has closed (restart, failover, idle kill, `pg_terminate_backend`) has sent its goodbye or an end of file,
so between queries its socket is readable; an idle healthy one has nothing to read. Polling the socket
finds the first without asking the server anything. (A peer gone without closing, a network cut, is
found by neither check: the query then fails as it would have.)
"""

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        try:
            if self.connection is None or self.connection.closed:
                return False
            poller = select.poll()  # not select.select, which cannot take descriptors above 1023
            poller.register(self.connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
            # Something to read between queries is a closing server or a stray notice: either way a new
            # connection is the safe answer.
            return not poller.poll(0)
        except Exception:  # Django's contract: a health check answers, it does not raise
            return False
