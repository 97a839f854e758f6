"""The shared cache (Redis in production): Lua scripts on its connections, and riding out its outages.

A cache that cannot be reached is given up for CACHE_RETRY_SECONDS, then tried again: meanwhile the API's
throttles count per process and placements are read from the database, instead of every call failing or
waiting on the cache.
"""

import functools
import logging
import time
from typing import NamedTuple

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache
from redis.commands.core import Script

logger = logging.getLogger(__name__)

CACHE_RETRY_SECONDS = 5


class Counter(NamedTuple):
    """A count in the cache (an API throttle's, of one call): its name, lifetime (seconds) and limit."""

    name: str
    lifetime: int
    limit: int

_down_until = 0.0


class CacheUnreachable(RuntimeError):
    """A change that must reach the cache before it commits could not (an erasure: its kept answers)."""


def redis_cache() -> RedisCache | None:
    """The default cache when it is Redis and was not found unreachable in the last few seconds."""
    cache = caches[DEFAULT_CACHE_ALIAS]
    return cache if isinstance(cache, RedisCache) and reachable() else None


def reachable() -> bool:
    """False for a few seconds after the cache failed a call (failed)."""
    return time.time() >= _down_until


def failed(error: Exception) -> None:
    """The cache failed a call: leave it alone for CACHE_RETRY_SECONDS."""
    global _down_until
    logger.warning("Cache unreachable (%s); the API counts its throttles per process and reads placements from"
                   " the database for %d s", type(error).__name__, CACHE_RETRY_SECONDS)
    _down_until = time.time() + CACHE_RETRY_SECONDS


def script(cache: RedisCache, source: str) -> Script:
    """A Lua script run on the cache's own connection pool (EVALSHA; loaded on first use)."""
    return _registered(cache._cache, source)  # type: ignore[attr-defined]  # Django's RedisCacheClient


@functools.lru_cache(maxsize=16)
def _registered(cache_client, source: str) -> Script:
    # One client per process and script. For a call's two throttle counters (CPU, 2-core machine): Django's
    # cache API 1.1 ms (a new client object per operation, EXISTS then INCRBY per counter), a pipeline of
    # SET NX + INCR 0.27 ms, one script 0.17 ms.
    return cache_client.get_client(write=True).register_script(source)


def client(cache: RedisCache):
    """The redis-py client of the cache, for a plain command."""
    return cache._cache.get_client(write=True)  # type: ignore[attr-defined]
