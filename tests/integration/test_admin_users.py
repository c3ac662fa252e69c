"""The admin API: list and read users, deactivate and reactivate them (every credential of
theirs refused at once, then working again), change roles, revoke any API key, the
last-admin and self guards, and `?all=true` on the conversation list."""

from __future__ import annotations

import asyncio

import httpx
from account_support import (
    ADMIN,
    AUTH,
    assert_status,
    bearer,
    credentials_of,
    events_of_type,
    login,
    new_admin,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.domain.ids import new_id
from chatter.storage.models import Event, User
from conftest import UserFactory

ME = f"{AUTH}/me"
CONVERSATIONS = "/api/v1/conversations"


async def test_non_admins_get_403_and_an_access_denied_event(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    alice = await make_user()
    bob = await make_user()
    for method, path in (
        ("GET", f"{ADMIN}/users"),
        ("GET", f"{ADMIN}/users/{bob.id}"),
        ("POST", f"{ADMIN}/users/{bob.id}/deactivate"),
        ("DELETE", f"{ADMIN}/api-keys/{new_id()}"),
    ):
        response = await client.request(method, path, headers=alice.headers)
        assert_status(response, 403, "forbidden")
    assert_status(await client.get(f"{ADMIN}/users"), 401)
    async with engine.connect() as connection:
        rows = list(await connection.execute(select(Event).where(Event.type == "access_denied")))
    assert any(
        row.data == {"resource": "admin_api", "id": f"{ADMIN}/users", "caller_user_id": alice.id}
        for row in rows
    )
    # Still active, still working.
    assert (await client.get(ME, headers=bob.headers)).status_code == 200


async def test_list_and_read_users_with_filters_and_pages(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    admin = await new_admin(make_user, engine)
    tag = new_id().lower()
    made = [await make_user(f"list-{tag}-{n}@example.com") for n in range(3)]
    await client.post(f"{ADMIN}/users/{made[0].id}/deactivate", headers=admin.headers)

    seen: list[str] = []
    cursor = None
    while True:
        params = {"email": f"LIST-{tag}", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await client.get(f"{ADMIN}/users", params=params, headers=admin.headers)
        assert page.status_code == 200, page.text
        seen += [user["email"] for user in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    # Newest first, every one exactly once.
    assert seen == [actor.email for actor in reversed(made)]

    inactive = await client.get(
        f"{ADMIN}/users", params={"email": tag, "active": "false"}, headers=admin.headers
    )
    assert [user["id"] for user in inactive.json()["items"]] == [made[0].id]
    admins = await client.get(f"{ADMIN}/users", params={"role": "admin"}, headers=admin.headers)
    assert admin.id in [user["id"] for user in admins.json()["items"]]
    assert all(user["role"] == "admin" for user in admins.json()["items"])
    # LIKE wildcards are literal.
    wild = await client.get(f"{ADMIN}/users", params={"email": "%"}, headers=admin.headers)
    assert wild.json()["items"] == []

    one = await client.get(f"{ADMIN}/users/{made[1].id}", headers=admin.headers)
    assert one.json()["email"] == made[1].email
    assert "password_hash" not in one.json()
    assert_status(await client.get(f"{ADMIN}/users/{new_id()}", headers=admin.headers), 404)
    assert_status(await client.get(f"{ADMIN}/users/nope", headers=admin.headers), 404)
    bad = await client.get(f"{ADMIN}/users", params={"cursor": "abc"}, headers=admin.headers)
    assert_status(bad, 400)


async def test_deactivation_refuses_every_credential_at_once_and_reactivation_restores(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    admin = await new_admin(make_user, engine)
    creds = await credentials_of(client, await make_user())
    user_id = creds.actor.id

    deactivated = await client.post(f"{ADMIN}/users/{user_id}/deactivate", headers=admin.headers)
    assert deactivated.status_code == 200, deactivated.text
    assert deactivated.json()["is_active"] is False

    for token in (creds.access_token, creds.api_key):
        assert_status(await client.get(ME, headers=bearer(token)), 401, "unauthorized")
    refresh = await client.post(f"{AUTH}/refresh", json={"refresh_token": creds.refresh_token})
    assert_status(refresh, 401)
    relogin = await client.post(
        f"{AUTH}/login", json={"email": creds.actor.email, "password": creds.actor.password}
    )
    assert_status(relogin, 401)
    [event] = await events_of_type(engine, "user_deactivated", user_id)
    assert event["data"] == {"actor_user_id": admin.id}
    # Deactivating twice changes nothing and is not a second event.
    await client.post(f"{ADMIN}/users/{user_id}/deactivate", headers=admin.headers)
    assert len(await events_of_type(engine, "user_deactivated", user_id)) == 1

    reactivated = await client.post(f"{ADMIN}/users/{user_id}/reactivate", headers=admin.headers)
    assert reactivated.json()["is_active"] is True
    # Sessions stay ended; the API key works again; logging in works.
    assert (await client.get(ME, headers=bearer(creds.access_token))).status_code == 401
    refresh = await client.post(f"{AUTH}/refresh", json={"refresh_token": creds.refresh_token})
    assert_status(refresh, 401)
    assert (await client.get(ME, headers=bearer(creds.api_key))).status_code == 200
    tokens = await login(client, creds.actor.email, creds.actor.password)
    assert (await client.get(ME, headers=bearer(tokens["access_token"]))).status_code == 200
    assert len(await events_of_type(engine, "user_reactivated", user_id)) == 1


async def test_role_changes_and_the_last_admin_guard(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    # Other tests of this module made admins: demote them so `first` is the only one.
    first = await new_admin(make_user, engine)
    listed = await client.get(
        f"{ADMIN}/users", params={"role": "admin", "limit": 100}, headers=first.headers
    )
    for user in listed.json()["items"]:
        if user["id"] != first.id:
            demoted = await client.put(
                f"{ADMIN}/users/{user['id']}/role", json={"role": "user"}, headers=first.headers
            )
            assert demoted.status_code == 200, demoted.text

    self_off = await client.post(f"{ADMIN}/users/{first.id}/deactivate", headers=first.headers)
    assert_status(self_off, 409, "cannot_deactivate_self")
    last = await client.put(
        f"{ADMIN}/users/{first.id}/role", json={"role": "user"}, headers=first.headers
    )
    error = assert_status(last, 409, "last_admin")
    assert error["details"] == {"user_id": first.id}

    second = await make_user()
    promoted = await client.put(
        f"{ADMIN}/users/{second.id}/role", json={"role": "admin"}, headers=first.headers
    )
    assert promoted.json()["role"] == "admin"
    [event] = await events_of_type(engine, "user_role_changed", second.id)
    assert event["data"] == {"actor_user_id": first.id, "previous": "user", "role": "admin"}
    # The new admin's existing token carries the new role at once (read per request).
    assert (await client.get(f"{ADMIN}/users", headers=second.headers)).status_code == 200

    # Now the first may step down; then the second is the last and cannot be removed.
    down = await client.put(
        f"{ADMIN}/users/{first.id}/role", json={"role": "user"}, headers=first.headers
    )
    assert down.json()["role"] == "user"
    assert_status(await client.get(f"{ADMIN}/users", headers=first.headers), 403)
    for method, path, body in (
        ("PUT", f"{ADMIN}/users/{second.id}/role", {"role": "user"}),
        ("POST", f"{ADMIN}/users/{second.id}/deactivate", None),
    ):
        response = await client.request(method, path, json=body, headers=second.headers)
        assert_status(response, 409, "cannot_deactivate_self" if body is None else "last_admin")
    invalid = await client.put(
        f"{ADMIN}/users/{second.id}/role", json={"role": "root"}, headers=second.headers
    )
    assert_status(invalid, 422, "validation_error")


async def test_admins_revoke_any_api_key(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    admin = await new_admin(make_user, engine)
    creds = await credentials_of(client, await make_user())
    keys = await client.get(f"{ADMIN}/users/{creds.actor.id}/api-keys", headers=admin.headers)
    assert [key["id"] for key in keys.json()] == [creds.api_key_id]

    revoked = await client.delete(f"{ADMIN}/api-keys/{creds.api_key_id}", headers=admin.headers)
    assert revoked.status_code == 204
    assert_status(await client.get(ME, headers=bearer(creds.api_key)), 401)
    again = await client.delete(f"{ADMIN}/api-keys/{creds.api_key_id}", headers=admin.headers)
    assert again.status_code == 204
    assert len(await events_of_type(engine, "api_key_revoked", creds.actor.id)) == 1
    assert_status(await client.delete(f"{ADMIN}/api-keys/{new_id()}", headers=admin.headers), 404)
    # The owner's session is untouched.
    assert (await client.get(ME, headers=bearer(creds.access_token))).status_code == 200


async def test_conversation_list_all_is_for_admins(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    admin = await new_admin(make_user, engine)
    alice = await make_user()
    made = await client.post(CONVERSATIONS, json={"title": "alice's"}, headers=alice.headers)
    conversation_id = made.json()["id"]

    own = await client.get(CONVERSATIONS, headers=admin.headers)
    assert conversation_id not in [item["id"] for item in own.json()["items"]]
    everyone: list[str] = []
    cursor = None
    while True:
        params = {"all": "true", "limit": 100, **({"cursor": cursor} if cursor else {})}
        page = await client.get(CONVERSATIONS, params=params, headers=admin.headers)
        assert page.status_code == 200, page.text
        everyone += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert conversation_id in everyone

    refused = await client.get(CONVERSATIONS, params={"all": "true"}, headers=alice.headers)
    assert_status(refused, 403, "forbidden")
    mine = await client.get(CONVERSATIONS, params={"all": "false"}, headers=alice.headers)
    assert [item["id"] for item in mine.json()["items"]] == [conversation_id]


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    client: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    first = await new_admin(make_user, engine)
    listed = await client.get(
        f"{ADMIN}/users", params={"role": "admin", "limit": 100}, headers=first.headers
    )
    for user in listed.json()["items"]:
        if user["id"] != first.id:
            await client.put(
                f"{ADMIN}/users/{user['id']}/role", json={"role": "user"}, headers=first.headers
            )
    second = await new_admin(make_user, engine)

    answers = await asyncio.gather(
        client.put(f"{ADMIN}/users/{second.id}/role", json={"role": "user"}, headers=first.headers),
        client.put(f"{ADMIN}/users/{first.id}/role", json={"role": "user"}, headers=second.headers),
    )
    statuses = sorted(answer.status_code for answer in answers)
    # One wins; the other finds itself the last admin (409) or no longer an admin (403).
    assert statuses[0] == 200, [answer.text for answer in answers]
    assert statuses[1] in (403, 409), [answer.text for answer in answers]
    async with engine.connect() as connection:
        admins = await connection.scalars(
            select(User.id).where(User.role == "admin", User.is_active.is_(True))
        )
        assert len(list(admins)) == 1
