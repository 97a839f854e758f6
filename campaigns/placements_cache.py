"""Placements answered from Redis: a shopper's repeat page views cost one Redis round trip and no SQL.

A storefront asks for a customer's placements on every page view, and the answer changes only when
campaigns are evaluated or edited, a coupon is redeemed, a customer's consent changes, or an assignment
expires. So the rendered answer is kept per (customer, slot), and the call's throttle counters and that
answer are read in one Redis script, which also counts the impressions of what it serves.

Staleness is ruled out by stamps, not by lifetimes. Every entry is stored under the stamp
"<generation>/<customer version>" read before the SQL ran, and is served only while both are unchanged
and its earliest assignment expiry has not passed. A change bumps, after its commit, the generation
(anything a campaign changes: every customer) or the customer's version (a redemption, consent, an
erasure); a stamp is a random token, so no bump ever brings an old stamp back. A store is a
check-and-set against the stamp read before the SQL: an answer read before a change committed is never
stored after the change's bump. The customer's version lives in the same hash as their entries, so
Redis can only drop both together. Entries live FORESIGHT_PLACEMENTS_CACHE_SECONDS at most: the bound on
an answer a missed bump (Redis unreachable just then) leaves behind.

Impressions served from here are counted in Redis and added to the assignments in one UPDATE a minute
(impressions_flush; at least once: a worker killed between the commit and the delete counts a batch
twice). Off PostgreSQL or without a Redis cache (the embedded default) nothing is kept and every call
reads and counts in the database, as before.

Measured on the 2-core dev box, 50 clients (bench/api.py): a served entry takes a placements call from
38% of the JSON-404 floor's throughput to the figures in README.md.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection, transaction

from behavior import cache as shared_cache
from behavior.conf import foresight_settings
from campaigns.models import Assignment

logger = logging.getLogger(__name__)

# Above this many customers in one change, every customer's entries are retired instead of each one's.
MAX_CUSTOMERS_BUMPED = 1_000
FLUSH_LOCK_SECONDS = 300  # a flush holds its lock at most this long (a worker killed mid-flush)
# What an unreachable or failing Redis raises (read-only after a failover, out of memory, ...): the call is
# answered from the database instead. Anything else is a fault of this code, and not hidden.
UNREACHABLE = redis.RedisError
MAX_SLOTS = 16  # answers kept per customer: a shopper asking for made-up slots cannot grow Redis without end

# KEYS: the call's throttle counters, then the customer's hash, the generation, impressions, first shown.
# ARGV: the number of counters, each counter's lifetime and limit, then the slot and now (epoch seconds).
# Returns {counts} when a limit is passed (nothing read, nothing counted), {counts, answer} when the entry
# is current, else {counts, false, stamp}: the stamp to store the answer under.
_READ = """
local n = tonumber(ARGV[1])
local counts, over = {}, false
for i = 1, n do
    redis.call('SET', KEYS[i], 0, 'EX', ARGV[2 * i], 'NX')
    counts[i] = redis.call('INCR', KEYS[i])
    if counts[i] > tonumber(ARGV[2 * i + 1]) then over = true end
end
if over then return {counts} end
local entry, slot, now = KEYS[n + 1], ARGV[2 * n + 2], ARGV[2 * n + 3]
local stamp = (redis.call('GET', KEYS[n + 2]) or '') .. '/' .. (redis.call('HGET', entry, 'v') or '')
local stored = redis.call('HMGET', entry, 's:' .. slot, 'u:' .. slot, 'i:' .. slot, 'b:' .. slot)
if stored[1] == stamp and tonumber(stored[2]) > tonumber(now) then
    for id in string.gmatch(stored[3], '%d+') do
        redis.call('HINCRBY', KEYS[n + 3], id, 1)
        redis.call('HSETNX', KEYS[n + 4], id, now)
    end
    return {counts, stored[4]}
end
return {counts, false, stamp}
"""

# KEYS: the customer's hash, the generation. ARGV: the stamp read before the SQL, slot, until, assignment
# ids, answer, lifetime, a new generation (the first store ever makes one and stores nothing), most fields.
_STORE = """
local generation = redis.call('GET', KEYS[2])
if not generation then
    redis.call('SET', KEYS[2], ARGV[7], 'NX')
    return 0
