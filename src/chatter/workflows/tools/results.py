"""A tool's output as text for the model and the record, bounded in size."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.tools import ToolException

TRUNCATED = "\n[truncated: {shown} of {total} characters]"


def result_text(output: Any) -> str:
    """Text of what a tool returned: a string as is, content blocks (MCP tools) as their
    text joined, anything else as JSON (or its str)."""
    if isinstance(output, ToolMessage):
        output = output.content
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(isinstance(block, dict | str) for block in output):
        return "\n".join(_block_text(block) for block in output)
    try:
        return json.dumps(output, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(output)


def _block_text(block: dict[str, Any] | str) -> str:
    if isinstance(block, str):
        return block
    if block.get("type") == "text":
        return str(block.get("text", ""))
    return f"[{block.get('type', 'content')} block]"  # images and files: not text


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, saying so when cut."""
    if len(text) <= limit:
        return text
    marker = TRUNCATED.format(shown=limit, total=len(text))
    shown = max(limit - len(marker), 0)
    return text[:shown] + TRUNCATED.format(shown=shown, total=len(text))


def arguments_size(arguments: dict[str, Any]) -> int:
    return len(json.dumps(arguments, ensure_ascii=False, default=str))


def describe_error(exc: BaseException) -> str:
    """What went wrong: a tool's own error (ToolException) by its message, anything else as
    `Type: message`. MCP transports fail inside anyio task groups: the innermost error says
    what happened."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, ToolException) and str(exc):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
