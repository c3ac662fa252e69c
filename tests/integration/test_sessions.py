"""Sessions end when they should: logout ends that session's access tokens at once, logout
everywhere and a password change end every session; a refused access token is a
`token_refused` event with reason `session_ended`."""

from __future__ import annotations

import httpx
from account_support import AUTH, assert_status, bearer, events_of_type, login
from sqlalchemy.ext.asyncio import AsyncEngine

from conftest import UserFactory

ME = f"{AUTH}/me"


async def test_logout_ends_that_sessions_access_token_at_once(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    actor = await make_user()
    first = await login(client, actor.email, actor.password)
    second = await login(client, actor.email, actor.password)
    assert (await client.get(ME, headers=bearer(first["access_token"]))).status_code == 200

    logout = await client.post(f"{AUTH}/logout", json={"refresh_token": first["refresh_token"]})
    assert logout.status_code == 204

    # The logged-out session's access token stops working now, not at its expiry...
    ended = await client.get(ME, headers=bearer(first["access_token"]))
    assert_status(ended, 401, "unauthorized")
    refused = await events_of_type(engine, "token_refused", actor.id)
    assert any(event["data"]["reason"] == "session_ended" for event in refused)
    # ...and its refresh token is gone; the other session goes on.
    again = await client.post(f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]})
    assert_status(again, 401)
    assert (await client.get(ME, headers=bearer(second["access_token"]))).status_code == 200


async def test_a_rotated_session_keeps_working_and_its_old_access_token_too(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    actor = await make_user()
    tokens = await login(client, actor.email, actor.password)
    rotated = await client.post(f"{AUTH}/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    # Same session (family): both access tokens work until it ends.
    for token in (tokens["access_token"], rotated.json()["access_token"]):
        assert (await client.get(ME, headers=bearer(token))).status_code == 200
    await client.post(f"{AUTH}/logout", json={"refresh_token": rotated.json()["refresh_token"]})
    for token in (tokens["access_token"], rotated.json()["access_token"]):
        assert (await client.get(ME, headers=bearer(token))).status_code == 401


async def test_logout_everywhere_ends_every_session_but_not_api_keys(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    actor = await make_user()
    sessions = [await login(client, actor.email, actor.password) for _ in range(2)]
    key = await client.post(f"{AUTH}/api-keys", json={"name": "ci"}, headers=actor.headers)
    api_key = key.json()["key"]

    ended = await client.post(f"{AUTH}/logout-all", headers=bearer(sessions[0]["access_token"]))
    assert ended.status_code == 204

    for tokens in sessions:
        assert (await client.get(ME, headers=bearer(tokens["access_token"]))).status_code == 401
        refresh = await client.post(
            f"{AUTH}/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refresh.status_code == 401
    assert (await client.get(ME, headers=actor.headers)).status_code == 401
    assert (await client.get(ME, headers=bearer(api_key))).status_code == 200
    assert len(await events_of_type(engine, "sessions_ended", actor.id)) == 1
    # A new login works.
    fresh = await login(client, actor.email, actor.password)
    assert (await client.get(ME, headers=bearer(fresh["access_token"]))).status_code == 200


async def test_password_change_ends_other_sessions_and_returns_a_new_one(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    actor = await make_user()
    other = await login(client, actor.email, actor.password)
    new_password = "a much better passphrase"

    changed = await client.post(
        f"{AUTH}/password",
        json={"current_password": actor.password, "new_password": new_password},
        headers=actor.headers,
    )
    assert changed.status_code == 200, changed.text
    pair = changed.json()
    assert (await client.get(ME, headers=bearer(pair["access_token"]))).status_code == 200
    assert (await client.get(ME, headers=actor.headers)).status_code == 401
    assert (await client.get(ME, headers=bearer(other["access_token"]))).status_code == 401
    stale = await client.post(f"{AUTH}/refresh", json={"refresh_token": other["refresh_token"]})
    assert stale.status_code == 401
    fresh = await client.post(f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]})
    assert fresh.status_code == 200

    old_login = await client.post(
        f"{AUTH}/login", json={"email": actor.email, "password": actor.password}
    )
    assert old_login.status_code == 401
    await login(client, actor.email, new_password)
    [event] = await events_of_type(engine, "password_changed", actor.id)
    assert event["data"] == {"actor_user_id": actor.id}
    assert new_password not in str(event["data"])


async def test_password_change_refusals(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    actor = await make_user()
    url = f"{AUTH}/password"
    wrong = await client.post(
        url,
        json={"current_password": "not my password", "new_password": "a much better passphrase"},
        headers=actor.headers,
    )
    assert_status(wrong, 422, "wrong_password")
    for weak, rule in (
        ("password123", "common"),
        ("shortish9", "min_length"),
        (actor.email.upper(), "contains_email"),
    ):
        response = await client.post(
            url,
            json={"current_password": actor.password, "new_password": weak},
            headers=actor.headers,
        )
        error = assert_status(response, 422, "weak_password")
        assert error["details"]["rule"] == rule
    # Nothing changed: the session still works, the password too.
    assert (await client.get(ME, headers=actor.headers)).status_code == 200
    await login(client, actor.email, actor.password)
    anonymous = await client.post(url, json={"current_password": "x", "new_password": "y" * 12})
    assert_status(anonymous, 401)


async def test_registration_applies_the_password_policy(client: httpx.AsyncClient) -> None:
    for email, password, rule in (
        ("policy-a@example.com", "qwerty123", "common"),
        ("policy-b@example.com", "Password1", "common"),
        ("policy-c@example.com", "policy-c@example.com", "contains_email"),
        ("someone@example.com", "someone-2026!", "contains_email"),
        ("policy-d@example.com", "nine char", "min_length"),
    ):
        response = await client.post(
            f"{AUTH}/register", json={"email": email, "password": password}
        )
        error = assert_status(response, 422, "weak_password")
        assert error["details"] == {"field": "password", "rule": rule}
        assert password not in error["message"]
