"""Turns for the compatible endpoints (/v1/chat/completions, /v1/messages): the model named
as "provider/model" or an alias, the client's message list and tools, then a full Chatter
turn through ChatService (admit, open, run, close) - nothing of the accounting is skipped."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from chatter.domain.usage import Usage, total_usage
from chatter.errors import BadRequest, ChatterError, ModelNotFound
from chatter.providers.registry import ModelOptions, ProviderRegistry, ResolvedModel
from chatter.providers.tool_choice import ToolChoice, provider_tool_choice
from chatter.services.chat import AdmittedTurn, ChatRequest, ChatService
from chatter.services.chat_events import TurnClosed, TurnEvent, TurnRefused, TurnStarted
from chatter.services.client_turn import (
    ClientTurn,
    InputMessage,
    check_messages,
    stored_input,
    title_of,
)
from chatter.storage.models import User
from chatter.workflows.events import (
    ModelCallFinished,
    ModelCallRecord,
    TextDelta,
    ToolCallRequested,
)
from chatter.workflows.templates import CHAT


@dataclass(frozen=True)
class CompatRequest:
    """One call of a compatible endpoint, in neither wire format."""

    model: str
    messages: list[InputMessage]
    conversation_id: str | None = None
    tools: tuple[dict[str, object], ...] = ()  # OpenAI function format
    tool_choice: ToolChoice | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListedModel:
    id: str
    owned_by: str  # the provider


@dataclass
class TurnResult:
    """A compatible turn's outcome, collected from its events (the non-streaming answers)."""

    started: TurnStarted | None = None
    text: list[str] = field(default_factory=list)
    tool_calls: list[ToolCallRequested] = field(default_factory=list)
    calls: list[ModelCallRecord] = field(default_factory=list)
    closed: TurnClosed | None = None
    refused: ChatterError | None = None

    def add(self, event: TurnEvent) -> None:
        if isinstance(event, TurnStarted):
            self.started = event
        elif isinstance(event, TextDelta):
            self.text.append(event.text)
        elif isinstance(event, ToolCallRequested):
            self.tool_calls.append(event)
        elif isinstance(event, ModelCallFinished):
            self.calls.append(event.record)
        elif isinstance(event, TurnClosed):
            self.closed = event
        elif isinstance(event, TurnRefused):
            self.refused = event.error

    @property
    def error(self) -> ChatterError | None:
        return self.refused or (self.closed.error if self.closed else None)

    @property
    def usage(self) -> Usage:
        """The usage of the turn's model calls: what their LLMCall rows store."""
        return total_usage([call.usage for call in self.calls])

    @property
    def finish_reason(self) -> str | None:
        return self.calls[-1].finish_reason if self.calls else None


class CompatTurns:
    def __init__(
        self,
        chat: ChatService,
        registry: ProviderRegistry,
        aliases: Mapping[str, str],
        max_message_chars: int,
    ) -> None:
        self._chat = chat
        self._max_message_chars = max_message_chars
        self._registry = registry
        self._aliases = dict(aliases)

    def models(self) -> list[ListedModel]:
        """Every configured provider/model pair (a provider that takes any model name shows
        its default), then the aliases that lead to one."""
        listed = [
            ListedModel(f"{config.name}/{model}", config.name)
            for config in self._registry.providers()
            if config.configured
            for model in (config.models or (config.default_model,))
        ]
        for alias in sorted(self._aliases):
            try:
                listed.append(ListedModel(alias, self.resolve(alias).provider))
            except ModelNotFound:
                continue  # an alias to an unconfigured provider is not offered
        return listed

    def resolve(self, name: str) -> ResolvedModel:
        provider, slash, model = self._aliases.get(name, name).partition("/")
        if not slash or not provider or not model:
            raise ModelNotFound(
                f"The model '{name}' does not exist: name it 'provider/model' (e.g. "
                "'demo/demo-1') or by a configured alias; GET /v1/models lists them.",
                details={"model": name},
            )
        try:
            return self._registry.resolve(provider, model)
        except BadRequest as exc:  # unknown provider or model, or a provider not configured
            raise ModelNotFound(
                f"The model '{name}' does not exist: {exc.message}", details={"model": name}
            ) from exc

    async def admit(
        self,
        *,
        session: AsyncSession,
        user: User,
        request: CompatRequest,
        correlation_id: str,
    ) -> AdmittedTurn:
        """Everything checked before the first write: the model, the tool results, the
        tools, then ChatService's own admission (the conversation is yours, ...)."""
        resolved = self.resolve(request.model)
        check_messages(request.messages)
        self._check_lengths(request.messages)
        options = ModelOptions(request.temperature, request.max_tokens, request.top_p, request.stop)
        self._check_tools(resolved, options, request)
        client = ClientTurn(
            messages=tuple(request.messages),
            stored=stored_input(request.messages, continuing=request.conversation_id is not None),
            tools=request.tools,
            tool_choice=request.tool_choice,
            top_p=request.top_p,
            stop=request.stop,
        )
        chat_request = ChatRequest(
            message=title_of(request.messages),
            conversation_id=request.conversation_id,
            provider=resolved.provider,
            model=resolved.model,
            workflow=CHAT,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            client=client,
        )
        return await self._chat.admit(
            session=session, user=user, request=chat_request, correlation_id=correlation_id
        )

    def _check_lengths(self, messages: list[InputMessage]) -> None:
        """CHATTER_LIMITS__MAX_MESSAGE_CHARS, as on /api/v1/chat: refused before any work."""
        bound = self._max_message_chars
        for index, message in enumerate(messages):
            if len(message.content) > bound:
                raise BadRequest(
                    f"messages[{index}] is longer than {bound} characters.",
                    details={"message": index, "max_message_chars": bound},
                )

    def stream(self, turn: AdmittedTurn) -> AsyncGenerator[TurnEvent]:
        return self._chat.stream(turn)

    def _check_tools(
        self, resolved: ResolvedModel, options: ModelOptions, request: CompatRequest
    ) -> None:
        """Bind the tools once now (no network): a schema the provider's model refuses is
        a 400 before anything is written, not a failed turn."""
        if not request.tools:
            return
        names = {_tool_name(tool) for tool in request.tools}
        choice = request.tool_choice
        if choice is not None and choice.name is not None and choice.name not in names:
            raise BadRequest(f"tool_choice names '{choice.name}', which is not among the tools.")
        try:
            model = self._registry.chat_model(resolved, options)
            tool_choice = provider_tool_choice(resolved.config.kind, choice)
            model.bind_tools(list(request.tools), tool_choice=tool_choice)  # type: ignore[arg-type]
        except Exception as exc:  # the provider's converter refused a schema
            raise BadRequest(f"The tools cannot be used with this model: {exc}") from exc


def _tool_name(tool: Mapping[str, object]) -> str:
    function = tool.get("function")
    return str(function.get("name")) if isinstance(function, Mapping) else ""
