"""Chatter's built-in offline chat model "demo".

Deterministic canned replies, genuine chunk-by-chunk streaming, simple tool calling and
usage counted with the real o200k_base tokenizer, so the whole pipeline (streaming, tool
loops, usage recording) can be exercised without network access or API keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from chatter.providers import tokens

__all__ = ["CALCULATOR_TOOL", "CURRENT_TIME_TOOL", "DemoChatModel"]

CALCULATOR_TOOL = "calculator"
CURRENT_TIME_TOOL = "current_time"

FinishReason = Literal["stop", "tool_calls", "length"]

_INTRO = "I'm Chatter's offline demo model."
_GREETING = re.compile(
    r"^(hello|hi|hey|hiya|howdy|greetings|good (morning|afternoon|evening))\b", re.I
)
_CALC_INTENT = re.compile(
    r"\b(calculate|compute|evaluate|solve|how much is|what(?:['\u2019]s| is))\b", re.I
)
_TIME_INTENT = re.compile(
    r"\b(what time|time is it|current (time|date)|what day is it|today['\u2019]s date"
    r"|what(?:['\u2019]s| is) (the |today['\u2019]s )?date)\b",
    re.I,
)
# Maximal runs of arithmetic characters; a run only counts as an expression when it
# contains a binary operator between operands (so "3.5" or "-2" alone do not).
_EXPR_RUN = re.compile(r"[\d\s+\-*/^%().]+")
_BINARY_OP = re.compile(r"[\d.)]\s*(\*\*|[-+*/^%])\s*[-+(\d.]")
# Keeps trailing whitespace on each piece so the pieces concatenate to the full reply.
_PIECE = re.compile(r"\S+\s*|\s+")
_QUOTE_MAX_WORDS = 12


@dataclass(frozen=True)
class _Reply:
    """Everything one model call returns; shared by the streaming and invoke paths."""

    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    usage: UsageMetadata = field(
        default_factory=lambda: UsageMetadata(input_tokens=0, output_tokens=0, total_tokens=0)
    )


class DemoChatModel(BaseChatModel):
    """Offline, deterministic chat model that streams word by word and reports usage."""

    model_name: str = "demo-1"
    chunk_delay_s: float = 0.0
    """Pause between streamed chunks, to make streaming visible (and testable)."""
    temperature: float | None = None
    """Accepted for interface parity with real providers; replies stay deterministic."""
    max_tokens: int | None = None
    """Truncate text replies to this many tokens (finish_reason "length")."""

    @property
    def _llm_type(self) -> str:
        return "chatter-demo"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "chatter"
        params["ls_model_name"] = self.model_name
        return params

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self._reply(messages, stop, kwargs)
        return ChatResult(generations=[ChatGeneration(message=self._to_message(reply))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Pure in-process work: no need for the base class's thread-pool hop.
        return self._generate(messages, stop, None, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages, stop, kwargs)
        for index, chunk in enumerate(self._to_chunks(reply)):
            if index and self.chunk_delay_s > 0:
                time.sleep(self.chunk_delay_s)
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        reply = self._reply(messages, stop, kwargs)
        for index, chunk in enumerate(self._to_chunks(reply)):
            if index and self.chunk_delay_s > 0:
                await asyncio.sleep(self.chunk_delay_s)
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def _reply(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: Mapping[str, Any]
    ) -> _Reply:
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        tools: Sequence[Any] = kwargs.get("tools") or ()
        use_tools = kwargs.get("tool_choice") != "none"
        tool_names = frozenset(_tool_names(tools)) if use_tools else frozenset()
        return _finalize(_draft(messages, tool_names), messages, stop, max_tokens)

    def _response_metadata(self, reply: _Reply) -> dict[str, Any]:
        return {"model_name": self.model_name, "finish_reason": reply.finish_reason}

    def _to_message(self, reply: _Reply) -> AIMessage:
        return AIMessage(
            content=reply.text,
            tool_calls=reply.tool_calls,
            usage_metadata=reply.usage,
            response_metadata=self._response_metadata(reply),
        )

    def _to_chunks(self, reply: _Reply) -> Iterator[ChatGenerationChunk]:
        for piece in _PIECE.findall(reply.text):
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        for index, call in enumerate(reply.tool_calls):
            call_chunk = tool_call_chunk(
                name=call["name"], args=json.dumps(call["args"]), id=call["id"], index=index
            )
            yield ChatGenerationChunk(
                message=AIMessageChunk(content="", tool_call_chunks=[call_chunk])
            )
        # Usage and metadata go out exactly once, on a final empty chunk (like OpenAI's
        # include_usage chunk): merging chunks sums usage and concatenates strings.
        # chunk_position="last" stops BaseChatModel from appending its own empty chunk.
        final = AIMessageChunk(
            content="",
            usage_metadata=reply.usage,
            response_metadata=self._response_metadata(reply),
            chunk_position="last",
        )
        yield ChatGenerationChunk(message=final)


def _tool_names(tools: Sequence[Any]) -> Iterator[str]:
    for tool in tools:
        # Idempotent for already-formatted tools; also accepts tools passed at call time.
        spec = convert_to_openai_tool(tool)
        name = spec.get("function", {}).get("name")
        if isinstance(name, str):
            yield name


def _draft(messages: Sequence[BaseMessage], tool_names: frozenset[str]) -> _Reply:
    """Decide what to answer: a tool result summary, a tool call, or canned text."""
    last = messages[-1] if messages else None
    if isinstance(last, ToolMessage):
        return _Reply(text=_tool_result_reply(last, messages))
    if isinstance(last, HumanMessage) and tool_names:
        call = _pick_tool_call(tokens.message_text(last), tool_names, len(messages))
        if call is not None:
            return _Reply(text="", tool_calls=[call], finish_reason="tool_calls")
    return _Reply(text=_text_reply(messages))


def _finalize(
    draft: _Reply, messages: Sequence[BaseMessage], stop: list[str] | None, max_tokens: Any
) -> _Reply:
    """Apply stop sequences and max_tokens to text replies, then count usage."""
    text, finish_reason = draft.text, draft.finish_reason
    if not draft.tool_calls:
        text = _cut_at_stop(text, stop)
        if isinstance(max_tokens, int):
            truncated = tokens.truncate_to_tokens(text, max_tokens)
            if truncated != text:
                text, finish_reason = truncated, "length"
    input_tokens = tokens.count_message_tokens(messages)
    output_tokens = tokens.count_tokens(text) + tokens.count_tool_call_tokens(draft.tool_calls)
    usage = UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )
    return _Reply(text, draft.tool_calls, finish_reason, usage)


def _cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    cuts = [text.find(s) for s in stop or () if s and s in text]
    return text[: min(cuts)] if cuts else text


def _pick_tool_call(text: str, tool_names: frozenset[str], position: int) -> ToolCall | None:
    if CALCULATOR_TOOL in tool_names:
        expression = _extract_expression(text)
        if expression is not None:
            return _make_tool_call(CALCULATOR_TOOL, {"expression": expression}, position)
    if CURRENT_TIME_TOOL in tool_names and _TIME_INTENT.search(text):
        return _make_tool_call(CURRENT_TIME_TOOL, {}, position)
    return None


def _extract_expression(text: str) -> str | None:
    """The arithmetic expression the user asks to calculate, as they wrote it."""
    runs = [m.group().strip() for m in _EXPR_RUN.finditer(text)]
    # A trailing "." is sentence punctuation ("Calculate 2+2."), not a decimal point.
    candidates = [run.rstrip(".").rstrip() for run in runs if _BINARY_OP.search(run)]
    if not candidates:
        return None
    expression = max(candidates, key=len)
    # Without an explicit "calculate"/"what is", only a bare expression counts, so that
    # "call me at 555-1234" does not trigger the calculator.
    bare = text.strip().rstrip("?=. ").strip() == expression
    return expression if bare or _CALC_INTENT.search(text) else None


def _make_tool_call(name: str, args: dict[str, Any], position: int) -> ToolCall:
    # Deterministic for the same conversation, yet distinct across turns of one chat.
    seed = f"{position}:{name}:{json.dumps(args, sort_keys=True)}"
    digest = hashlib.sha256(seed.encode()).hexdigest()[:16]
    return tool_call(name=name, args=args, id=f"call_{digest}")


def _find_tool_call(messages: Sequence[BaseMessage], call_id: str) -> ToolCall | None:
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                if call["id"] == call_id:
                    return call
    return None


def _tool_result_reply(result: ToolMessage, messages: Sequence[BaseMessage]) -> str:
    content = tokens.message_text(result).strip()
    call = _find_tool_call(messages, result.tool_call_id)
    name = result.name or (call["name"] if call else "tool")
    expression = call["args"].get("expression") if call else None
    if result.status == "error":
        return f"Sorry, the {name} tool failed: {content}"
    if name == CALCULATOR_TOOL and isinstance(expression, str):
        return f"The calculator says {expression} = {content}."
    if name == CURRENT_TIME_TOOL:
        return f"It is currently {content}."
    return f"The {name} tool returned: {content}"


def _last_human_text(messages: Sequence[BaseMessage]) -> str | None:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return " ".join(tokens.message_text(message).split())
    return None


def _quote(text: str) -> str:
    words = text.split()
    if len(words) <= _QUOTE_MAX_WORDS:
        return text
    return " ".join(words[:_QUOTE_MAX_WORDS]) + "…"


def _text_reply(messages: Sequence[BaseMessage]) -> str:
    text = _last_human_text(messages)
    if text is None:
        return f"Hello! {_INTRO} Send me a message and I'll answer without any network calls."
    if not text:
        return f"Your message looks empty. {_INTRO} Type something and I'll reply."
    if _GREETING.match(text):
        opening = f"Hello! {_INTRO}"
        closing = "Ask me anything, or ask me to calculate something like 12*(3+4)."
    elif text.endswith("?"):
        opening = f"Good question! {_INTRO}"
        closing = "I can't look up real answers, so connect a real provider for one."
    else:
        opening = f"Thanks for your message! {_INTRO}"
        closing = "My replies are canned, but every token is counted like a real provider's."
    count = len(text.split())
    turn = sum(isinstance(m, HumanMessage) for m in messages)
    return (
        f'{opening} You said: "{_quote(text)}" ({count} word{"" if count == 1 else "s"}). '
        f"That is message {turn} from you in this conversation. {closing}"
    )
