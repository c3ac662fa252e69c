"""A deterministic faulty model for the load tests: a responder for FakeOpenAIServer that
answers each model call of a turn normally, with an HTTP 500, too slowly (past Chatter's LLM
timeout) or with a stream cut mid-way, decided by a seeded hash of the turn's tag and the
call's index within the turn, so the same turn meets the same fault whatever the scheduling.

Chatter always asks for a stream (the non-streaming path drains the same stream), so a cut
applies to every call. A `chat_with_tools` turn's first call asks for the calculator and the
second one answers; either may meet a fault.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fakes.openai_server import FakeReply

TAG = re.compile(r"\[turn (\d+)\]")
SLOW_MARK = "[slow]"
TOOL_CALL = {"name": "calculator", "arguments": {"expression": "6*7"}}
ANSWER = " ".join(f"w{n}" for n in range(12))


class Fault(StrEnum):
    NONE = "none"
    HTTP_500 = "http_500"
    TIMEOUT = "timeout"
    CUT = "cut"


@dataclass(frozen=True)
class FaultRates:
    """Per model call: the share that answers 500, outlives the timeout, is cut."""

    http_500: float = 0.10
    timeout: float = 0.05
    cut: float = 0.05


def fault_for(seed: int, turn: int, call: int, rates: FaultRates) -> Fault:
    draw = random.Random(f"{seed}:{turn}:{call}").random()
    for fault, share in (
        (Fault.HTTP_500, rates.http_500),
        (Fault.TIMEOUT, rates.timeout),
        (Fault.CUT, rates.cut),
    ):
        if draw < share:
            return fault
        draw -= share
    return Fault.NONE


def turn_faults(seed: int, turn: int, calls: int, rates: FaultRates) -> list[Fault]:
    """The faults the turn's calls meet, up to and including the first one that fails (the
    turn ends there: Chatter runs with max_retries=0)."""
    faults: list[Fault] = []
    for call in range(calls):
        faults.append(fault_for(seed, turn, call, rates))
        if faults[-1] is not Fault.NONE:
            break
    return faults


def _last_user_text(messages: list[dict[str, Any]]) -> tuple[str, int]:
    """The turn's own message and how many tool answers follow it (the call's index)."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "user":
            content = messages[index].get("content")
            text = content if isinstance(content, str) else str(content)
            calls = sum(1 for m in messages[index + 1 :] if m.get("role") == "tool")
            return text, calls
    return "", 0


def faulty_responder(
    seed: int,
    rates: FaultRates,
    *,
    timeout_delay_s: float,
    chunk_delay_s: float = 0.0,
    slow_chunk_delay_s: float = 0.02,
) -> Callable[[dict[str, Any]], FakeReply]:
    """`set_responder` target. Messages carry `[turn N]`; `[slow]` ones stream slowly (for
    turns whose client leaves mid-stream)."""

    def respond(request: dict[str, Any]) -> FakeReply:
        text, call = _last_user_text(request.get("messages", []))
        match = TAG.search(text)
        turn = int(match.group(1)) if match else -1
        delay = slow_chunk_delay_s if SLOW_MARK in text else chunk_delay_s
        wants_tool = bool(request.get("tools")) and call == 0
        if wants_tool:
            reply = FakeReply(content="", tool_calls=[dict(TOOL_CALL)], chunk_delay_s=delay)
        else:
            reply = FakeReply(content=ANSWER, chunk_delay_s=delay)
        fault = fault_for(seed, turn, call, rates)
        if fault is Fault.HTTP_500:
            reply.status = 500
        elif fault is Fault.TIMEOUT:
            reply.delay_s = timeout_delay_s
        elif fault is Fault.CUT:
            # A tool call's stream has no content chunks to cut between: cut it at once.
            reply.break_after_chunks = 0 if wants_tool else 1 + turn % 5
        return reply

    return respond
