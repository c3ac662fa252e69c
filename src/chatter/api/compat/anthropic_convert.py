"""Anthropic Messages <-> a Chatter turn: the request's system, messages and options in,
the message (or its stream events) out."""

from __future__ import annotations

import json
from typing import Any

from chatter.api.compat.anthropic_wire import ContentBlockIn, MessagesIn, ResultPartIn, TextBlockIn
from chatter.api.compat.errors import anthropic_error_body, wire_error
from chatter.api.compat.usage import anthropic_usage
from chatter.domain.enums import MessageRole
from chatter.domain.usage import Usage
from chatter.errors import BadRequest, ChatterError
from chatter.providers.tool_choice import ToolChoice
from chatter.services.chat_events import TurnClosed, TurnEvent, TurnRefused, TurnStarted
from chatter.services.client_turn import InputMessage, RequestedCall
from chatter.services.compat_turns import CompatRequest, TurnResult
from chatter.workflows.events import TextDelta, ToolCallRequested

Json = dict[str, Any]
Frame = tuple[str, str]  # an SSE event's name and data
# OpenAI's finish reasons (an OpenAI-compatible model behind the Anthropic format).
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
TOOL_CHOICE_MODES = {"auto": "auto", "any": "required", "none": "none", "tool": "required"}


def compat_request(body: MessagesIn, conversation_id: str | None) -> CompatRequest:
    _refuse_unsupported(body)
    messages = _system(body.system)
    for index, message in enumerate(body.messages):
        messages.extend(_messages(index, message.role, message.content))
    return CompatRequest(
        model=body.model,
        messages=messages,
        conversation_id=conversation_id,
        tools=tuple(
            _tool(tool.name, tool.description, tool.input_schema) for tool in body.tools or ()
        ),
        tool_choice=_tool_choice(body) if body.tools else None,
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=body.max_tokens,
        stop=tuple(body.stop_sequences or ()),
    )


def _refuse_unsupported(body: MessagesIn) -> None:
    refused = {
        "'top_k'": body.top_k is not None,
        "Extended 'thinking'": (body.thinking or {}).get("type", "disabled") != "disabled",
        "A server tool": any(tool.type not in (None, "custom") for tool in body.tools or ()),
    }
    for what, is_refused in refused.items():
        if is_refused:
            raise BadRequest(
                f"{what} is not supported by Chatter's compatible endpoint; leave it out."
            )


def _system(system: str | list[TextBlockIn] | None) -> list[InputMessage]:
    if system is None:
        return []
    text = system if isinstance(system, str) else "".join(block.text for block in system)
    return [InputMessage(MessageRole.SYSTEM, text)] if text else []


def _messages(index: int, role: str, content: str | list[ContentBlockIn]) -> list[InputMessage]:
    """One wire message: an assistant's text and tool_use blocks are one message; a user's
    tool_result blocks are tool messages, followed by its text, if any."""
    blocks = [ContentBlockIn(type="text", text=content)] if isinstance(content, str) else content
    texts: list[str] = []
    calls: list[RequestedCall] = []
    results: list[InputMessage] = []
    for block in blocks:
        if block.type == "text":
            texts.append(block.text or "")
        elif block.type == "tool_use" and role == "assistant":
            calls.append(_call(index, block))
        elif block.type == "tool_result" and role == "user":
            results.append(_result(index, block))
        else:
            raise BadRequest(
                f"messages[{index}]: a {role} block of type '{block.type}' is not supported "
                "(text, tool_use in assistant turns, tool_result in user turns).",
                details={"message": index},
            )
    text = "".join(texts)
    if role == "assistant":
        return [InputMessage(MessageRole.ASSISTANT, text, tool_calls=tuple(calls))]
    return [*results, InputMessage(MessageRole.USER, text)] if text or not results else results


def _call(index: int, block: ContentBlockIn) -> RequestedCall:
    if not block.id or not block.name:
        raise BadRequest(f"messages[{index}]: a tool_use block needs an id and a name.")
    return RequestedCall(block.id, block.name, dict(block.input or {}))


def _result(index: int, block: ContentBlockIn) -> InputMessage:
    if not block.tool_use_id:
        raise BadRequest(f"messages[{index}]: a tool_result block needs its tool_use_id.")
    text = _result_text(index, block.content)
    if block.is_error:
        text = f"Error: {text}"
    return InputMessage(MessageRole.TOOL, text, tool_call_id=block.tool_use_id)


