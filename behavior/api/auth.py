"""API keys: who is calling, what they may do, and how often."""

import hashlib
import logging
import time
from collections.abc import Callable
from typing import cast

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from behavior import cache as shared_cache
from behavior.cache import Counter
from behavior.conf import foresight_settings
from behavior.models import ApiKey

from .tokens import TokenRefused, customer_token_check

logger = logging.getLogger(__name__)

ADMIN = ApiKey.Scope.ADMIN
CUSTOMER_TOKEN_HEADER = "X-Customer-Token"


# Keys found in the last few seconds, by hash: the lookup was a query on every call (0.5 ms of a placements
# call's 4). So revoking a key, changing its scopes or rotating its token secret takes effect in the other
# processes within FORESIGHT_API_KEY_CACHE_SECONDS (default 5), and at once in the process that saved it.
# Unknown keys are not remembered: a key made a moment ago works at once.
_known_keys: dict[str, tuple[float, ApiKey]] = {}


def _active_key(key_hash: str) -> ApiKey | None:
    now = time.monotonic()
    known = _known_keys.get(key_hash)
    if known is not None and known[0] > now:
        return known[1]
    key = ApiKey.objects.filter(key_hash=key_hash, active=True).first()
    if key is None:
        _known_keys.pop(key_hash, None)
    else:
        _known_keys[key_hash] = (now + foresight_settings.API_KEY_CACHE_SECONDS, key)
    return key


@receiver([post_save, post_delete], sender=ApiKey)
def _forget_key(sender, instance: ApiKey, **kwargs) -> None:
    _known_keys.pop(instance.key_hash, None)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>` (or `X-Api-Key: <key>`)."""

    keyword = "Bearer"

    def authenticate(self, request):
        raw = request.headers.get("X-Api-Key", "")
        header = request.headers.get("Authorization", "")
        if header.startswith(self.keyword + " "):
            raw = header[len(self.keyword) + 1 :].strip()
        if not raw:
            return None
        key = _active_key(ApiKey.hash(raw))
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        # One write a minute at most: keeps the hot ingest path free of row-lock contention.
        now = timezone.now()
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now  # the cached copy too, or each call until it expires would stamp again
        return (None, key)

    def authenticate_header(self, request):
        return self.keyword


class ApiKeySchema(OpenApiAuthenticationExtension):
    """Tells the OpenAPI document how ApiKeyAuthentication is used (found by drf-spectacular on import)."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer fs_...`"}


class HasScope(permissions.BasePermission):
    """Each view names the scope each method needs in `required_scope`; an admin key may do everything declared.

    Fails closed: a method without a declared scope is refused to every key (405), even where the view has a
    handler for it. A view acts for the customer in its path (`customer_bound`, true unless it says otherwise),
    so a public key also needs a customer token for that customer: the key alone is in every visitor's browser.
    """

    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request, view):
        key = request.auth
        if not isinstance(key, ApiKey):
            raise exceptions.NotAuthenticated("An API key is required: send 'Authorization: Bearer <key>'.")
        required = view.required_scope
        if required is None:
            raise exceptions.MethodNotAllowed(request.method)
        if required not in key.scopes and ADMIN not in key.scopes:
            self.message = f"This API key lacks the '{required}' scope."
            return False
        if view.customer_bound and key.is_public:
            token = request.headers.get(CUSTOMER_TOKEN_HEADER, "")
            try:
                if not token:
                    raise TokenRefused(f"this call acts for one customer: send their customer token, signed by "
                                       f"the shop's server, in the {CUSTOMER_TOKEN_HEADER} header")
                if "external_id" not in view.kwargs:  # bound by default, yet its path names nobody
                    raise TokenRefused("this call names no customer a customer token could be for")
                customer_token_check(token, secret=key.token_secret, customer_id=view.kwargs["external_id"])
            except TokenRefused as refusal:
                self.message = f"{str(refusal)[0].upper()}{str(refusal)[1:]}."
                return False
        return True


def client_address(request) -> str:
    """The connection's address, or the one the nearest of FORESIGHT_API_TRUSTED_PROXIES put in X-Forwarded-For.

    Entries further left were written by the client or by proxies nobody vouches for: a client cannot pick
    its own address by sending the header. The API's throttles use this, and the project's admin lockout can.
    """
    trusted = foresight_settings.API_TRUSTED_PROXIES
    forwarded = [entry.strip() for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if entry.strip()]
    if trusted and forwarded:
        return forwarded[-min(trusted, len(forwarded))]
    return request.META.get("REMOTE_ADDR", "")


_local_counts = LocMemCache("foresight-throttle-fallback", {})  # while the shared cache is unreachable


def _count(cache, counter: Counter) -> int:
    try:
        return cache.incr(counter.name)
    except ValueError:  # the window's first call creates its counter, which ends with it; one of two at once
        return 1 if cache.add(counter.name, 1, timeout=counter.lifetime) else cache.incr(counter.name)


