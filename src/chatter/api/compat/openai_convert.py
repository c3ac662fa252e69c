"""OpenAI Chat Completions <-> a Chatter turn: the request's messages and options in, the
completion (or its chunks) out."""

from __future__ import annotations

import json
from typing import Any

from chatter.api.compat.errors import openai_error_body, wire_error
from chatter.api.compat.openai_wire import (
    AssistantMessageIn,
    ChatCompletionIn,
    ContentPartIn,
    MessageIn,
    ToolMessageIn,
)
from chatter.api.compat.usage import openai_usage
from chatter.domain.enums import MessageRole
from chatter.errors import BadRequest, ChatterError
from chatter.providers.tool_choice import ToolChoice
from chatter.services.chat_events import TurnClosed, TurnEvent, TurnRefused, TurnStarted
from chatter.services.client_turn import InputMessage, RequestedCall
from chatter.services.compat_turns import CompatRequest, TurnResult
from chatter.workflows.events import TextDelta, ToolCallRequested

Json = dict[str, Any]
# Anthropic's stop reasons (an Anthropic model behind the OpenAI format) in OpenAI's words.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def compat_request(body: ChatCompletionIn, conversation_id: str | None) -> CompatRequest:
    _refuse_unsupported(body)
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    return CompatRequest(
        model=body.model,
        messages=[_message(index, message) for index, message in enumerate(body.messages)],
        conversation_id=conversation_id,
        tools=tuple(tool.model_dump(exclude_none=True) for tool in body.tools or ()),
        tool_choice=_tool_choice(body) if body.tools else None,
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        stop=stop,
    )


def _refuse_unsupported(body: ChatCompletionIn) -> None:
    format_type = (body.response_format or {}).get("type", "text")
    refused = {
        "n": body.n not in (None, 1),
        "logprobs": bool(body.logprobs),
        "top_logprobs": bool(body.top_logprobs),
        "response_format": format_type != "text",
        "frequency_penalty": bool(body.frequency_penalty),
        "presence_penalty": bool(body.presence_penalty),
        "logit_bias": bool(body.logit_bias),
        "functions": body.functions is not None,
        "function_call": body.function_call is not None,
        "audio": body.audio is not None,
        "modalities": body.modalities not in (None, ["text"]),
        "prediction": body.prediction is not None,
        "web_search_options": body.web_search_options is not None,
    }
    for name, is_refused in refused.items():
        if is_refused:
            hint = " (Chatter returns one choice per call)" if name == "n" else ""
            raise BadRequest(
                f"'{name}' is not supported by Chatter's compatible endpoint{hint}; "
                "leave it out or at its default.",
                details={"param": name},
            )


def _text(content: str | list[ContentPartIn] | None, index: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if part.type != "text":
            raise BadRequest(
                f"messages[{index}]: content parts of type '{part.type}' are not supported; "
                "only text.",
                details={"message": index},
            )
        parts.append(part.text or "")
    return "".join(parts)


def _message(index: int, message: MessageIn) -> InputMessage:
    text = _text(message.content, index)
    if message.role == "user":
        return InputMessage(MessageRole.USER, text)
    if isinstance(message, ToolMessageIn):
        return InputMessage(MessageRole.TOOL, text, tool_call_id=message.tool_call_id)
    if not isinstance(message, AssistantMessageIn):
        return InputMessage(MessageRole.SYSTEM, text)
    calls = tuple(
        RequestedCall(call.id, call.function.name, _arguments(call.function.arguments, index))
        for call in message.tool_calls or ()
    )
    return InputMessage(MessageRole.ASSISTANT, text, tool_calls=calls)


def _arguments(arguments: str, index: int) -> dict[str, Any]:
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise BadRequest(
            f"messages[{index}]: a tool call's arguments must be a JSON object.",
            details={"message": index},
        )
    return parsed


def _tool_choice(body: ChatCompletionIn) -> ToolChoice | None:
    choice = body.tool_choice
    if choice is None:
        return None
    if isinstance(choice, str):
        return ToolChoice(choice)
    return ToolChoice("required", choice.function.name)


def finish_reason(reason: str | None) -> str:
    return FINISH_REASONS.get(reason or "stop", reason or "stop")


def _tool_call(call: ToolCallRequested) -> Json:
    arguments = json.dumps(call.arguments)
    return {
        "id": call.tool_call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def completion(result: TurnResult, model: str) -> Json:
    """The non-streaming answer of a turn that closed without error."""
    assert result.started is not None
    assert result.closed is not None
    text = result.closed.assistant_message.content
    message: Json = {"role": "assistant", "content": text or None, "refusal": None}
    if result.tool_calls:
        message["tool_calls"] = [_tool_call(call) for call in result.tool_calls]
    return {
        "id": f"chatcmpl-{result.started.execution.id}",
        "object": "chat.completion",
        "created": int(result.started.execution.started_at.timestamp()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(result.finish_reason),
                "logprobs": None,
            }
        ],
        "usage": openai_usage(result.usage),
        "system_fingerprint": None,
    }


def error_payload(error: ChatterError) -> Json:
    wired = wire_error(error)
    return openai_error_body(wired)


class ChunkWriter:
    """A turn's events as chat.completion.chunk payloads (each one `data:` line's JSON,
    or `[DONE]`)."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self._model = model
        self._include_usage = include_usage
        self._id = ""
        self._created = 0
        self._tools = 0
        self._result = TurnResult()

    def write(self, event: TurnEvent) -> list[str]:
        self._result.add(event)
        if isinstance(event, TurnStarted):
            self._id = f"chatcmpl-{event.execution.id}"
            self._created = int(event.execution.started_at.timestamp())
            return [self._chunk({"role": "assistant", "content": ""})]
        if isinstance(event, TextDelta):
            return [self._chunk({"content": event.text})] if event.text else []
        if isinstance(event, ToolCallRequested):
            return self._tool_call(event)
        if isinstance(event, TurnRefused):
            return [json.dumps(error_payload(event.error))]
        if isinstance(event, TurnClosed):
            return self._closed(event)
        return []  # ModelCallFinished and tool results: kept in the result

    def _tool_call(self, event: ToolCallRequested) -> list[str]:
        index, self._tools = self._tools, self._tools + 1
        head = {"index": index, "id": event.tool_call_id, "type": "function"}
        arguments = {"index": index, "function": {"arguments": json.dumps(event.arguments)}}
        return [
            self._chunk(
                {"tool_calls": [{**head, "function": {"name": event.name, "arguments": ""}}]}
            ),
            self._chunk({"tool_calls": [arguments]}),
        ]

    def _closed(self, event: TurnClosed) -> list[str]:
        if event.error is not None:
            return [json.dumps(error_payload(event.error))]
        chunks = [self._chunk({}, finish_reason(self._result.finish_reason))]
        if self._include_usage:
            chunks.append(self._usage_chunk())
        return [*chunks, "[DONE]"]

    def _base(self) -> Json:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "system_fingerprint": None,
        }

    def _chunk(self, delta: Json, finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        chunk: Json = {**self._base(), "choices": [choice]}
        if self._include_usage:
            chunk["usage"] = None
        return json.dumps(chunk)

    def _usage_chunk(self) -> str:
        return json.dumps(
            {**self._base(), "choices": [], "usage": openai_usage(self._result.usage)}
        )