def _result_text(index: int, content: str | list[ResultPartIn] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if any(part.type != "text" for part in content):
        raise BadRequest(f"messages[{index}]: tool results may hold only text.")
    return "".join(part.text or "" for part in content)


def _tool(name: str, description: str | None, schema: dict[str, Any]) -> dict[str, object]:
    function: dict[str, object] = {"name": name, "parameters": schema}
    if description:
        function["description"] = description
    return {"type": "function", "function": function}


def _tool_choice(body: MessagesIn) -> ToolChoice | None:
    choice = body.tool_choice
    if choice is None:
        return None
    if choice.type == "tool":
        if not choice.name:
            raise BadRequest("tool_choice of type 'tool' needs the tool's name.")
        return ToolChoice("required", choice.name)
    mode = TOOL_CHOICE_MODES[choice.type]
    return ToolChoice("required" if mode == "required" else "none" if mode == "none" else "auto")


def stop_reason(reason: str | None) -> str:
    return STOP_REASONS.get(reason or "stop", reason or "end_turn")


def message(result: TurnResult, model: str) -> Json:
    """The non-streaming answer of a turn that closed without error."""
    assert result.started is not None
    assert result.closed is not None
    text = result.closed.assistant_message.content
    content: list[Json] = [{"type": "text", "text": text}] if text else []
    content += [_tool_use(call) for call in result.tool_calls]
    return {
        "id": f"msg_{result.started.execution.id}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(result.finish_reason),
        "stop_sequence": None,
        "usage": anthropic_usage(result.usage),
    }


def _tool_use(call: ToolCallRequested) -> Json:
    return {"type": "tool_use", "id": call.tool_call_id, "name": call.name, "input": call.arguments}


def error_payload(error: ChatterError) -> Json:
    wired = wire_error(error)
    return anthropic_error_body(wired)


class EventWriter:
    """A turn's events as Anthropic stream events (name and JSON data).

    The input counts are known when the upstream call ends, so `message_start` carries
    zeros and `message_delta` the whole usage (cumulative, as Anthropic's API sends it; the
    `anthropic` SDK takes every count from it)."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._result = TurnResult()
        self._blocks = 0
        self._text_open = False

    def write(self, event: TurnEvent) -> list[Frame]:
        self._result.add(event)
        if isinstance(event, TurnStarted):
            return [self._message_start(event)]
        if isinstance(event, TextDelta):
            return self._text(event.text) if event.text else []
        if isinstance(event, ToolCallRequested):
            return [*self._close_text(), *self._tool_use(event)]
        if isinstance(event, TurnRefused):
            return [_frame("error", error_payload(event.error))]
        if isinstance(event, TurnClosed):
            return self._closed(event)
        return []

    def _message_start(self, event: TurnStarted) -> Frame:
        shell: Json = {
            "id": f"msg_{event.execution.id}",
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": anthropic_usage(Usage()),
        }
        return _frame("message_start", {"type": "message_start", "message": shell})

    def _text(self, text: str) -> list[Frame]:
        frames = []
        if not self._text_open:
            block = {"type": "text", "text": ""}
            frames.append(self._block_event("content_block_start", content_block=block))
            self._text_open = True
        delta = {"type": "text_delta", "text": text}
        frames.append(self._block_event("content_block_delta", delta=delta))
        return frames

    def _close_text(self) -> list[Frame]:
        if not self._text_open:
            return []
        self._text_open = False
        frame = self._block_event("content_block_stop")
        self._blocks += 1
        return [frame]

    def _tool_use(self, event: ToolCallRequested) -> list[Frame]:
        block = {"type": "tool_use", "id": event.tool_call_id, "name": event.name, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(event.arguments)}
        frames = [
            self._block_event("content_block_start", content_block=block),
            self._block_event("content_block_delta", delta=delta),
            self._block_event("content_block_stop"),
        ]
        self._blocks += 1
        return frames

    def _closed(self, event: TurnClosed) -> list[Frame]:
        if event.error is not None:
            return [_frame("error", error_payload(event.error))]
        delta = {"stop_reason": stop_reason(self._result.finish_reason), "stop_sequence": None}
        usage = anthropic_usage(self._result.usage)
        return [
            *self._close_text(),
            _frame("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
            _frame("message_stop", {"type": "message_stop"}),
        ]

    def _block_event(self, kind: str, **fields: Any) -> Frame:
        return _frame(kind, {"type": kind, "index": self._blocks, **fields})


def _frame(kind: str, data: Json) -> Frame:
    return kind, json.dumps(data)
