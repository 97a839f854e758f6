"""API keys: who is calling, what they may do, and how often."""

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

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
    scope = "api_key"

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
