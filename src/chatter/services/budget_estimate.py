"""What admitting a turn reserves: its prompt counted with the offline tokenizer, plus its
output bound (the request's max_tokens, or the configured default), per model call the
turn may make, priced like a finished call would be."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from langchain_core.messages import HumanMessage
from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.budgets import Amount
from chatter.domain.usage import TokenCounts
from chatter.providers.pricing import Pricer
from chatter.providers.registry import ResolvedModel
from chatter.providers.tokens import count_message_tokens, count_tokens
from chatter.services.client_turn import ClientTurn
from chatter.services.history import load_recent, to_langchain
from chatter.settings import BudgetSettings, LLMSettings
from chatter.storage.models import Conversation, User
from chatter.workflows.compiler import CompiledWorkflow


class PlannedRequest(Protocol):
    @property
    def message(self) -> str: ...

    @property
    def max_tokens(self) -> int | None: ...

    @property
    def client(self) -> ClientTurn | None: ...


class TurnPlan(Protocol):
    """What the estimate needs of an admitted turn (services/chat.py: AdmittedTurn)."""

    @property
    def user(self) -> User: ...

    @property
    def request(self) -> PlannedRequest: ...

    @property
    def conversation(self) -> Conversation | None: ...

    @property
    def resolved(self) -> ResolvedModel: ...

    @property
    def compiled(self) -> CompiledWorkflow: ...

    @property
    def system_prompt(self) -> str | None: ...

    @property
    def correlation_id(self) -> str: ...

    @property
    def iteration_limit(self) -> int: ...


@dataclass(frozen=True)
class Estimate:
    amount: Amount
    currency: str


async def estimate(
    session: AsyncSession,
    plan: TurnPlan,
    *,
    pricer: Pricer,
    llm: LLMSettings,
    budgets: BudgetSettings,
) -> Estimate:
    """Reads the conversation's recent history (the model will see it) in a short
    transaction of its own; a new conversation reads nothing."""
    compiled = plan.compiled
    with_tools = compiled.tool_names is None or bool(compiled.tool_names)
    client = plan.request.client
    if client is not None:  # a compatible endpoint's turn: the model sees the client's list
        # The declared tool schemas are sent with every call too.
        prompt = count_message_tokens(client.model_input())
        if client.tools:
            prompt += count_tokens(json.dumps(client.tools))
        return _priced(plan, prompt, 1, pricer, budgets)
    history = []
    if plan.conversation is not None:
        history = await load_recent(
            session,
            plan.conversation.id,
            llm.history_limit,
            up_to_sequence=plan.conversation.message_count,
        )
        await session.commit()
    messages = to_langchain(history, plan.system_prompt, with_tools=with_tools)
    prompt = count_message_tokens([*messages, HumanMessage(plan.request.message)])
    # Each model node (and summarising memory node) calls once; with tools, once per tool
    # round and once more to answer.
    rounds = llm.max_tool_iterations + 1 if with_tools else 1
    calls = compiled.model_calls * rounds
    if compiled.cyclic and not with_tools:  # a loop of its own: at most a call per step
        calls = max(calls, plan.iteration_limit)
    return _priced(plan, prompt, calls, pricer, budgets)


def _priced(
    plan: TurnPlan, prompt: int, calls: int, pricer: Pricer, budgets: BudgetSettings
) -> Estimate:
    """`calls` model calls, each with the prompt and the request's output bound."""
    output = plan.request.max_tokens or budgets.default_reserve_output_tokens
    # A node's own max_tokens replaces the request's: the larger bounds every call.
    output = max(output, plan.compiled.max_node_output or 0)
    tokens = TokenCounts(prompt * calls, output * calls)
    config = plan.resolved.config
    price = pricer.price(
        plan.resolved.provider,
        plan.resolved.model,
        config.genai_provider_id,
        tokens,
        free=config.free,
    )
    return Estimate(Amount(tokens.total_tokens, price.cost), price.currency)
