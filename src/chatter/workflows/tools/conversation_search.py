"""conversation_search: finds text in the caller's own messages, never anyone else's.

The caller comes from the call's RunnableConfig (set by the tools node from the run's
context), never from the model's arguments, so a model cannot ask for another user's data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from chatter.workflows.tools.caller import caller_of

NAME = "conversation_search"
MAX_QUERY = 200
SNIPPET = 300  # characters of each message shown around the match


@dataclass(frozen=True)
class MessageHit:
    conversation_id: str
    conversation_title: str | None
    role: str
    content: str
    created_at: datetime


class MessageSearch(Protocol):
    async def search(self, *, user_id: str, query: str, limit: int) -> list[MessageHit]:
        """The user's messages containing `query` (case-insensitive), newest first."""
        ...


class _Arguments(BaseModel):
    query: str = Field(
        min_length=1, max_length=MAX_QUERY, description="Text to look for (case-insensitive)."
    )
    limit: int | None = Field(
        default=None, ge=1, description="At most this many messages (capped by the server)."
    )


def conversation_search_tool(search: MessageSearch, max_results: int) -> BaseTool:
    async def conversation_search(
        query: str, config: RunnableConfig, limit: int | None = None
    ) -> str:
        caller = caller_of(config)
        if caller is None:  # only a run's tools node calls tools; never guess a user
            raise RuntimeError("conversation_search needs the calling user")
        count = min(limit or max_results, max_results)
        hits = await search.search(user_id=caller.user_id, query=query, limit=count)
        return json.dumps([_hit_json(hit, query) for hit in hits], ensure_ascii=False)

    return StructuredTool.from_function(
        coroutine=conversation_search,
        name=NAME,
        description=(
            "Search the user's own past messages (all their conversations) for a text. "
            f"Returns up to {max_results} messages, newest first, as JSON."
        ),
        args_schema=_Arguments,
    )


def _hit_json(hit: MessageHit, query: str) -> dict[str, object]:
    return {
        "conversation_id": hit.conversation_id,
        "conversation_title": hit.conversation_title,
        "role": hit.role,
        "created_at": hit.created_at.isoformat(),
        "text": _snippet(hit.content, query),
    }


def _snippet(content: str, query: str) -> str:
    if len(content) <= SNIPPET:
        return content
    at = max(content.lower().find(query.lower()), 0)
    start = max(0, at - SNIPPET // 3)
    piece = content[start : start + SNIPPET]
    return ("…" if start else "") + piece + ("…" if start + SNIPPET < len(content) else "")