end
if generation .. '/' .. (redis.call('HGET', KEYS[1], 'v') or '') ~= ARGV[1] then return 0 end
if redis.call('HEXISTS', KEYS[1], 'sealed') == 1 then return 0 end
local slot = ARGV[2]
if redis.call('HEXISTS', KEYS[1], 's:' .. slot) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[8]) then
    return 0
end
redis.call('HSET', KEYS[1], 's:' .. slot, ARGV[1], 'u:' .. slot, ARGV[3], 'i:' .. slot, ARGV[4], 'b:' .. slot, ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
"""

# KEYS: the changed customers' hashes. ARGV: their new version, lifetime, and "sealed" to store nothing for them
# until the next bump.
_BUMP = """
for _, key in ipairs(KEYS) do
    redis.call('DEL', key)
    redis.call('HSET', key, 'v', ARGV[1])
    if ARGV[3] == 'sealed' then redis.call('HSET', key, 'sealed', 1) end
    redis.call('EXPIRE', key, ARGV[2])
end
return #KEYS
"""

# KEYS: impressions, first shown, and the copies being flushed. Moves the counts aside unless a flush that
# died left a copy: that one is flushed first.
_TAKE = """
if redis.call('EXISTS', KEYS[3]) == 0 and redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('RENAME', KEYS[1], KEYS[3])
    if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[4]) end
