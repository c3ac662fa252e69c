"""Security events as the events table records them: logins, refused credentials, API keys,
requests for someone else's resource - with the request's correlation id and the right user,
and never a secret."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.domain.clock import utcnow
from chatter.domain.ids import new_id
from chatter.services.credentials import TokenIssuer
from chatter.settings import Settings
from chatter.storage.models import ApiKey, Event, User
from conftest import TEST_SECRET, Actor, UserFactory

AUTH = "/api/v1/auth"


@dataclass(frozen=True)
class Row:
    category: str
    type: str
    user_id: str | None
    correlation_id: str | None
    data: dict[str, Any]


def traced() -> tuple[str, dict[str, str]]:
    """A fresh correlation id, and the header that sends it."""
    correlation_id = f"sec-{new_id().lower()}"
    return correlation_id, {"X-Correlation-ID": correlation_id}


async def events_of(engine: AsyncEngine, correlation_id: str) -> list[Row]:
    query = (
        select(Event.category, Event.type, Event.user_id, Event.correlation_id, Event.data)
        .where(Event.correlation_id == correlation_id)
        .order_by(Event.id)
    )
    async with engine.connect() as connection:
        return [Row(*row) for row in (await connection.execute(query)).all()]


async def the_event(engine: AsyncEngine, correlation_id: str) -> Row:
    rows = await events_of(engine, correlation_id)
    assert len(rows) == 1, rows
    assert rows[0].category == "security"
    assert rows[0].correlation_id == correlation_id
    return rows[0]


async def event_count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(Event)) or 0)


async def assert_nowhere_in_events(engine: AsyncEngine, *secrets: str) -> None:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(Event))).all()
    dumped = json.dumps([[str(value) for value in row] for row in rows])
    for secret in secrets:
        assert secret not in dumped


def bearer(token: str, headers: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


async def test_login_succeeded(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine, app: FastAPI
) -> None:
    actor = await make_user()
    correlation_id, headers = traced()
    with app.state.container.publisher.bus.subscribe() as subscription:
        response = await client.post(
            f"{AUTH}/login",
            json={"email": actor.email.upper(), "password": actor.password},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        published = subscription.drain()

    event = await the_event(engine, correlation_id)
    assert (event.type, event.user_id, event.data) == (
        "login_succeeded",
        actor.id,
        {"method": "password"},
    )
    # Published once committed, under the same correlation id.
    assert [(e.type.value, e.correlation_id) for e in published] == [
        ("login_succeeded", correlation_id)
    ]
    tokens = response.json()
    await assert_nowhere_in_events(
        engine, actor.password, tokens["access_token"], tokens["refresh_token"]
    )


@pytest.mark.parametrize("reason", ["unknown_email", "bad_password", "inactive"])
async def test_login_failed_writes_exactly_one_event(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine, reason: str
) -> None:
    actor = await make_user()
    email, password, user_id = actor.email, actor.password, actor.id
    if reason == "unknown_email":
        email, user_id = f"Nobody-{new_id()}@Example.com", None
    elif reason == "bad_password":
        password = "not the password at all"
    else:
        async with engine.begin() as connection:
            await connection.execute(
                update(User).where(User.id == actor.id).values(is_active=False)
            )
    before = await event_count(engine)
    correlation_id, headers = traced()

    response = await client.post(
        f"{AUTH}/login", json={"email": email, "password": password}, headers=headers
    )

    assert response.status_code == 401, response.text
    assert await event_count(engine) == before + 1
    event = await the_event(engine, correlation_id)
    assert event.type == "login_failed"
    assert event.user_id == user_id
    assert event.data == {"email": email.lower(), "reason": reason}
    await assert_nowhere_in_events(engine, password)


async def test_refused_access_tokens(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine, settings: Settings
) -> None:
    actor = await make_user()
    expired_issuer = TokenIssuer(
        secret=TEST_SECRET,
        algorithm=settings.auth.jwt_algorithm,
        access_ttl=timedelta(minutes=-5),
        refresh_ttl=timedelta(days=1),
    )
    expired, _ = expired_issuer.issue(actor.id, "access")
    forged, _ = TokenIssuer(
        secret="another-secret-key-that-is-long-enough-0123456789",
        algorithm=settings.auth.jwt_algorithm,
        access_ttl=timedelta(minutes=5),
        refresh_ttl=timedelta(days=1),
    ).issue(actor.id, "access")
    refresh = (
        await client.post(f"{AUTH}/login", json={"email": actor.email, "password": actor.password})
    ).json()["refresh_token"]
    cases = [
        (expired, "expired", actor.id),  # the signature holds: the user is known
        (forged, "bad_signature", None),  # a claim we did not sign names nobody
        ("not-a-jwt", "malformed", None),
        (refresh, "wrong_type", actor.id),
    ]
    for token, reason, user_id in cases:
        correlation_id, headers = traced()
        response = await client.get(f"{AUTH}/me", headers=bearer(token, headers))
        assert response.status_code == 401, response.text
        event = await the_event(engine, correlation_id)
        assert (event.type, event.user_id, event.data) == (
            "token_refused",
            user_id,
            {"kind": "access_token", "reason": reason},
        ), token
    await assert_nowhere_in_events(engine, expired, forged, refresh)


async def test_refused_api_keys(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    actor = await make_user()
    created = (
        await client.post(f"{AUTH}/api-keys", json={"name": "ci"}, headers=actor.headers)
    ).json()
    key = created["key"]
    _, prefix, secret = key.split("_", 2)
    wrong_secret = f"chk_{prefix}_{'A' * 43}"
    expiring = (
        await client.post(f"{AUTH}/api-keys", json={"name": "short"}, headers=actor.headers)
    ).json()
    async with engine.begin() as connection:
        await connection.execute(
            update(ApiKey)
            .where(ApiKey.id == expiring["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    revoked = await client.delete(f"{AUTH}/api-keys/{created['id']}", headers=actor.headers)
    assert revoked.status_code == 204, revoked.text
    cases = [
        (key, "revoked", actor.id),
        (expiring["key"], "expired", actor.id),
        (wrong_secret, "bad_secret", None),  # the prefix names a key, the secret proves nothing
        (f"chk_{'0' * 12}_{'B' * 43}", "unknown", None),
        ("chk_nosecret", "malformed", None),
    ]
    for token, reason, user_id in cases:
        correlation_id, headers = traced()
        response = await client.get(f"{AUTH}/me", headers=bearer(token, headers))
        assert response.status_code == 401, response.text
        event = await the_event(engine, correlation_id)
        assert (event.type, event.user_id, event.data) == (
            "token_refused",
            user_id,
            {"kind": "api_key", "reason": reason},
        ), token
    await assert_nowhere_in_events(engine, key, secret, expiring["key"])


async def test_inactive_user_token_is_refused(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    actor = await make_user()
    async with engine.begin() as connection:
        await connection.execute(update(User).where(User.id == actor.id).values(is_active=False))
    correlation_id, headers = traced()
    response = await client.get(f"{AUTH}/me", headers={**actor.headers, **headers})
    assert response.status_code == 401, response.text
    event = await the_event(engine, correlation_id)
    assert (event.type, event.user_id, event.data) == (
        "token_refused",
        actor.id,
        {"kind": "access_token", "reason": "inactive_user"},
    )


async def test_reused_refresh_token_is_refused_with_the_family_revocation(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    actor = await make_user()
    login = await client.post(
        f"{AUTH}/login", json={"email": actor.email, "password": actor.password}
    )
    first = login.json()["refresh_token"]
    correlation_id, headers = traced()
    rotated = await client.post(f"{AUTH}/refresh", json={"refresh_token": first}, headers=headers)
    assert rotated.status_code == 200, rotated.text
    assert await events_of(engine, correlation_id) == []  # a valid refresh is no security event
    second = rotated.json()["refresh_token"]

    correlation_id, headers = traced()
    reused = await client.post(f"{AUTH}/refresh", json={"refresh_token": first}, headers=headers)
    assert reused.status_code == 401, reused.text
    event = await the_event(engine, correlation_id)
    assert (event.type, event.user_id, event.data) == (
        "token_refused",
        actor.id,
        {"kind": "refresh_token", "reason": "reused"},
    )
    # The reuse revoked the family (committed with the event): the rotated token is dead too.
    correlation_id, headers = traced()
    after = await client.post(f"{AUTH}/refresh", json={"refresh_token": second}, headers=headers)
    assert after.status_code == 401, after.text
    event = await the_event(engine, correlation_id)
    assert event.data == {"kind": "refresh_token", "reason": "revoked"}

    correlation_id, headers = traced()
    garbage = await client.post(f"{AUTH}/logout", json={"refresh_token": "x.y.z"}, headers=headers)
    assert garbage.status_code == 401, garbage.text
    event = await the_event(engine, correlation_id)
    assert (event.user_id, event.data) == (None, {"kind": "refresh_token", "reason": "malformed"})
    await assert_nowhere_in_events(engine, first, second)


async def test_requests_without_a_bearer_or_with_a_valid_one_write_nothing(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    actor = await make_user()
    key = (
        await client.post(f"{AUTH}/api-keys", json={"name": "ok"}, headers=actor.headers)
    ).json()["key"]
    before = await event_count(engine)
    anonymous = await client.get(f"{AUTH}/me")
    assert anonymous.status_code == 401
    basic = await client.get(f"{AUTH}/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401
    for headers in (actor.headers, {"Authorization": f"Bearer {key}"}):
        for _ in range(3):
            response = await client.get("/api/v1/conversations", headers=headers)
            assert response.status_code == 200, response.text
    assert await event_count(engine) == before


async def test_api_key_created_and_revoked(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    actor = await make_user()
    correlation_id, headers = traced()
    response = await client.post(
        f"{AUTH}/api-keys", json={"name": "deploy"}, headers={**actor.headers, **headers}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    expected = {"key_id": created["id"], "name": "deploy", "prefix": created["prefix"]}
    event = await the_event(engine, correlation_id)
    assert (event.type, event.user_id, event.data) == ("api_key_created", actor.id, expected)

    correlation_id, headers = traced()
    path = f"{AUTH}/api-keys/{created['id']}"
    response = await client.delete(path, headers={**actor.headers, **headers})
    assert response.status_code == 204, response.text
    event = await the_event(engine, correlation_id)
    assert (event.type, event.user_id, event.data) == ("api_key_revoked", actor.id, expected)

    # Revoking it again changes nothing and records nothing.
    correlation_id, headers = traced()
    response = await client.delete(path, headers={**actor.headers, **headers})
    assert response.status_code == 204, response.text
    assert await events_of(engine, correlation_id) == []
    await assert_nowhere_in_events(engine, created["key"], created["key"].split("_", 2)[2])


async def start_chat(client: httpx.AsyncClient, owner: Actor) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/chat", json={"message": "Hello there!"}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def assert_denied(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    caller: Actor,
    request: tuple[str, str] | tuple[str, str, dict[str, Any]],
    resource: tuple[str, str],
) -> None:
    method, path, *body = request
    correlation_id, headers = traced()
    response = await client.request(
        method, path, json=body[0] if body else None, headers={**caller.headers, **headers}
    )
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    event = await the_event(engine, correlation_id)
    kind, resource_id = resource
    # Admins only: the caller's own stream must not confirm that the resource exists.
    assert (event.type, event.user_id, event.data) == (
        "access_denied",
        None,
        {"resource": kind, "id": resource_id, "caller_user_id": caller.id},
    )


async def test_someone_elses_conversation_is_404_and_access_denied(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    owner, intruder = await make_user(), await make_user()
    turn = await start_chat(client, owner)
    conversation_id = turn["conversation"]["id"]
    execution_id = turn["execution"]["id"]
    path = f"/api/v1/conversations/{conversation_id}"
    denied = ("conversation", conversation_id)

    await assert_denied(client, engine, intruder, ("GET", path), denied)
    await assert_denied(client, engine, intruder, ("GET", f"{path}/messages"), denied)
    await assert_denied(client, engine, intruder, ("DELETE", path), denied)
    await assert_denied(client, engine, intruder, ("PATCH", path, {"title": "mine"}), denied)
    await assert_denied(
        client,
        engine,
        intruder,
        ("POST", "/api/v1/chat", {"message": "hi", "conversation_id": conversation_id}),
        denied,
    )
    await assert_denied(
        client,
        engine,
        intruder,
        ("GET", f"/api/v1/executions/{execution_id}"),
        ("execution", execution_id),
    )
    # Nothing was deleted, and the event names the intruder only.
    assert (await client.get(path, headers=owner.headers)).status_code == 200
    # An id that names nothing is a plain 404: no event, nothing to deny.
    correlation_id, headers = traced()
    missing = await client.get(
        f"/api/v1/conversations/{new_id()}", headers={**intruder.headers, **headers}
    )
    assert missing.status_code == 404
    assert await events_of(engine, correlation_id) == []


async def test_someone_elses_api_key_is_404_and_access_denied(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    owner, intruder = await make_user(), await make_user()
    created = (
        await client.post(f"{AUTH}/api-keys", json={"name": "mine"}, headers=owner.headers)
    ).json()
    await assert_denied(
        client,
        engine,
        intruder,
        ("DELETE", f"{AUTH}/api-keys/{created['id']}"),
        ("api_key", created["id"]),
    )
    still = await client.get(f"{AUTH}/me", headers={"Authorization": f"Bearer {created['key']}"})
    assert still.status_code == 200, still.text
