"""Whose tool call it is: passed to every tool in its RunnableConfig, so a tool that reads
data (conversation_search) reads only the caller's."""

from __future__ import annotations

from dataclasses import dataclass

from langchain_core.runnables import RunnableConfig

CALLER_KEY = "chatter_tool_caller"


@dataclass(frozen=True)
class ToolCaller:
    user_id: str
    conversation_id: str


def caller_config(caller: ToolCaller) -> RunnableConfig:
    return {"configurable": {CALLER_KEY: caller}, "callbacks": []}


def caller_of(config: RunnableConfig) -> ToolCaller | None:
    caller = config.get("configurable", {}).get(CALLER_KEY)
    return caller if isinstance(caller, ToolCaller) else None
