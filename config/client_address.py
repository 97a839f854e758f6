"""The address a request came from, one rule for every limit that counts per client."""

from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle


def client_address(request: HttpRequest) -> str:
    """REMOTE_ADDR, or the X-Forwarded-For entry of the nearest of REST_FRAMEWORK's NUM_PROXIES trusted proxies.

    The admin's login lockout (django-axes) and the API's throttles use it, so a client behind the shop's load
    balancer is one client for both, and nobody can pick their own address by sending the header.
    """
    return BaseThrottle().get_ident(request)  # type: ignore[arg-type]  # it reads only headers and META
