"""One exception tree for the whole service; `api/errors.py` maps it to HTTP."""

from __future__ import annotations

from typing import Any


class ChatterError(Exception):
    """Base of every error Chatter raises on purpose."""

    code = "error"
    status_code = 500

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def response_headers(self) -> dict[str, str]:
        """Headers the HTTP answer carries besides the body (e.g. `Retry-After`)."""
        return {}


class BadRequest(ChatterError):
    code = "bad_request"
    status_code = 400


class Unauthorized(ChatterError):
    code = "unauthorized"
    status_code = 401


class BudgetExceeded(ChatterError):
    """The turn would take its user past a spend budget (tokens or cost, daily or monthly):
    refused before the model is called."""

    code = "budget_exceeded"
    status_code = 402


class Forbidden(ChatterError):
    code = "forbidden"
    status_code = 403


class NotFound(ChatterError):
    code = "not_found"
    status_code = 404


class Conflict(ChatterError):
    code = "conflict"
    status_code = 409


class ExecutionInterrupted(Conflict):
    """Recovery closed the execution as failed: the worker running it stopped heartbeating
    for longer than the lease (it died, or stalled). What its turn produced after that is
    not recorded (the execution's totals are those of the calls recorded before)."""

    code = "execution_interrupted"


class Unprocessable(ChatterError):
    """Well-formed, but refused on its meaning."""

    code = "unprocessable"
    status_code = 422


class IterationLimitReached(Unprocessable):
    """A workflow run took more node steps than its iteration limit allows."""

    code = "iteration_limit_reached"


class InvalidWorkflow(Unprocessable):
    """A workflow definition with problems; `details` lists every one with its location."""

    code = "invalid_workflow"


class WebhookUrlRefused(Unprocessable):
    """A webhook URL Chatter will not call: not http(s), unresolvable, or an address on a
    private network while those are not allowed."""

    code = "webhook_url_refused"


class StdioCommandNotAllowed(Unprocessable):
    """A stdio MCP server whose command is not in CHATTER_TOOLS__STDIO_ALLOWED_COMMANDS."""

    code = "stdio_command_not_allowed"


class PayloadTooLarge(ChatterError):
    code = "payload_too_large"
    status_code = 413


class RateLimited(ChatterError):
    """A rate limit or a login lockout: retry after `retry_after` seconds."""

    code = "rate_limited"
    status_code = 429

    def __init__(
        self, message: str, *, retry_after: int, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after
        self._headers = headers or {}

    def response_headers(self) -> dict[str, str]:
        return {**self._headers, "Retry-After": str(self.retry_after)}


class ProviderNotConfigured(BadRequest):
    code = "provider_not_configured"


class UnknownModel(BadRequest):
    code = "unknown_model"


class ModelNotFound(NotFound):
    """A compatible endpoint's `model` names no configured provider/model or alias."""

    code = "model_not_found"


class ProviderError(ChatterError):
    """The model provider failed (HTTP error, timeout, broken stream)."""

    code = "provider_error"
    status_code = 502


class ServiceUnavailable(ChatterError):
    code = "service_unavailable"
    status_code = 503


class InternalError(ChatterError):
    """An unexpected failure, reported without internals."""

    code = "internal_error"
    status_code = 500
