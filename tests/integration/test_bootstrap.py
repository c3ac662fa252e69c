"""Development bootstrap: the first start on an empty database prints an admin API key once.

This module uses `database_url` (migrated, no users) and never `client` or `make_user`, so
the database is empty until the development start creates the admin."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from chatter.app import served_url
from chatter.observability.logging import configure_logging
from chatter.storage.db import create_engine
from chatter.storage.models import User
from conftest import make_settings, running_app

KEY = re.compile(r"API key:\s+(chk_\S+)")
PASSWORD = re.compile(r"password:\s+(\S+)")
TRY = re.compile(r'Try: curl -H "Authorization: Bearer (chk_\S+)" (http://\S+)/api/v1/auth/me')


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Apps built inside a test bind logging to the captured stderr; rebind it afterwards.

    Requested before capsys so it is torn down after it."""
    yield
    configure_logging()


async def user_count(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(select(func.count()).select_from(User))
    finally:
        await engine.dispose()
    return int(count or 0)


async def test_no_bootstrap_outside_development_or_when_disabled(
    database_url: str, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Runs first (file order), while the module database is still empty.
    for settings in (
        make_settings(database_url, env="test"),
        make_settings(database_url, env="development", bootstrap_admin=False),
    ):
        async with running_app(settings):
            pass
    assert "API key" not in capsys.readouterr().out
    assert await user_count(database_url) == 0


async def test_development_start_prints_an_admin_key_once(
    database_url: str, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await user_count(database_url) == 0
    # As `chatter serve --host 0.0.0.0 --port 9123` builds it: the bind address in settings.
    settings = make_settings(database_url, env="development", host="0.0.0.0", port=9123)

    async with running_app(settings) as (_, client):
        out = capsys.readouterr().out
        keys = KEY.findall(out)
        assert len(keys) == 1, out
        key = keys[0]
        assert "admin@chatter.local" in out
        password_match = PASSWORD.search(out)
        assert password_match is not None, out
        # The Try line names the address served, a wildcard bind as loopback.
        assert TRY.findall(out) == [(key, "http://127.0.0.1:9123")], out

        me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"})
        assert me.status_code == 200, me.text
        assert me.json()["role"] == "admin"
        assert me.json()["email"] == "admin@chatter.local"

        login = await client.post(
            "/api/v1/auth/login",
            json={"email": "admin@chatter.local", "password": password_match.group(1)},
        )
        assert login.status_code == 200, login.text

        listed = await client.get(
            "/api/v1/auth/api-keys", headers={"Authorization": f"Bearer {key}"}
        )
        assert [item["name"] for item in listed.json()] == ["bootstrap"]
        assert key not in listed.text

    # A second start finds a user and prints nothing.
    async with running_app(settings) as (_, client):
        again = capsys.readouterr().out
        assert "chk_" not in again
        assert "API key" not in again
        assert again.strip() == ""
        # The printed key keeps working.
        me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"})
        assert me.status_code == 200, me.text
    assert await user_count(database_url) == 1


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("chatter.internal", "http://chatter.internal:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),
        ("::", "http://[::1]:8000"),
        ("::1", "http://[::1]:8000"),
    ],
)
def test_the_try_line_url_is_one_curl_can_reach(host: str, url: str) -> None:
    assert served_url(make_settings("sqlite+aiosqlite://", host=host, port=8000)) == url
