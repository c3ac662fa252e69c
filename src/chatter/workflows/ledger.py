"""The run's ledger of model calls. Nodes open a call before the model speaks and close it
when it ends; whatever interrupts a run (error, cancellation), the ledger still knows which
calls happened and how far they got, so their usage can be recorded - never dropped."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage

from chatter.domain.enums import LLMCallStatus, UsageSource
from chatter.domain.ids import new_id
from chatter.domain.usage import Usage
from chatter.observability.logging import get_logger
from chatter.providers.pricing import Pricer
from chatter.providers.registry import ResolvedModel
from chatter.providers.usage_extraction import call_token_counts
from chatter.workflows.events import ModelCallRecord

log = get_logger("chatter.ledger")


def usage_of_call(
    resolved: ResolvedModel,
    pricer: Pricer,
    inputs: Sequence[BaseMessage],
    output: AIMessage,
) -> tuple[Usage, str]:
    """The one function that turns a model's answer into Usage, for every node and path."""
    measured = call_token_counts(inputs, output)
    tokens = measured.counts
    source = UsageSource.ESTIMATED if measured.estimated else UsageSource.PROVIDER
    if measured.filled:
        log.warning(
            "provider_usage_incomplete",
            provider=resolved.provider,
            model=resolved.model,
            estimated=list(measured.filled),
        )
    config = resolved.config
    price = pricer.price(
        resolved.provider, resolved.model, config.genai_provider_id, tokens, free=config.free
    )
    usage = Usage(tokens, price.cost, price.known, price.currency, source)
    return usage, price.source


@dataclass
class OpenCall:
    """A model call in flight: what was sent and what has arrived so far."""

    node: str
    resolved: ResolvedModel
    inputs: list[BaseMessage]
    started: float = field(default_factory=time.monotonic)
    # Durations come from the monotonic clock; the wall clock only places the call in time.
    started_at_ns: int = field(default_factory=time.time_ns)
    call_id: str = field(default_factory=new_id)
    first_token_at: float | None = None
    received: AIMessageChunk | None = None

    def add_chunk(self, chunk: AIMessageChunk) -> None:
        if self.first_token_at is None and (chunk.content or chunk.tool_call_chunks):
            self.first_token_at = time.monotonic()
        self.received = chunk if self.received is None else self.received + chunk

    def _elapsed_ms(self, until: float | None = None) -> int:
        return int(((until or time.monotonic()) - self.started) * 1000)

    @property
    def ttft_ms(self) -> int | None:
        return None if self.first_token_at is None else self._elapsed_ms(self.first_token_at)


class CallLedger:
    def __init__(self, pricer: Pricer) -> None:
        self._pricer = pricer
        self._open: dict[str, OpenCall] = {}
        self._closed: list[ModelCallRecord] = []

    @property
    def records(self) -> list[ModelCallRecord]:
        return list(self._closed)

    def open(self, node: str, resolved: ResolvedModel, inputs: list[BaseMessage]) -> OpenCall:
        call = OpenCall(node=node, resolved=resolved, inputs=inputs)
        self._open[call.call_id] = call
        return call

    def finish(self, call: OpenCall, message: AIMessage) -> ModelCallRecord:
        usage, price_source = usage_of_call(call.resolved, self._pricer, call.inputs, message)
        reason = finish_reason(message)
        return self._close(call, usage, price_source, LLMCallStatus.SUCCEEDED, reason, None)

    def interrupt(self, call: OpenCall, status: LLMCallStatus, error: str) -> ModelCallRecord:
        """Close a call that did not end normally, with the usage known so far.

        Usage the provider reported (it can arrive before the break) is kept; otherwise
        whatever was received is estimated. A call that received nothing used nothing.
        """
        received = call.received
        if received is None:
            # Nothing came back (refused, or never answered): our estimate is zero, and it
            # is marked as ours, not as a count the provider reported.
            nothing = Usage(source=UsageSource.ESTIMATED)
            return self._close(call, nothing, "none", status, None, error)
        message = AIMessage(
            content=received.content,
            tool_calls=received.tool_calls,
            usage_metadata=received.usage_metadata,
            response_metadata=received.response_metadata,
        )
        # The stream had begun, so the prompt was processed even if no text arrived yet.
        usage, price_source = usage_of_call(call.resolved, self._pricer, call.inputs, message)
        return self._close(call, usage, price_source, status, None, error)

    def interrupt_open_calls(self, status: LLMCallStatus, error: str) -> list[ModelCallRecord]:
        return [self.interrupt(call, status, error) for call in list(self._open.values())]

    def _close(
        self,
        call: OpenCall,
        usage: Usage,
        price_source: str,
        status: LLMCallStatus,
        finish_reason: str | None,
        error: str | None,
    ) -> ModelCallRecord:
        self._open.pop(call.call_id, None)
        received = call.received
        record = ModelCallRecord(
            call_id=call.call_id,
            node=call.node,
            provider=call.resolved.provider,
            model=call.resolved.model,
            usage=usage,
            price_source=price_source,
            latency_ms=call._elapsed_ms(),
            time_to_first_token_ms=call.ttft_ms,
            finish_reason=finish_reason,
            status=status.value,
            error=error,
            content=received.text if received is not None else "",
            response_model=_response_model(received),
            started_at_ns=call.started_at_ns,
            ended_at_ns=call.started_at_ns + int((time.monotonic() - call.started) * 1e9),
        )
        self._closed.append(record)
        return record


def _response_model(received: AIMessageChunk | None) -> str | None:
    if received is None:
        return None
    name = received.response_metadata.get("model_name") or received.response_metadata.get("model")
    return str(name) if name else None


def finish_reason(message: AIMessage | AIMessageChunk) -> str | None:
    """How the provider said the answer ended; None when it never said (a broken stream)."""
    metadata = message.response_metadata
    reason = metadata.get("finish_reason") or metadata.get("stop_reason")
    return str(reason) if reason else None
