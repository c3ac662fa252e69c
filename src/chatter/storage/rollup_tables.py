"""The analytics rollup tables (see storage/rollups.py). Core tables: the upserts and the
sums that read them are column lists, which a mapped class would only repeat."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, PrimaryKeyConstraint, String, Table, text

from chatter.domain.histogram import BUCKETS
from chatter.storage.models import Base
from chatter.storage.types import Money, UTCDateTime


def _count(name: str) -> Column[int]:
    return Column(name, BigInteger, server_default=text("0"), nullable=False)


# One row per UTC bucket and key, only ever incremented in SQL
# (`INSERT ... ON CONFLICT DO UPDATE SET x = x + excluded.x`).
ROLLUP_KEY = ("granularity", "bucket", "user_id", "provider", "model", "workflow", "currency")
ROLLUP_COUNTS = (
    "requests",  # model calls
    "call_errors",  # model calls that did not succeed
    "executions",  # finished workflow executions (chat turns)
    "errors",  # executions that failed
    "cancelled",  # executions that were cancelled
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "total_tokens",
    "unknown_price_calls",
    "estimated_calls",
    "tool_calls",
    "latency_ms_sum",
    "ttft_count",
    "ttft_ms_sum",
    *(f"latency_h{index}" for index in range(BUCKETS)),
    *(f"ttft_h{index}" for index in range(BUCKETS)),
)
usage_rollups = Table(
    "usage_rollups",
    Base.metadata,
    Column("granularity", String(8), nullable=False),  # minute | hour | day
    Column("bucket", UTCDateTime(), nullable=False),  # the bucket's start, UTC
    Column("user_id", String(26), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("workflow", String(64), nullable=False),
    Column("currency", String(8), nullable=False),
    *(_count(name) for name in ROLLUP_COUNTS),
    Column("cost", Money(), server_default=text("0"), nullable=False),  # known costs only
    PrimaryKeyConstraint(*ROLLUP_KEY, name="pk_usage_rollups"),
    Index("ix_usage_rollups_user_bucket", "user_id", "granularity", "bucket"),
)

# The same sums over every user: what admins read (totals, series, top models) is then a
# few rows per bucket, not one per user.
ROLLUP_ALL_KEY = tuple(name for name in ROLLUP_KEY if name != "user_id")
usage_rollups_all = Table(
    "usage_rollups_all",
    Base.metadata,
    Column("granularity", String(8), nullable=False),
    Column("bucket", UTCDateTime(), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("workflow", String(64), nullable=False),
    Column("currency", String(8), nullable=False),
    *(_count(name) for name in ROLLUP_COUNTS),
    Column("cost", Money(), server_default=text("0"), nullable=False),
    PrimaryKeyConstraint(*ROLLUP_ALL_KEY, name="pk_usage_rollups_all"),
)

USER_DAY_KEY = ("day", "user_id", "currency")
USER_DAY_COUNTS = ("requests", "executions", "total_tokens")
# Per user and day: the admin's "top users" and "active users" of a range read one row per
# user and day instead of one per user, model, workflow and bucket.
user_usage_days = Table(
    "user_usage_days",
    Base.metadata,
    Column("day", UTCDateTime(), nullable=False),
    Column("user_id", String(26), nullable=False),
    Column("currency", String(8), nullable=False),
    *(_count(name) for name in USER_DAY_COUNTS),
    Column("cost", Money(), server_default=text("0"), nullable=False),
    PrimaryKeyConstraint(*USER_DAY_KEY, name="pk_user_usage_days"),
)

CONVERSATION_DAY_KEY = ("day", "conversation_id", "currency")
CONVERSATION_DAY_COUNTS = ("requests", "total_tokens")
# Per conversation and day: "the most expensive conversations" of a range without a scan.
conversation_usage_days = Table(
    "conversation_usage_days",
    Base.metadata,
    Column("day", UTCDateTime(), nullable=False),
    Column("conversation_id", String(26), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("user_id", String(26), nullable=False),
    *(_count(name) for name in CONVERSATION_DAY_COUNTS),
    Column("cost", Money(), server_default=text("0"), nullable=False),
    PrimaryKeyConstraint(*CONVERSATION_DAY_KEY, name="pk_conversation_usage_days"),
    Index("ix_conversation_usage_days_user_day", "user_id", "day"),
)
