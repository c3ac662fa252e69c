"""ORM models: the whole data model, so later features only fill it in."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chatter.domain.clock import utcnow
from chatter.domain.ids import new_id
from chatter.storage.types import Money, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
ZERO = Decimal(0)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _id_column() -> Mapped[str]:
    return mapped_column(String(26), primary_key=True, default=new_id)


def _created_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), default=utcnow, nullable=False)


def _tokens() -> Mapped[int]:
    return mapped_column(Integer, default=0, server_default=text("0"), nullable=False)


def _money() -> Mapped[Decimal]:
    return mapped_column(Money(), default=ZERO, server_default=text("0"), nullable=False)


class TokenColumns:
    """The token counts every usage-carrying row has (see domain/usage.py)."""

    prompt_tokens: Mapped[int] = _tokens()
    completion_tokens: Mapped[int] = _tokens()
    total_tokens: Mapped[int] = _tokens()
    cached_tokens: Mapped[int] = _tokens()
    reasoning_tokens: Mapped[int] = _tokens()


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = _id_column()
    # Stored lower-cased: the unique index then makes email case-insensitive everywhere.
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="user", nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    # Carried in every access and refresh token; bumping it (password change, deactivation,
    # logout everywhere) ends all of the user's sessions at once.
    token_version: Mapped[int] = mapped_column(
        Integer, default=0, server_default=text("0"), nullable=False
    )
    # Set with the user's spend budget (storage/budgets.py): a turn of a user without one
    # costs no budget query, since this row is read to authenticate anyway.
    has_budget: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false"), nullable=False
    )
    created_at: Mapped[datetime] = _created_at()
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set by admins; NULL is the server's default (CHATTER_RATE_LIMITS__...).
    rate_limit_requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    rate_limit_tokens_per_minute: Mapped[int | None] = mapped_column(BigInteger)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = _id_column()
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    prefix: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime] = _created_at()
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RefreshToken(Base):
    """One row per issued refresh token; rotation marks the old one used."""

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = _id_column()
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    family_id: Mapped[str] = mapped_column(String(26), index=True, nullable=False)
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Conversation(TokenColumns, Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_at"),)

    id: Mapped[str] = _id_column()
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    title: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active", nullable=False)
    default_provider: Mapped[str | None] = mapped_column(String(64))
    default_model: Mapped[str | None] = mapped_column(String(128))
    default_system_prompt: Mapped[str | None] = mapped_column(Text)
    default_workflow: Mapped[str | None] = mapped_column(String(64))
    message_count: Mapped[int] = _tokens()
    total_cost: Mapped[Decimal] = _money()
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class WorkflowExecution(TokenColumns, Base):
    __tablename__ = "workflow_executions"
    __table_args__ = (
        Index("ix_workflow_executions_user_started", "user_id", "started_at"),
        # Analytics rebuild and check read finished executions by when they finished.
        Index("ix_workflow_executions_finished_at", "finished_at"),
        # Recovery looks up running executions by owner: a partial index holds only the
        # running ones, so it stays as small as the work in flight.
        Index(
            "ix_workflow_executions_running_owner",
            "owner_id",
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[str] = _id_column()
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    workflow_name: Mapped[str] = mapped_column(String(64), nullable=False)
    # What the turn resolved to; its calls' own provider and model are on their rows.
    provider: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    # The stored definition and version it ran (None for a built-in template, named by
    # workflow_name). The column keeps the name it had since the first schema.
    definition_id: Mapped[str | None] = mapped_column("workflow_definition_id", String(26))
    definition_version: Mapped[int | None] = mapped_column(Integer)
    # One entry per node step: node, type, status, duration_ms and its calls' usage.
    node_timings: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="running", nullable=False, index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    llm_call_count: Mapped[int] = _tokens()
    total_cost: Mapped[Decimal] = _money()
    error: Mapped[str | None] = mapped_column(Text)
    correlation_id: Mapped[str] = mapped_column(String(128), index=True, nullable=False)
    # The worker (`workers.id`) running it; None on rows from before workers had ids. No
    # foreign key: a dead worker's row is deleted once its executions are recovered.
    owner_id: Mapped[str | None] = mapped_column(String(26))


class WorkflowDefinitionRow(Base):
    """A user's workflow definition; its body lives in immutable versions. Deleting it is
    soft: executions keep referring to its versions."""

    __tablename__ = "workflow_definitions"
    __table_args__ = (Index("ix_workflow_definitions_user_updated", "user_id", "updated_at"),)

    id: Mapped[str] = _id_column()
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    current_version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WorkflowDefinitionVersion(Base):
    """One immutable version of a definition: its body as given (JSON)."""

    __tablename__ = "workflow_definition_versions"

    definition_id: Mapped[str] = mapped_column(
        ForeignKey("workflow_definitions.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    body: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = _created_at()


class Worker(Base):
    """One row per running `chatter serve` process (a new id per start), with its heartbeat.
    A worker whose heartbeat is older than the lease is dead: any worker recovers its
    running executions, then deletes its row."""

    __tablename__ = "workers"

    id: Mapped[str] = _id_column()
    hostname: Mapped[str] = mapped_column(String(255), nullable=False)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class Message(TokenColumns, Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "sequence", name="uq_messages_conversation_sequence"),
        Index("ix_messages_created_at", "created_at"),
    )

    id: Mapped[str] = _id_column()
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
    )
    sequence: Mapped[int] = mapped_column(Integer, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    content: Mapped[str] = mapped_column(Text, default="", nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="complete", nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    tool_call_id: Mapped[str | None] = mapped_column(String(128))
    cost: Mapped[Decimal] = _money()
    cost_known: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    currency: Mapped[str] = mapped_column(String(8), default="USD", nullable=False)
    usage_source: Mapped[str | None] = mapped_column(String(16))
    provider_used: Mapped[str | None] = mapped_column(String(64))
    model_used: Mapped[str | None] = mapped_column(String(128))
    response_time_ms: Mapped[int | None] = mapped_column(Integer)
    time_to_first_token_ms: Mapped[int | None] = mapped_column(Integer)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    correlation_id: Mapped[str | None] = mapped_column(String(128), index=True)
    workflow_execution_id: Mapped[str | None] = mapped_column(
        ForeignKey("workflow_executions.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = _created_at()


class LLMCall(TokenColumns, Base):
    __tablename__ = "llm_calls"
    __table_args__ = (Index("ix_llm_calls_created_at", "created_at"),)

    id: Mapped[str] = _id_column()
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("workflow_executions.id", ondelete="CASCADE"), index=True, nullable=False
    )
    node: Mapped[str] = mapped_column(String(64), nullable=False)
    provider: Mapped[str] = mapped_column(String(64), nullable=False)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    cost: Mapped[Decimal] = _money()
    cost_known: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    price_source: Mapped[str | None] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(8), default="USD", nullable=False)
    usage_source: Mapped[str] = mapped_column(String(16), nullable=False)
    latency_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    time_to_first_token_ms: Mapped[int | None] = mapped_column(Integer)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    correlation_id: Mapped[str] = mapped_column(String(128), index=True, nullable=False)
    created_at: Mapped[datetime] = _created_at()


class ToolInvocation(Base):
    """One row per tool invocation inside an execution (shown by GET /executions/{id})."""

    __tablename__ = "tool_calls"

    id: Mapped[str] = _id_column()
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("workflow_executions.id", ondelete="CASCADE"), index=True, nullable=False
    )
    node: Mapped[str] = mapped_column(String(64), nullable=False)
    tool_call_id: Mapped[str] = mapped_column(String(128), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    result: Mapped[str] = mapped_column(Text, default="", nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    error: Mapped[str | None] = mapped_column(Text)  # why it failed (migration 0007)
    latency_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    correlation_id: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime] = _created_at()


class Event(Base):
    """The outbox: every lifecycle event, written in the transaction of the change it
    describes. Ids come from `EventSequence` in commit order, so reading `id > n` never
    skips an event that commits later."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_user_id_id", "user_id", "id"),
        Index("ix_events_unpublished", "published_at", "id"),
        Index("ix_events_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    category: Mapped[str] = mapped_column(String(16), nullable=False)
    type: Mapped[str] = mapped_column(String(48), nullable=False, index=True)
    created_at: Mapped[datetime] = _created_at()
    user_id: Mapped[str | None] = mapped_column(String(26))
    conversation_id: Mapped[str | None] = mapped_column(String(26), index=True)
    execution_id: Mapped[str | None] = mapped_column(String(26), index=True)
    correlation_id: Mapped[str | None] = mapped_column(String(128), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EventSequence(Base):
    """One row: the last event id handed out. Taking ids is `UPDATE ... RETURNING`, whose
    row lock (held to commit) puts event ids in commit order on PostgreSQL too."""

    __tablename__ = "event_sequence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Webhook(Base):
    """A user's receiver of events. The secret signs every delivery, so it is kept as
    given back once at creation (a hash could not sign)."""

    __tablename__ = "webhooks"

    id: Mapped[str] = _id_column()
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    # None: every event type.
    event_types: Mapped[list[str] | None] = mapped_column(JSON)
    # Admins only: every user's events, not only the owner's.
    all_users: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    secret: Mapped[str] = mapped_column(String(128), nullable=False)
    # Events up to this id were committed before the webhook was; it gets only later ones.
    after_event_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = _created_at()


class WebhookDelivery(Base):
    """One event owed to one webhook, from its first attempt to success or giving up."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_webhook_event"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_created_at", "created_at"),
    )

    id: Mapped[str] = _id_column()
    webhook_id: Mapped[str] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False
    )
    # No foreign key: event retention may remove the event before the log expires.
    event_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    event_type: Mapped[str] = mapped_column(String(48), nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="pending", nullable=False)
    attempts: Mapped[int] = _tokens()
    # While an attempt is in flight this is its lease: past it, another worker retries.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookAttempt(Base):
    """The delivery log: one row per POST made."""

    __tablename__ = "webhook_attempts"

    id: Mapped[str] = _id_column()
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True, nullable=False
    )
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()


class WebhookCursor(Base):
    """One row: the last event id turned into deliveries. Locked by the dispatching worker
    for its transaction, so workers never dispatch the same events twice."""

    __tablename__ = "webhook_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_event_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
