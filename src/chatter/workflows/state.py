"""Graph state and the per-run context every node reads."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.graph.message import add_messages

from chatter.providers.registry import ModelOptions, ProviderRegistry, ResolvedModel
from chatter.workflows.events import ModelCallRecord, ToolCallRecord
from chatter.workflows.ledger import CallLedger
from chatter.workflows.tools.limits import ToolLimits

CONTEXT_KEY = "chatter_run"


class WorkflowState(TypedDict):
    messages: Annotated[list[BaseMessage], add_messages]
    # One record per model call, accumulated by the reducer: the run's usage is their sum.
    usage_records: Annotated[list[ModelCallRecord], operator.add]
    tool_records: Annotated[list[ToolCallRecord], operator.add]
    model_calls: int
    # Values `variable` nodes set; conditionals compare them. Updates merge key by key.
    variables: Annotated[dict[str, Any], merge_variables]


def merge_variables(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    return {**current, **update}


@dataclass(frozen=True)
class RunContext:
    resolved: ResolvedModel
    chat_model: BaseChatModel
    ledger: CallLedger
    tools: dict[str, BaseTool]
    max_tool_iterations: int
    # Whose run this is: tools that read data (conversation_search) see only this user's.
    user_id: str
    conversation_id: str
    # Model nodes that name their own provider/model/options resolve them here; the turn's
    # options are the defaults for what a node leaves out.
    registry: ProviderRegistry | None = None
    options: ModelOptions = field(default_factory=ModelOptions)

    def model_for(
        self,
        provider: str | None,
        model: str | None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> tuple[ResolvedModel, BaseChatModel]:
        """The node's model: the turn's own unless the node overrides something."""
        overrides = (provider, model, temperature, max_tokens)
        if all(value is None for value in overrides) or self.registry is None:
            return self.resolved, self.chat_model
        resolved = self.resolved
        if provider is not None or model is not None:
            resolved = self.registry.resolve(provider or self.resolved.provider, model)
        options = ModelOptions(
            self.options.temperature if temperature is None else temperature,
            self.options.max_tokens if max_tokens is None else max_tokens,
        )
        self.registry.check_options(resolved, options)
        return resolved, self.registry.chat_model(resolved, options)

    # Timeout and size bounds of each tool call (CHATTER_TOOLS__*).
    tool_limits: ToolLimits = field(default_factory=ToolLimits)
    # A compatible endpoint's client tools (OpenAI function format) and tool_choice in the
    # provider's dialect: declared to the model, never run here (the client runs them).
    client_tools: tuple[dict[str, Any], ...] = ()
    client_tool_choice: Any = None


def run_context(config: RunnableConfig) -> RunContext:
    context = config.get("configurable", {}).get(CONTEXT_KEY)
    if not isinstance(context, RunContext):
        raise RuntimeError("workflow run without a RunContext")
    return context


def node_name(config: RunnableConfig, default: str) -> str:
    name = config.get("metadata", {}).get("langgraph_node", default)
    return str(name)
