"""The current time, as a tool."""

from __future__ import annotations

from langchain_core.tools import BaseTool, StructuredTool

from chatter.domain.clock import utcnow


def _current_time() -> str:
    return utcnow().isoformat(timespec="seconds")


def current_time_tool() -> BaseTool:
    return StructuredTool.from_function(
        func=_current_time,
        name="current_time",
        description="The current date and time in UTC (ISO 8601).",
    )
