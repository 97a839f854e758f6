"""The OpenAPI document of Foresight's API: its own settings, its operations only, and every error each can
answer with, so that clients and fuzzers know them."""

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema

SCHEMA_SETTINGS: dict[str, Any] = {
    "TITLE": "Foresight API",
    "DESCRIPTION": "Behaviour events in; purchase-intent and support-risk scores and actions out.",
    "VERSION": "1",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["behavior.api.schema.foresight_operations"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "behavior.api.schema.document_errors"],
}


def documented(**details):
    """drf-spectacular's extend_schema, on drf-spectacular's AutoSchema whatever the project's DRF settings say.

    extend_schema builds on DEFAULT_SCHEMA_CLASS, a project-wide setting Foresight leaves to the project.
    """
    def decorate(method):
        method.kwargs = {"schema": AutoSchema}
        return extend_schema(**details)(method)
    return decorate


def openapi_document() -> dict:
    """The document the schema endpoint serves, built in process (tests, fuzzing, `manage.py shell`)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.settings import patched_settings

    with patched_settings(SCHEMA_SETTINGS):
        return SchemaGenerator().get_schema(request=None, public=True)


def foresight_operations(endpoints):
    """drf-spectacular pre-processing hook: the project's own API views stay out of Foresight's document."""
    from behavior.api.views import ScopedView  # the views import this module

    return [endpoint for endpoint in endpoints
            if isinstance(view := getattr(endpoint[3], "cls", None), type) and issubclass(view, ScopedView)]

ERROR = {
    "type": "object",
    "description": "`detail` says what is wrong; a 400 names each bad field instead.",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}

ALWAYS = {"401": "No API key, or an unknown or revoked one", "403": "The key lacks the scope this needs",
          "429": "Too many requests for this key"}


def document_errors(result, generator, request, public):
    """drf-spectacular post-processing hook: add the shared error answers where an operation can give them."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            answers = dict(ALWAYS)
            if "{" in path:
                answers["404"] = "Nothing with this id"
            if operation.get("requestBody") or operation.get("parameters"):
                answers["400"] = "Invalid input: each bad field is named"
            if method in ("post", "put", "patch"):
                answers["413"] = "The request body is too large"
            responses = operation.setdefault("responses", {})
            for status, description in answers.items():
                responses.setdefault(status, {
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                })
    return result
