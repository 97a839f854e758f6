"""Errors as JSON that name the problem, including those raised outside DRF's own checks."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from behavior.cache import CACHE_RETRY_SECONDS, CacheUnreachable


class BodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "database_unavailable"
    default_detail = ("The database connection was lost and the request was not completed: send it again "
                      "(a resent batch of events stores each event_id once).")
    wait = 1  # seconds, the Retry-After header


class CacheUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "cache_unavailable"
    wait = CACHE_RETRY_SECONDS  # the Retry-After header: when this process tries the cache again


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        exc = BodyTooLarge(f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    if isinstance(exc, OperationalError | InterfaceError):  # a killed or unreachable connection: try again, not 500
        exc = DatabaseUnavailable()
    if isinstance(exc, CacheUnreachable):
        exc = CacheUnavailable(str(exc))
    return drf_exception_handler(exc, context)


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"No API endpoint at {request.path}."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return defaults.server_error(request)