# Each counter is created with its window's lifetime, then incremented: one command for all of a call's
# counters (2 for a storefront call), atomic, so no counter can be left without its expiry.
_COUNT_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
    redis.call('SET', key, 0, 'EX', ARGV[i], 'NX')
    counts[i] = redis.call('INCR', key)
end
return counts
"""


def calls_counted(counters: list[Counter]) -> list[int]:
    """Count one more call on each counter; the counts, in order. Never fails for the cache."""
    if not counters:
        return []
    if shared_cache.reachable():
        cache = caches[DEFAULT_CACHE_ALIAS]
        try:
            if isinstance(cache, RedisCache):
                keys = [cache.make_key(counter.name) for counter in counters]  # the names Django's cache API reads
                return shared_cache.script(cache, _COUNT_SCRIPT)(keys=keys, args=[c.lifetime for c in counters])
            return [_count(cache, counter) for counter in counters]
        except Exception as error:  # whatever the cache client raises, the call must not fail for it
            shared_cache.failed(error)
    return [_count(_local_counts, counter) for counter in counters]


def throttle_waits(request, view, throttles: list[throttling.BaseThrottle],
                   count: Callable[[list[Counter]], list[int]] = calls_counted) -> list[float | None]:
    """How long each throttle that refuses this call asks to wait; every throttle counts the call.

    DRF asks the throttles in turn, a cache round trip each; the window throttles here share one (`count`).
    """
    counted = [(t, counter) for t in throttles
               if isinstance(t, WindowThrottle) and (counter := t.counter(request, view)) is not None]
    waits = [t.wait() for t in throttles if not isinstance(t, WindowThrottle) and not t.allow_request(request, view)]
    calls = count([counter for _, counter in counted])
    return waits + [t.wait() for (t, _), n in zip(counted, calls, strict=True) if n > t.num_requests]


class WindowThrottle(throttling.SimpleRateThrottle):
    """At most the scope's rate ("6000/min") of calls per identity in each period of the clock (a fixed window).

    DRF's own rewrites a list of timestamps on every call: two calls at once both write back one more,
    losing a count, and a busy key pickles 6,000 timestamps both ways. Here the count is one atomic
    increment in the cache (Redis when configured), so calls that overlap are all counted. A fixed
    window lets an identity make up to twice its rate across the turn of a period, a fair price.
    """

    scope: str  # names the rate in DEFAULT_THROTTLE_RATES
    num_requests: int  # both set by SimpleRateThrottle from the rate
    duration: int
    retry_after = 0.0

    def get_rate(self) -> str:
        # Read per call, so that a changed setting applies (DRF reads it once, at import).
        return cast(str, foresight_settings.API_RATES[self.scope])

    def get_ident(self, request) -> str:
        return client_address(request)

    def identity(self, request, view, key: ApiKey) -> str | None:
        raise NotImplementedError

    def get_cache_key(self, request, view) -> str | None:
        if not isinstance(request.auth, ApiKey):
            return None  # no key: the permission check answers 401
        ident = self.identity(request, view, request.auth)
        return None if ident is None else self.cache_format % {"scope": self.scope, "ident": ident}

    def counter(self, request, view) -> Counter | None:
        """This call's counter for the current window; None when this throttle does not apply."""
        key = self.get_cache_key(request, view)
        if key is None:
            return None
        now = self.timer()
        window = int(now // self.duration)
        self.retry_after = (window + 1) * self.duration - now
        return Counter(f"{key}_{window}", self.duration + 1, self.num_requests)

    def allow_request(self, request, view) -> bool:
        counter = self.counter(request, view)
        return counter is None or calls_counted([counter])[0] <= self.num_requests

    def wait(self) -> float:
        return self.retry_after


class ApiKeyRateThrottle(WindowThrottle):
    """A server key's calls, all together (`API_RATE_PER_KEY`)."""

    scope = "api_key"

    def identity(self, request, view, key):
        return None if key.is_public else str(key.pk)


class ClientAddressRateThrottle(WindowThrottle):
    """A public key's calls per client address (`API_RATE_PER_ADDRESS`): one visitor cannot starve the others."""

    scope = "address"

    def identity(self, request, view, key):
        return f"{key.pk}:{self.get_ident(request)}" if key.is_public else None


class CustomerRateThrottle(WindowThrottle):
    """A public key's calls for one customer (`API_RATE_PER_CUSTOMER`), from whatever addresses they come."""

    scope = "customer"

    def identity(self, request, view, key):
        # Only calls that showed the customer's token count (the permission check, run first, refused the
        # others), so a stranger cannot spend a shopper's rate.
        if not (key.is_public and view.customer_bound and view.required_scope is not None):
            return None
        return f"{key.pk}:{hashlib.sha256(view.kwargs['external_id'].encode()).hexdigest()[:32]}"
