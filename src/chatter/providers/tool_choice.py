"""A client's `tool_choice`, said the way each provider's chat model wants it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ChoiceMode = Literal["auto", "none", "required"]


@dataclass(frozen=True)
class ToolChoice:
    """`mode`, or the one tool the model must call (`name`, with mode "required")."""

    mode: ChoiceMode = "auto"
    name: str | None = None


def provider_tool_choice(kind: str, choice: ToolChoice | None) -> str | dict[str, object] | None:
    """`kind` is ProviderConfig.kind; None leaves the provider's default (auto)."""
    if choice is None:
        return None
    if kind == "anthropic":
        if choice.name is not None:
            return {"type": "tool", "name": choice.name}
        return {"type": {"required": "any"}.get(choice.mode, choice.mode)}
    if choice.name is not None:
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode
