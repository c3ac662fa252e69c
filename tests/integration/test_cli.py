"""The `chatter` command, run as an operator would (CliRunner, settings from the environment).

CliRunner runs `asyncio.run` inside, so these tests are synchronous and use their own
SQLite files rather than the module-scoped async fixtures (also under PostgreSQL runs)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from chatter.cli.main import app
from chatter.storage.db import create_engine
from chatter.storage.migrate import alembic_config, describe_revision, pending_migrations
from chatter.storage.models import User
from conftest import make_settings, running_app

HEAD = describe_revision(ScriptDirectory.from_config(alembic_config()).get_current_head() or "")

PASSWORD = "operator password 1"


@pytest.fixture
def database_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite URL in CHATTER_DATABASE_URL; cwd moved so no stray .env is read."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHATTER_DATABASE_URL", url)
    monkeypatch.setenv("CHATTER_ENV", "test")
    return url


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def upgrade(url: str) -> str:
    result = invoke("db", "upgrade")
    assert result.exit_code == 0, result.output
    return result.output


def pending(url: str) -> list[str]:
    async def _pending() -> list[str]:
        engine = create_engine(url)
        try:
            return await pending_migrations(engine)
        finally:
            await engine.dispose()

    return asyncio.run(_pending())


def stored_user(url: str, email: str) -> User | None:
    async def _load() -> User | None:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                row = (await connection.execute(select(User).where(User.email == email))).first()
        finally:
            await engine.dispose()
        return None if row is None else User(**row._mapping)

    return asyncio.run(_load())


def login_me(url: str, email: str, password: str) -> tuple[int, dict[str, object]]:
    async def _login() -> tuple[int, dict[str, object]]:
        async with running_app(make_settings(url)) as (_, client):
            login = await client.post(
                "/api/v1/auth/login", json={"email": email, "password": password}
            )
            if login.status_code != 200:
                return login.status_code, {}
            token = login.json()["access_token"]
            me: httpx.Response = await client.get(
                "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
            )
            assert me.status_code == 200, me.text
            return login.status_code, dict(me.json())

    return asyncio.run(_login())


def test_db_upgrade_on_a_fresh_database_says_what_it_did(database_file: str) -> None:
    assert pending(database_file)
    first = upgrade(database_file)
    assert pending(database_file) == []
    assert first.strip() == (f"Upgraded {database_file} from no revision to {HEAD} (head).")
    # Running it again is harmless, and says so.
    again = upgrade(database_file)
    assert pending(database_file) == []
    assert again.strip() == f"{database_file} is already at head: {HEAD}."


def test_db_upgrade_of_an_unreachable_database_fails_clearly_and_hides_the_password(
    database_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on port 1 of the loopback: connection refused, at once.
    monkeypatch.setenv("CHATTER_DATABASE_URL", "postgresql+asyncpg://ops:s3cret@127.0.0.1:1/x")

    result = invoke("db", "upgrade")

    assert result.exit_code == 1
    assert result.output.startswith("Cannot upgrade postgresql+asyncpg://ops:***@127.0.0.1:1/x:")
    assert "s3cret" not in result.output
    assert "Traceback" not in result.output


def test_db_upgrade_of_a_malformed_url_shows_none_of_it(
    database_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATTER_DATABASE_URL", "ops:s3cret@db.internal")

    result = invoke("db", "upgrade")

    assert result.exit_code == 1
    assert "Cannot upgrade the database in CHATTER_DATABASE_URL" in result.output
    assert "s3cret" not in result.output


def test_users_create_admin_can_log_in(database_file: str) -> None:
    upgrade(database_file)
    result = invoke(
        "users", "create", "--email", "Ops@Example.com", "--password", PASSWORD, "--admin"
    )
    assert result.exit_code == 0, result.output
    assert "Created admin" in result.output

    user = stored_user(database_file, "ops@example.com")
    assert user is not None
    assert user.role == "admin"
    assert PASSWORD not in user.password_hash

    status, me = login_me(database_file, "ops@example.com", PASSWORD)
    assert status == 200
    assert me["role"] == "admin"
    assert me["email"] == "ops@example.com"


def test_users_create_plain_user_with_a_local_address(database_file: str) -> None:
    upgrade(database_file)
    # A special-use domain, as on a LAN: the user must still be able to log in.
    result = invoke("users", "create", "--email", "plain@chatter.local", "--password", PASSWORD)
    assert result.exit_code == 0, result.output
    status, me = login_me(database_file, "plain@chatter.local", PASSWORD)
    assert status == 200
    assert me["role"] == "user"


def test_users_create_duplicate_fails_clearly(database_file: str) -> None:
    upgrade(database_file)
    first = invoke("users", "create", "--email", "dup@example.com", "--password", PASSWORD)
    assert first.exit_code == 0, first.output

    again = invoke("users", "create", "--email", "DUP@example.com", "--password", PASSWORD)
    assert again.exit_code != 0
    assert "already exists" in again.output
    assert "Traceback" not in again.output


def test_users_create_short_password_fails(database_file: str) -> None:
    upgrade(database_file)
    result = invoke("users", "create", "--email", "short@example.com", "--password", "short")
    assert result.exit_code != 0
    assert "at least 8 characters" in result.output
    assert stored_user(database_file, "short@example.com") is None
