"""OpenAPI: the error answers every operation can give, documented once for the whole API.

A drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]), so no view
has to list them and none can forget: 400 (DRF's per-field messages, or a service's
`{"detail", "field"}`, or an import's file/line/field), 401, 403, 404 (any id, any page), 413 (a
body past the upload limit), 414 (a query string past gunicorn's limit) and, where DRF throttles,
429. schemathesis (tests/fuzz/) checks the API against this.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

ERROR = {
    "type": "object",
    "description": "What went wrong.",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
FIELD_ERRORS = {
    "type": "object",
    "description": "DRF's validation answer: each field (or non_field_errors) with its messages; "
    "a nested field's messages are nested by index or key.",
    "additionalProperties": {"anyOf": [{"type": "array"}, {"type": "object"}]},
}
SERVICE_ERROR = {
    "type": "object",
    "description": "A rejected write: the message and the field it is about.",
    "properties": {"detail": {"type": "string"}, "field": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
    "required": ["detail", "field"],
}
UPLOAD_TOO_LARGE = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "limit_mb": {"type": "integer"}},
    "required": ["detail", "limit_mb"],
}

DESCRIPTIONS = {
    "400": "Invalid input: the answer names the field.",
    "401": "No credentials, or a token that is not valid.",
    "403": "No role, or not allowed for this role.",
    "404": "No such object among yours (or no such page).",
    "413": "The request body is larger than the upload limit (CONCORDANCE_MAX_UPLOAD_MB).",
    "414": "The URL (its query string) is longer than the server takes (gunicorn: about 4 KB).",
    "429": "Too many requests; retry after the Retry-After header's seconds.",
}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def document_errors(result: dict, generator: Any, request: Any = None, public: bool = True, **kwargs: Any) -> dict:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR
    schemas.setdefault("ServiceError", SERVICE_ERROR)
    schemas["FieldErrors"] = FIELD_ERRORS
    schemas["UploadTooLarge"] = UPLOAD_TOO_LARGE
    for schema in schemas.values():
        # A union without a discriminator whose shapes overlap (a full rater also has every field
        # of the annotator's own view) matches both: oneOf would then reject every valid answer.
        if "oneOf" in schema and "discriminator" not in schema:
            schema["anyOf"] = schema.pop("oneOf")
    throttled = bool(settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_CLASSES"))
    for methods in result.get("paths", {}).values():
        for method, operation in methods.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            _document_400(responses)
            for code in ("401", "403", "404"):
                responses[code] = {"description": _description(responses.get(code), code), "content": _json(_ref("Error"))}
            if any(p.get("in") == "query" for p in operation.get("parameters", [])):
                # gunicorn refuses a request line past its limit before Django sees it.
                responses["414"] = {"description": DESCRIPTIONS["414"],
                                    "content": {"text/html": {"schema": {"type": "string"}}}}
            if "requestBody" in operation:
                responses["413"] = {"description": DESCRIPTIONS["413"], "content": _json(_ref("UploadTooLarge"))}
            if throttled:
                responses["429"] = {"description": DESCRIPTIONS["429"], "content": _json(_ref("Error"))}
    return result


def _description(existing: dict | None, code: str) -> str:
    return (existing or {}).get("description") or DESCRIPTIONS[code]


def _document_400(responses: dict) -> None:
    """Keep a view's own 400 body (a service or import error) and add DRF's field errors, which
    any serializer may answer first, and its parse errors."""
    existing = responses.get("400") or {}
    own = existing.get("content", {}).get("application/json", {}).get("schema") or _ref("ServiceError")
    options = [own] if own != _ref("FieldErrors") else []
    # DRF's field messages, and a body DRF could not parse (malformed JSON: only `detail`).
    options += [_ref("FieldErrors"), _ref("Error")]
    schema = options[0] if len(options) == 1 else {"anyOf": options}
    responses["400"] = {"description": _description(existing, "400"), "content": _json(schema)}


__all__ = ["document_errors"]
