"""The bounds every tool call runs under (CHATTER_TOOLS__*)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ToolLimits:
    timeout_s: float = 30.0
    max_result_chars: int = 10_000
    max_argument_chars: int = 20_000
