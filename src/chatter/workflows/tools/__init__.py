"""Built-in tools available to workflows."""

from __future__ import annotations

from langchain_core.tools import BaseTool

from chatter.workflows.tools.calculator import calculator_tool
from chatter.workflows.tools.clock import current_time_tool


def builtin_tools() -> dict[str, BaseTool]:
    tools = [calculator_tool(), current_time_tool()]
    return {tool.name: tool for tool in tools}
