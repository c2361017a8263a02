"""The OpenAPI document that tells the truth: FastAPI's, completed with what the edge does to every operation."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .problems import PROBLEM, ProblemDetails, status_phrase

_COMMON_PROTECTED = (401, 429, 503)
_COMMON_BODY = (400, 413, 415, 422)


def truthful_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, completed with what the edge does to every operation: the problem+json schema for every
    error, the errors the middleware itself answers (401, 429, 400/413/415 for bodies), and no FastAPI default
    `HTTPValidationError` (every 422 is problem+json)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    problem = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in problem.pop("$defs", {}).items():
        schemas[name] = sub
    schemas["Problem"] = problem
    ref = {"$ref": "#/components/schemas/Problem"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            extra: list[int] = []
            if operation.get("security"):
                extra += _COMMON_PROTECTED
            if "requestBody" in operation:
                extra += _COMMON_BODY
            if operation.get("parameters"):
                extra.append(422)
            for status in extra:
                responses.setdefault(str(status), {"description": status_phrase(status)})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {PROBLEM: {"schema": ref}}
                    if status in ("429", "503"):
                        response["headers"] = {
                            "Retry-After": {
                                "description": "Seconds to wait before trying again",
                                "schema": {"type": "integer"},
                            }
                        }
                    if status == "401":
                        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = schema
    return schema
