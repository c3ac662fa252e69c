"""A chat turn's spans: `invoke_workflow {workflow}` from the turn's start to its close,
under the request's server span, and beneath it one `chat {model}` span per model call and
one `execute_tool {tool}` span per tool call.

The call spans are built from the turn's own call records, after the fact, with the real
start and end times each call recorded: the same records whose usage is stored, so a span's
token counts are the database's, and interrupted calls (failed, cancelled) get spans too."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from chatter.domain.usage import Usage
from chatter.observability import conventions as c
from chatter.observability.logging import get_logger
from chatter.services.chat_events import TurnClosed, TurnStarted
from chatter.workflows.events import ModelCallRecord, ToolCallRecord

log = get_logger("chatter.tracing")
# The model is always called as a stream; a non-streaming turn drains the same stream.
STREAMED = True


class TurnTrace:
    def __init__(
        self,
        tracer: trace.Tracer,
        *,
        workflow: str,
        provider: str,
        model: str,
        correlation_id: str,
        conversation_id: str | None,
    ) -> None:
        self._tracer = tracer
        attributes: dict[str, AttributeValue] = {
            c.GEN_AI_OPERATION_NAME: c.OP_INVOKE_WORKFLOW,
            c.GEN_AI_WORKFLOW_NAME: workflow,
            c.GEN_AI_PROVIDER_NAME: provider,
            c.GEN_AI_REQUEST_MODEL: model,
            c.CHATTER_CORRELATION_ID: correlation_id,
        }
        if conversation_id is not None:
            attributes[c.GEN_AI_CONVERSATION_ID] = conversation_id
        # Parent: the current context, i.e. the request's server span.
        self._span = tracer.start_span(
            c.workflow_span_name(workflow), kind=SpanKind.INTERNAL, attributes=attributes
        )
        self._correlation_id = correlation_id
        self._conversation_id = conversation_id

    def opened(self, started: TurnStarted) -> None:
        self._conversation_id = started.conversation.id
        self._span.set_attribute(c.GEN_AI_CONVERSATION_ID, started.conversation.id)
        self._span.set_attribute(c.CHATTER_EXECUTION_ID, started.execution.id)

    def closed(self, closed: TurnClosed) -> None:
        execution = closed.execution
        self._span.set_attributes(
            {
                c.CHATTER_STATUS: execution.status,
                c.GEN_AI_USAGE_INPUT_TOKENS: execution.prompt_tokens,
                c.GEN_AI_USAGE_OUTPUT_TOKENS: execution.completion_tokens,
                c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: execution.cached_tokens,
                c.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: execution.reasoning_tokens,
                c.CHATTER_COST: str(execution.total_cost),
            }
        )
        if closed.error is not None:
            self._fail(closed.error.code)

    def end(self, calls: list[ModelCallRecord], tools: list[ToolCallRecord]) -> None:
        """Record the call spans under the workflow span, then end it. Never raises: it
        runs in the turn's last `finally`, which must still tell the caller the turn ended."""
        try:
            parent = trace.set_span_in_context(self._span)
            for call in calls:
                self._call_span(parent, call)
            for tool in tools:
                self._tool_span(parent, tool)
            self._span.end()
        except Exception:  # tracing is best effort; the turn is already recorded
            log.exception("turn_trace_failed")

    def failed(self, error_type: str) -> None:
        self._fail(error_type)

    def _fail(self, error_type: str) -> None:
        self._span.set_attribute(c.ERROR_TYPE, error_type)
        self._span.set_status(Status(StatusCode.ERROR))

    def _call_span(self, parent: Context, call: ModelCallRecord) -> None:
        attributes: dict[str, AttributeValue] = {
            c.GEN_AI_OPERATION_NAME: c.OP_CHAT,
            c.GEN_AI_PROVIDER_NAME: call.provider,
            c.GEN_AI_REQUEST_MODEL: call.model,
            c.GEN_AI_REQUEST_STREAM: STREAMED,
            **usage_attributes(call.usage),
            c.CHATTER_PRICE_SOURCE: call.price_source,
            c.CHATTER_STATUS: call.status,
            c.CHATTER_CORRELATION_ID: self._correlation_id,
        }
        if call.response_model:
            attributes[c.GEN_AI_RESPONSE_MODEL] = call.response_model
        if call.finish_reason:
            attributes[c.GEN_AI_RESPONSE_FINISH_REASONS] = (call.finish_reason,)
        if self._conversation_id is not None:
            attributes[c.GEN_AI_CONVERSATION_ID] = self._conversation_id
        span = self._tracer.start_span(
            c.chat_span_name(call.model),
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=call.started_at_ns or None,
        )
        if call.error is not None:
            span.set_attribute(c.ERROR_TYPE, call.status)
            span.set_status(Status(StatusCode.ERROR, call.error))
        span.end(end_time=call.ended_at_ns or None)

    def _tool_span(self, parent: Context, tool: ToolCallRecord) -> None:
        span = self._tracer.start_span(
            c.tool_span_name(tool.name),
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes={
                c.GEN_AI_OPERATION_NAME: c.OP_EXECUTE_TOOL,
                c.GEN_AI_TOOL_NAME: tool.name,
                c.GEN_AI_TOOL_CALL_ID: tool.tool_call_id,
                c.CHATTER_STATUS: tool.status,
                c.CHATTER_CORRELATION_ID: self._correlation_id,
            },
            start_time=tool.started_at_ns or None,
        )
        if tool.status != "succeeded":
            span.set_attribute(c.ERROR_TYPE, "tool_error")
            span.set_status(Status(StatusCode.ERROR, tool.error))
        span.end(end_time=tool.ended_at_ns or None)


def usage_attributes(usage: Usage) -> dict[str, AttributeValue]:
    tokens = usage.tokens
    return {
        c.GEN_AI_USAGE_INPUT_TOKENS: tokens.prompt_tokens,
        c.GEN_AI_USAGE_OUTPUT_TOKENS: tokens.completion_tokens,
        c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: tokens.cached_tokens,
        c.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: tokens.cache_write_tokens,
        c.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: tokens.reasoning_tokens,
        c.CHATTER_COST: str(usage.cost),
        c.CHATTER_COST_KNOWN: usage.cost_known,
        c.CHATTER_CURRENCY: usage.currency,
        c.CHATTER_USAGE_SOURCE: usage.source.value,
    }