end
return {redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4])}
"""


def _cache() -> RedisCache | None:
    """The Redis cache, where the entries can be kept: PostgreSQL behind it and Redis reachable."""
    return shared_cache.redis_cache() if connection.vendor == "postgresql" else None


def _entry_key(cache: RedisCache, customer: str) -> str:
    # Under its own prefix: a customer id (any text) never names one of the shared keys below.
    return cache.make_key(f"placements:customer:{customer}")


def _keys(cache: RedisCache, *names: str) -> list[str]:
    return [cache.make_key(f"placements:{name}") for name in names]


@dataclass(frozen=True)
class Read:
    counts: list[int]
    answer: bytes | None  # the rendered answer, when the entry is current
    stamp: str | None  # after a miss: what the answer read now is stored under (placements_store)


def counted_and_read(counters: list[shared_cache.Counter], *, customer: str, slot: str, now: datetime) -> Read | None:
    """Count the call's throttles and read the customer's answer in one round trip; None without the cache."""
    cache = _cache()
    if cache is None:
        return None
    keys = [cache.make_key(c.name) for c in counters] + [_entry_key(cache, customer)]
    keys += _keys(cache, "generation", "impressions", "first-shown")
    args: list[str | int | float] = [len(counters)]
    for counter in counters:
        args += [counter.lifetime, counter.limit]
    try:
        counts, *rest = shared_cache.script(cache, _READ)(keys=keys, args=[*args, slot, now.timestamp()])
    except UNREACHABLE as error:  # the call must not fail for the cache: the throttle counts per process instead
        shared_cache.failed(error)
        return None
    answer = rest[0] if rest else None
    stamp = rest[1].decode() if len(rest) > 1 else None
    return Read(counts=counts, answer=answer, stamp=stamp)


def placements_store(*, customer: str, slot: str, stamp: str, answer: bytes, assignments: list[int],
                     until: datetime | None) -> None:
    """Keep an answer read under `stamp` (a Read's), unless a change was bumped since; `until`: first expiry."""
    cache = _cache()
    if cache is None:
        return
    lifetime = foresight_settings.PLACEMENTS_CACHE_SECONDS
    # Served until its first assignment expires, and never past its lifetime: storing another slot refreshes
    # the hash's expiry, not this answer's.
    last = time.time() + lifetime
    args = [stamp, slot, min(until.timestamp(), last) if until else last, ",".join(map(str, assignments)), answer,
            lifetime, secrets.token_hex(8), 4 * MAX_SLOTS]
    try:
        shared_cache.script(cache, _STORE)(keys=[_entry_key(cache, customer), *_keys(cache, "generation")], args=args)
    except UNREACHABLE as error:
        shared_cache.failed(error)


def placements_changed(customers: Iterable[str] | None = None) -> None:
    """Retire the kept answers of these customers (external ids; None: everyone's), after the commit."""
    chosen = None if customers is None else list(customers)
    transaction.on_commit(lambda: _bump(chosen), robust=True)  # the change is committed: never fail its request


def placements_sealed(customers: list[str]) -> None:
    """Retire these customers' kept answers now, inside the transaction that erases them, and store none until
    its commit's bump (placements_changed). Raises CacheUnreachable when Redis cannot be told: the erasure is
    then refused, to be sent again, rather than leave an erased customer's answer to be served once Redis is back.
    A bump lost after the commit leaves them sealed: read from the database until the hash expires."""
    cache = caches[DEFAULT_CACHE_ALIAS]
    if connection.vendor != "postgresql" or not isinstance(cache, RedisCache) or not customers:
        return
    try:
        shared_cache.script(cache, _BUMP)(keys=[_entry_key(cache, c) for c in customers],
                                          args=[secrets.token_hex(8), foresight_settings.PLACEMENTS_CACHE_SECONDS,
                                                "sealed"])
    except UNREACHABLE as error:
        shared_cache.failed(error)
        raise shared_cache.CacheUnreachable(
            "The cache of storefront answers (Redis) is unreachable, so the customer's kept answers could not be"
            " retired: nothing was erased; try again in a moment.") from error


def _bump(customers: list[str] | None) -> None:
    # Tried even while this process rests the cache after a failure: other processes may be serving from it.
    cache = caches[DEFAULT_CACHE_ALIAS]
    if connection.vendor != "postgresql" or not isinstance(cache, RedisCache) or customers == []:
        return
    token = secrets.token_hex(8)
    try:
        if customers is None or len(customers) > MAX_CUSTOMERS_BUMPED:
            shared_cache.client(cache).set(*_keys(cache, "generation"), token)
        else:
            shared_cache.script(cache, _BUMP)(keys=[_entry_key(cache, c) for c in customers],
                                  args=[token, foresight_settings.PLACEMENTS_CACHE_SECONDS])
    except UNREACHABLE as error:
        # Answers kept for these customers are then served until they expire (at most the setting's seconds).
        logger.warning("Placements cache unreachable (%s): kept answers live until they expire",
                       type(error).__name__)
        shared_cache.failed(error)


def impressions_flush() -> int:
    """Add the impressions counted in Redis to their assignments, in one UPDATE; returns the calls added."""
    cache = _cache()
    if cache is None:
        return 0
    keys = _keys(cache, "impressions", "first-shown", "impressions-flushing", "first-shown-flushing", "flush-lock")
    client = shared_cache.client(cache)
    if not client.set(keys[4], 1, nx=True, ex=FLUSH_LOCK_SECONDS):  # another flush runs: it takes these too
        return 0
    try:
        return _flush(cache, client, keys)
    finally:
        client.delete(keys[4])


def _flush(cache: RedisCache, client, keys: list[str]) -> int:
    counts, first = shared_cache.script(cache, _TAKE)(keys=keys[:4])
    if not counts:
        return 0
    shown = dict(zip(counts[::2], counts[1::2], strict=True))
    first_shown = dict(zip(first[::2], first[1::2], strict=True))
    with connection.cursor() as cursor:
        cursor.execute(  # LEAST passes over a NULL: the first time a customer saw it, whichever path counted it
            f"UPDATE {Assignment._meta.db_table} a SET impressions = a.impressions + f.n,"
            " first_shown_at = LEAST(a.first_shown_at, f.t)"
            " FROM unnest(%s::bigint[], %s::int[], %s::timestamptz[]) AS f(id, n, t) WHERE a.id = f.id",
            [[int(i) for i in shown], [int(n) for n in shown.values()],
             [datetime.fromtimestamp(float(first_shown.get(i, time.time())), UTC) for i in shown]],
        )
    client.delete(keys[2], keys[3])
    return sum(int(n) for n in shown.values())
