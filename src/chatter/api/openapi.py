"""The OpenAPI document, completed with what FastAPI can't see: the correlation id header on
every response (the request middleware adds it), the `WWW-Authenticate` challenge on 401,
and our error shape in place of FastAPI's default 422."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

HEADERS = {
    "X-Correlation-ID": {
        "description": "The request's correlation id (the client's if valid, else a new one); "
        "every log line and event of the request carries it.",
        "required": True,
        "schema": {"type": "string"},
    },
    "WWW-Authenticate": {
        "description": "The scheme to authenticate with.",
        "required": True,
        "schema": {"type": "string", "const": "Bearer"},
    },
}
FASTAPI_422 = "#/components/schemas/HTTPValidationError"
ERROR_SCHEMA = "#/components/schemas/ErrorResponse"


def _can_fail_validation(operation: dict[str, Any]) -> bool:
    """False when the only inputs are path segments taken as any text: they always match."""
    if "requestBody" in operation:
        return True
    return any(
        param["in"] != "path" or set(param["schema"]) - {"type", "title"}
        for param in operation.get("parameters", [])
    )


def _fix_validation_response(operation: dict[str, Any]) -> None:
    """FastAPI documents a 422 of its own shape on every route with inputs; ours is an
    ErrorResponse, and a route whose inputs can't be invalid never answers 422."""
    responses = operation["responses"]
    content = responses.get("422", {}).get("content", {}).get("application/json", {})
    if content.get("schema", {}).get("$ref") != FASTAPI_422:
        return
    if "x-chatter-error-format" in operation:  # answers invalid input with its own 400
        del responses["422"]
        return
    if _can_fail_validation(operation):
        content["schema"] = {"$ref": ERROR_SCHEMA}
    else:
        del responses["422"]


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            _fix_validation_response(operation)
            for status, response in operation["responses"].items():
                headers = response.setdefault("headers", {})
                headers["X-Correlation-ID"] = {"$ref": "#/components/headers/X-Correlation-ID"}
                if status == "401":
                    headers["WWW-Authenticate"] = {"$ref": "#/components/headers/WWW-Authenticate"}
    components = schema.setdefault("components", {})
    components["headers"] = HEADERS
    for unused in ("HTTPValidationError", "ValidationError"):
        components.get("schemas", {}).pop(unused, None)
    return schema


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
