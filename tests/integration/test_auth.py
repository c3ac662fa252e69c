"""Auth as a user sees it: register, login, tokens, refresh rotation, logout, API keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from chatter.domain.clock import utcnow
from chatter.domain.ids import new_id
from chatter.settings import Settings
from chatter.storage.db import create_engine
from chatter.storage.models import ApiKey
from conftest import Actor, UserFactory, make_settings, running_app

AUTH = "/api/v1/auth"
PASSWORD = "correct horse battery"


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details", "correlation_id"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["correlation_id"] == response.headers["x-correlation-id"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    return dict(error)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def secret_of(key: str) -> str:
    """`chk_<hex prefix>_<secret>`; the secret itself may contain underscores."""
    marker, prefix, secret = key.split("_", 2)
    assert marker == "chk"
    assert prefix
    return secret


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{new_id().lower()}@example.com"


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post(f"{AUTH}/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_key(
    client: httpx.AsyncClient, actor: Actor, name: str = "laptop", **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        f"{AUTH}/api-keys", json={"name": name, **extra}, headers=actor.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# --- registration -------------------------------------------------------------------------


async def test_register_returns_the_user(client: httpx.AsyncClient) -> None:
    email = unique_email()
    response = await client.post(
        f"{AUTH}/register",
        json={"email": email, "password": PASSWORD, "display_name": "Ada"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == email
    assert body["display_name"] == "Ada"
    assert body["role"] == "user"
    assert body["is_active"] is True
    assert body["last_login_at"] is None
    assert "password" not in response.text
    assert "password_hash" not in body


async def test_register_duplicate_email_is_case_insensitive(client: httpx.AsyncClient) -> None:
    email = unique_email("Dup")
    first = await client.post(f"{AUTH}/register", json={"email": email, "password": PASSWORD})
    assert first.status_code == 201, first.text
    assert first.json()["email"] == email.lower()

    again = await client.post(
        f"{AUTH}/register", json={"email": email.upper(), "password": PASSWORD}
    )
    assert_error(again, 409, "conflict")

    # Logging in works whatever the case the user types.
    tokens = await login(client, email.upper())
    assert tokens["access_token"]


async def test_register_short_password_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{AUTH}/register", json={"email": unique_email(), "password": "short"}
    )
    error = assert_error(response, 422, "validation_error")
    assert any(item["loc"][-1] == "password" for item in error["details"])


async def test_register_invalid_email_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{AUTH}/register", json={"email": "not-an-email", "password": PASSWORD}
    )
    assert_error(response, 422, "validation_error")


async def test_registration_disabled_is_forbidden(database_url: str) -> None:
    settings = make_settings(database_url, auth={"allow_registration": False})
    async with running_app(settings) as (_, closed):
        response = await closed.post(
            f"{AUTH}/register", json={"email": unique_email(), "password": PASSWORD}
        )
        assert_error(response, 403, "forbidden")


# --- login and bearer authentication ------------------------------------------------------


async def test_login_and_me(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    actor = await make_user()
    tokens = await login(client, actor.email)
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] > 0
    me = await client.get(f"{AUTH}/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["id"] == actor.id
    assert body["email"] == actor.email
    assert body["last_login_at"] is not None


async def test_login_wrong_password(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    actor = await make_user()
    response = await client.post(
        f"{AUTH}/login", json={"email": actor.email, "password": "wrong password!"}
    )
    error = assert_error(response, 401, "unauthorized")
    unknown = await client.post(
        f"{AUTH}/login", json={"email": unique_email("nobody"), "password": "wrong password!"}
    )
    # Same answer whether or not the email exists.
    assert assert_error(unknown, 401, "unauthorized")["message"] == error["message"]


async def test_missing_authorization_is_401(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(f"{AUTH}/me"), 401, "unauthorized")


async def test_non_bearer_scheme_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{AUTH}/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_error(response, 401, "unauthorized")


async def test_garbage_bearer_is_401(client: httpx.AsyncClient) -> None:
    for token in ("garbage", "a.b.c", "chk_nope_nope", "chk_", "chk_onlyprefix"):
        response = await client.get(f"{AUTH}/me", headers=bearer(token))
        assert_error(response, 401, "unauthorized")


async def test_token_signed_with_another_secret_is_401(
    client: httpx.AsyncClient, database_url: str, make_user: UserFactory
) -> None:
    actor = await make_user()
    other = make_settings(database_url, secret_key="another-secret-key-that-is-long-enough-xyz")
    async with running_app(other) as (_, other_client):
        tokens = await login(other_client, actor.email)
    response = await client.get(f"{AUTH}/me", headers=bearer(tokens["access_token"]))
    assert_error(response, 401, "unauthorized")


async def test_refresh_token_is_not_an_access_token(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    actor = await make_user()
    tokens = await login(client, actor.email)
    response = await client.get(f"{AUTH}/me", headers=bearer(tokens["refresh_token"]))
    assert_error(response, 401, "unauthorized")


async def test_access_token_is_not_a_refresh_token(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    actor = await make_user()
    tokens = await login(client, actor.email)
    response = await client.post(f"{AUTH}/refresh", json={"refresh_token": tokens["access_token"]})
    assert_error(response, 401, "unauthorized")
    logout = await client.post(f"{AUTH}/logout", json={"refresh_token": tokens["access_token"]})
    assert_error(logout, 401, "unauthorized")


# --- refresh rotation and logout ----------------------------------------------------------


async def test_refresh_rotates_the_pair(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    actor = await make_user()
    first = await login(client, actor.email)
    response = await client.post(f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]

    me = await client.get(f"{AUTH}/me", headers=bearer(second["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == actor.id

    third = await client.post(f"{AUTH}/refresh", json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200, third.text


async def test_refresh_reuse_revokes_the_family(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    actor = await make_user()
    stolen = await login(client, actor.email)
    rotated = await client.post(f"{AUTH}/refresh", json={"refresh_token": stolen["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    fresh = rotated.json()

    # The old token comes back: refused...
    reuse = await client.post(f"{AUTH}/refresh", json={"refresh_token": stolen["refresh_token"]})
    assert_error(reuse, 401, "unauthorized")
    # ...and the legitimate newer token of the same family is refused too.
    after = await client.post(f"{AUTH}/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert_error(after, 401, "unauthorized")

    # Another login (a new family) is unaffected.
    other = await login(client, actor.email)
    ok = await client.post(f"{AUTH}/refresh", json={"refresh_token": other["refresh_token"]})
    assert ok.status_code == 200, ok.text


async def test_logout_revokes_the_refresh_token(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    actor = await make_user()
    tokens = await login(client, actor.email)
    response = await client.post(f"{AUTH}/logout", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 204, response.text
    assert response.content == b""

    refresh = await client.post(f"{AUTH}/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert_error(refresh, 401, "unauthorized")


async def test_logout_revokes_rotated_descendants(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    actor = await make_user()
    first = await login(client, actor.email)
    second = (
        await client.post(f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    response = await client.post(f"{AUTH}/logout", json={"refresh_token": second["refresh_token"]})
    assert response.status_code == 204, response.text
    refresh = await client.post(f"{AUTH}/refresh", json={"refresh_token": second["refresh_token"]})
    assert_error(refresh, 401, "unauthorized")


async def test_refresh_with_garbage_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{AUTH}/refresh", json={"refresh_token": "garbage"})
    assert_error(response, 401, "unauthorized")


# --- API keys -----------------------------------------------------------------------------


async def test_api_key_is_shown_once_and_authenticates(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    actor = await make_user()
    created = await create_key(client, actor, name="ci")
    key = created["key"]
    assert key.startswith("chk_")
    assert created["name"] == "ci"
    assert key.startswith(f"chk_{created['prefix']}_")
    assert created["revoked_at"] is None

    listed = await client.get(f"{AUTH}/api-keys", headers=actor.headers)
    assert listed.status_code == 200, listed.text
    items = listed.json()
    assert [item["id"] for item in items] == [created["id"]]
    assert "key" not in items[0]
    assert key not in listed.text
    secret = secret_of(key)
    assert secret not in listed.text

    me = await client.get(f"{AUTH}/me", headers=bearer(key))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == actor.id

    # Using the key records when it was last used.
    listed = await client.get(f"{AUTH}/api-keys", headers=bearer(key))
    assert listed.json()[0]["last_used_at"] is not None


async def test_api_key_with_a_wrong_secret_is_401(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    actor = await make_user()
    key = (await create_key(client, actor))["key"]
    forged = key.removesuffix(secret_of(key)) + "A" * 43
    assert_error(await client.get(f"{AUTH}/me", headers=bearer(forged)), 401, "unauthorized")


async def test_revoked_api_key_is_refused(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    actor = await make_user()
    created = await create_key(client, actor)
    assert (await client.get(f"{AUTH}/me", headers=bearer(created["key"]))).status_code == 200

    deleted = await client.delete(f"{AUTH}/api-keys/{created['id']}", headers=actor.headers)
    assert deleted.status_code == 204, deleted.text

    response = await client.get(f"{AUTH}/me", headers=bearer(created["key"]))
    assert_error(response, 401, "unauthorized")
    listed = (await client.get(f"{AUTH}/api-keys", headers=actor.headers)).json()
    assert listed[0]["revoked_at"] is not None


async def test_api_key_expiry_in_the_past_is_rejected(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    actor = await make_user()
    past = (utcnow() - timedelta(minutes=1)).isoformat()
    response = await client.post(
        f"{AUTH}/api-keys", json={"name": "old", "expires_at": past}, headers=actor.headers
    )
    assert_error(response, 400, "bad_request")


async def test_api_key_expiry_without_timezone_is_not_a_server_error(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    actor = await make_user()
    naive = (utcnow() + timedelta(days=1)).replace(tzinfo=None).isoformat()
    response = await client.post(
        f"{AUTH}/api-keys", json={"name": "naive", "expires_at": naive}, headers=actor.headers
    )
    assert_error(response, 422, "validation_error")


async def test_expired_api_key_is_refused(
    client: httpx.AsyncClient, make_user: UserFactory, settings: Settings
) -> None:
    actor = await make_user()
    soon = (utcnow() + timedelta(hours=1)).isoformat()
    created = await create_key(client, actor, expires_at=soon)
    assert created["expires_at"] is not None
    assert (await client.get(f"{AUTH}/me", headers=bearer(created["key"]))).status_code == 200

    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(ApiKey)
                .where(ApiKey.id == created["id"])
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
    finally:
        await engine.dispose()

    response = await client.get(f"{AUTH}/me", headers=bearer(created["key"]))
    assert_error(response, 401, "unauthorized")


async def test_api_key_secret_is_never_stored(
    client: httpx.AsyncClient, make_user: UserFactory, settings: Settings
) -> None:
    actor = await make_user()
    created = await create_key(client, actor)
    key = created["key"]
    secret = secret_of(key)
    assert len(secret) >= 32

    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(select(ApiKey.__table__).where(ApiKey.id == created["id"]))
            ).one()
    finally:
        await engine.dispose()
    values = [str(value) for value in row._mapping.values() if value is not None]
    assert values
    for value in values:
        assert key not in value
        assert secret not in value
    assert row._mapping["prefix"] == created["prefix"]


async def test_revoking_another_users_key_is_404(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    owner = await make_user()
    intruder = await make_user()
    created = await create_key(client, owner)

    response = await client.delete(f"{AUTH}/api-keys/{created['id']}", headers=intruder.headers)
    assert_error(response, 404, "not_found")
    # The owner's key still works and the intruder never sees it.
    assert (await client.get(f"{AUTH}/me", headers=bearer(created["key"]))).status_code == 200
    assert (await client.get(f"{AUTH}/api-keys", headers=intruder.headers)).json() == []

    missing = await client.delete(f"{AUTH}/api-keys/{new_id()}", headers=owner.headers)
    assert_error(missing, 404, "not_found")


async def test_api_key_routes_require_authentication(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(f"{AUTH}/api-keys"), 401, "unauthorized")
    response = await client.post(f"{AUTH}/api-keys", json={"name": "x"})
    assert_error(response, 401, "unauthorized")


async def test_concurrent_reuse_of_one_refresh_token_is_detected(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    import asyncio

    user = await make_user()
    login = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": user.password}
    )
    token = login.json()["refresh_token"]
    results = await asyncio.gather(
        *[client.post("/api/v1/auth/refresh", json={"refresh_token": token}) for _ in range(5)]
    )
    assert sorted(r.status_code for r in results).count(200) <= 1
    winners = [r for r in results if r.status_code == 200]
    for winner in winners:  # the reuse revoked the family, the winner's new token included
        again = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": winner.json()["refresh_token"]}
        )
        assert again.status_code == 401
