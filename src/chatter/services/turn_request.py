"""What a chat turn asks for, what admission decided, and the workflow run built from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.tools import BaseTool

from chatter.domain.budgets import Reservation
from chatter.providers.registry import ModelOptions, ProviderRegistry, ResolvedModel
from chatter.providers.tool_choice import provider_tool_choice
from chatter.services.client_turn import ClientTurn
from chatter.services.history import to_langchain
from chatter.settings import LLMSettings
from chatter.storage.models import Conversation, Message, User
from chatter.workflows.compiler import CompiledWorkflow
from chatter.workflows.executor import WorkflowRun
from chatter.workflows.ledger import CallLedger
from chatter.workflows.state import RunContext
from chatter.workflows.tools.limits import ToolLimits


@dataclass(frozen=True)
class ChatRequest:
    message: str
    conversation_id: str | None = None
    provider: str | None = None
    model: str | None = None
    workflow: str | None = None
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    variables: dict[str, Any] | None = None  # the run's initial `variables`
    # The compatible endpoints (services/compat_turns.py): the client's message list is the
    # model's input and (in part) the stored input; its tools are declared, not run.
    client: ClientTurn | None = None


@dataclass(frozen=True)
class AdmittedTurn:
    """Everything checked before the first write."""

    user: User
    request: ChatRequest
    conversation: Conversation | None
    resolved: ResolvedModel
    workflow: str
    system_prompt: str | None
    correlation_id: str
    options: ModelOptions
    compiled: CompiledWorkflow
    definition_id: str | None = None  # a stored definition's id and version; None: template
    definition_version: int | None = None
    reservation: Reservation | None = None  # held against the user's budget until the close
    iteration_limit: int = 0  # node steps the run may take (bounds a budget's estimate)


def workflow_run(
    turn: AdmittedTurn,
    conversation_id: str,
    history: list[Message],
    ledger: CallLedger,
    registry: ProviderRegistry,
    tools: dict[str, BaseTool],
    llm: LLMSettings,
    tool_limits: ToolLimits,
) -> WorkflowRun:
    """The run of the turn's compiled workflow: its context (the turn's model and options,
    the tools its model nodes name, whose run it is) and the model's input."""
    client = turn.request.client
    context = RunContext(
        resolved=turn.resolved,
        chat_model=registry.chat_model(turn.resolved, turn.options),
        ledger=ledger,
        tools=tools,
        max_tool_iterations=llm.max_tool_iterations,
        user_id=turn.user.id,
        conversation_id=conversation_id,
        registry=registry,
        options=turn.options,
        tool_limits=tool_limits,
        client_tools=client.tools if client else (),
        client_tool_choice=provider_tool_choice(
            turn.resolved.config.kind, client.tool_choice if client else None
        ),
    )
    if client is not None:  # the model sees exactly the client's messages
        return WorkflowRun(turn.compiled, client.model_input(), context, {})
    messages = to_langchain(history, turn.system_prompt, with_tools=bool(context.tools))
    return WorkflowRun(turn.compiled, messages, context, turn.request.variables or {})
