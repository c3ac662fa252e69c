"""Input limits that come from settings (CHATTER_LIMITS__...): text field lengths and page
sizes. A field or query parameter names its setting with `limited(...)`; the same mark
makes the OpenAPI document state the configured bound, so it stays truthful whatever the
settings say, and `check_input` / `check_query_limits` refuse what is over it with the
usual 422 before any work is done."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel

from chatter.settings import InputLimitSettings

LIMIT_KEY = "x-chatter-limit"
LimitName = Literal[
    "max_message_chars", "max_title_chars", "max_system_prompt_chars", "max_page_size"
]


def limited(setting: LimitName) -> dict[str, Any]:
    """`json_schema_extra` for a field bounded by `setting`."""
    return {LIMIT_KEY: setting}


def _setting_of(extra: object) -> LimitName | None:
    if isinstance(extra, dict):
        value = extra.get(LIMIT_KEY)
        if isinstance(value, str):
            return value  # type: ignore[return-value]
    return None


def _bound(limits: InputLimitSettings, setting: LimitName) -> int:
    bound: int = limits.model_dump()[setting]
    return bound


# The page size of every paginated list: at most CHATTER_LIMITS__MAX_PAGE_SIZE (default 100).
PageLimit = Annotated[
    int,
    Query(
        ge=1,
        description="Page size (at most the server's maximum page size).",
        json_schema_extra=limited("max_page_size"),
    ),
]


def check_input(body: BaseModel, limits: InputLimitSettings) -> None:
    """422 for each text field of `body` longer than its configured limit."""
    errors = []
    for name, field in type(body).model_fields.items():
        setting = _setting_of(field.json_schema_extra)
        value = getattr(body, name)
        if setting is None or not isinstance(value, str):
            continue
        bound = _bound(limits, setting)
        if len(value) > bound:
            errors.append(
                {
                    "loc": ("body", name),
                    "msg": f"String should have at most {bound} characters",
                    "type": "string_too_long",
                }
            )
    if errors:
        raise RequestValidationError(errors)


async def check_query_limits(request: Request) -> None:
    """On every route: a marked integer query parameter above its configured bound is a 422
    (FastAPI itself reports one that is not an integer)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    limits: InputLimitSettings = request.app.state.container.settings.limits
    errors = []
    for param in route.dependant.query_params:
        setting = _setting_of(param.field_info.json_schema_extra)
        raw = request.query_params.get(param.alias)
        if setting is None or raw is None or not raw.strip().isdigit():
            continue
        bound = _bound(limits, setting)
        if int(raw) > bound:
            errors.append(
                {
                    "loc": ("query", param.alias),
                    "msg": f"Input should be less than or equal to {bound}",
                    "type": "less_than_equal",
                }
            )
    if errors:
        raise RequestValidationError(errors)


def _document(schema: dict[str, Any], limits: InputLimitSettings) -> None:
    """Replace each mark with the bound it stands for: `maxLength` on strings,
    `maximum` on integers."""
    pending: list[Any] = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        setting = node.pop(LIMIT_KEY, None)
        if isinstance(setting, str):
            bound = _bound(limits, setting)  # type: ignore[arg-type]
            for variant in [node, *node.get("anyOf", [])]:
                if variant.get("type") == "string":
                    variant["maxLength"] = bound
                elif variant.get("type") == "integer":
                    variant["maximum"] = bound
        pending.extend(node.values())


TOO_LARGE = {
    "description": "The request body is larger than the server's limit (`payload_too_large`).",
    "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/X-Correlation-ID"}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
}


def _document_body_limit(schema: dict[str, Any]) -> None:
    """Every operation that takes a body can be refused with 413 (api/request_limits.py)."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if "requestBody" in operation:
                operation["responses"].setdefault("413", TOO_LARGE)


def document_input_limits(app: FastAPI, limits: InputLimitSettings) -> None:
    """Call after `install_openapi`: the document states the configured bounds."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        # Idempotent: the marks are gone after the first pass, and 413 is set once.
        _document(schema, limits)
        _document_body_limit(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
