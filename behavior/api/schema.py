"""The OpenAPI document names every error an operation can answer with, so clients and fuzzers know them."""

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
