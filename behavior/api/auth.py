"""API keys: who is calling, what they may do, and how often."""

from typing import cast

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling
from rest_framework.settings import api_settings

from behavior.models import ApiKey

ADMIN = ApiKey.Scope.ADMIN


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
        key = ApiKey.objects.filter(key_hash=ApiKey.hash(raw), active=True).first()
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        # One write a minute at most: keeps the hot ingest path free of row-lock contention.
        now = timezone.now()
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
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
    """Each view names the scope it needs in `required_scope`; an admin key may do everything."""

    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request, view):
        key = request.auth
        if not isinstance(key, ApiKey):
            raise exceptions.NotAuthenticated("An API key is required: send 'Authorization: Bearer <key>'.")
        required = view.required_scope
        self.message = f"This API key lacks the '{required}' scope."
        return required is None or required in key.scopes or ADMIN in key.scopes


class ApiKeyRateThrottle(throttling.SimpleRateThrottle):
    """At most the `api_key` rate ("6000/min") of calls per key in each period of the clock (a fixed window).

    DRF's own rewrites a list of timestamps on every call: two calls at once both write back one more,
    losing a count, and a busy key pickles 6,000 timestamps both ways. Here the count is one atomic
    increment in the cache (Redis when configured), so calls that overlap are all counted. A fixed
    window lets a key make up to twice its rate across the turn of a period, a fair price.
    """

    scope = "api_key"
    num_requests: int  # both set by SimpleRateThrottle from the rate
    duration: int
    retry_after = 0.0

    def get_rate(self) -> str:
        # Read per call, so that a changed setting applies (DRF reads it once, at import).
        return cast(str, api_settings.DEFAULT_THROTTLE_RATES[self.scope])

    def get_cache_key(self, request, view) -> str | None:
        if not isinstance(request.auth, ApiKey):
            return None  # no key: the permission check answers 401
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}

    def allow_request(self, request, view) -> bool:
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        counter = f"{key}_{window}"
        try:
            calls = self.cache.incr(counter)
        except ValueError:  # the window's first call creates its counter, which ends with it; one of two at once
            calls = 1 if self.cache.add(counter, 1, timeout=self.duration + 1) else self.cache.incr(counter)
        self.retry_after = (window + 1) * self.duration - now
        return calls <= self.num_requests

    def wait(self) -> float:
        return self.retry_after
