"""Migrations: they build the schema on an empty database, and the app insists on them.

This module works on `empty_database_url` itself (never `client`, whose fixture would
migrate the database before these tests could see it empty)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from chatter.app import UnmigratedDatabaseError
from chatter.storage.db import create_engine
from chatter.storage.migrate import pending_migrations, upgrade_to_head
from conftest import make_settings, running_app

TABLES = {
    "events",
    "event_sequence",
    "webhooks",
    "webhook_deliveries",
    "webhook_attempts",
    "webhook_cursor",
    "users",
    "api_keys",
    "refresh_tokens",
    "conversations",
    "messages",
    "workflow_executions",
    "llm_calls",
    "tool_calls",
}


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_migrations_apply_to_an_empty_database(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        async with engine.connect() as connection:
            assert not (TABLES & await connection.run_sync(_table_names))

        pending = await pending_migrations(engine)
        assert pending, "an empty database must have pending migrations"
        assert "0001" in pending

        await upgrade_to_head(engine)

        assert await pending_migrations(engine) == []
        async with engine.connect() as connection:
            tables = await connection.run_sync(_table_names)
        assert tables >= TABLES
        assert "alembic_version" in tables

        # Upgrading again is a no-op.
        await upgrade_to_head(engine)
        assert await pending_migrations(engine) == []
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Schema:
    user_columns: set[str]
    key_columns: set[str]
    message_uniques: list[list[str]]
    user_uniques: list[list[str]]


def _describe(connection: Connection) -> Schema:
    inspector = inspect(connection)

    def uniques(table: str) -> list[list[str]]:
        constraints = [list(u["column_names"]) for u in inspector.get_unique_constraints(table)]
        indexes = [
            [str(name) for name in i["column_names"]]
            for i in inspector.get_indexes(table)
            if i["unique"]
        ]
        return [sorted(columns) for columns in constraints + indexes]

    return Schema(
        user_columns={c["name"] for c in inspector.get_columns("users")},
        key_columns={c["name"] for c in inspector.get_columns("api_keys")},
        message_uniques=uniques("messages"),
        user_uniques=uniques("users"),
    )


async def test_schema_has_the_expected_columns_and_constraints(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        await upgrade_to_head(engine)
        async with engine.connect() as connection:
            schema = await connection.run_sync(_describe)
    finally:
        await engine.dispose()

    assert {"id", "email", "password_hash", "role", "is_active"} <= schema.user_columns
    assert "secret_hash" in schema.key_columns
    assert not {"key", "secret", "full_key"} & schema.key_columns
    assert ["conversation_id", "sequence"] in schema.message_uniques
    assert ["email"] in schema.user_uniques


async def test_app_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    fresh = f"sqlite+aiosqlite:///{tmp_path / 'unmigrated.db'}"
    with pytest.raises(UnmigratedDatabaseError) as raised:
        async with running_app(make_settings(fresh)):
            pytest.fail("the app must not start on an unmigrated database")
    message = str(raised.value)
    assert "chatter db upgrade" in message
    assert "not migrated" in message
    assert "pending migration" in message


async def test_readyz_after_migration(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()
    async with running_app(make_settings(empty_database_url)) as (_, client):
        response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == "ok"
