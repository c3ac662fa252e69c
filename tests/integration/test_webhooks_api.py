"""The webhooks API: create (the secret shown once), list, get, delete, the delivery log's
pages; owner-scoped (another's is a 404); URLs that are not http(s), do not resolve or
reach private addresses are refused with 422 webhook_url_refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from webhook_support import (
    create,
    emit,
    path,
    webhook_settings,
)

from chatter.domain.events import EventType
from chatter.domain.ids import new_id
from chatter.settings import Settings
from conftest import UserFactory, make_settings, running_app
from fakes.webhook_receiver import WebhookReceiver


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return webhook_settings(database_url)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


async def test_create_list_get_delete_and_the_secret_is_shown_once(
    client: httpx.AsyncClient, make_user: UserFactory, receiver: WebhookReceiver
) -> None:
    owner = await make_user()
    url = receiver.url(path())
    created = await create(client, owner, url, event_types=["workflow_completed"])
    assert created["secret"].startswith("whsec_")
    assert len(created["secret"]) > 30
    assert created["url"] == url
    assert created["event_types"] == ["workflow_completed"]
    assert created["all_users"] is False
    hook_id = created["id"]

    listed = await client.get("/api/v1/webhooks", headers=owner.headers)
    assert listed.status_code == 200
    assert [h["id"] for h in listed.json()] == [hook_id]
    assert "secret" not in listed.json()[0]
    one = await client.get(f"/api/v1/webhooks/{hook_id}", headers=owner.headers)
    assert one.status_code == 200
    assert "secret" not in one.json()
    assert one.json()["event_types"] == ["workflow_completed"]

    deleted = await client.delete(f"/api/v1/webhooks/{hook_id}", headers=owner.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/api/v1/webhooks/{hook_id}", headers=owner.headers)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "not_found"
    assert (await client.get("/api/v1/webhooks", headers=owner.headers)).json() == []


async def test_another_users_webhook_is_not_found(
    client: httpx.AsyncClient, make_user: UserFactory, receiver: WebhookReceiver
) -> None:
    owner, other = await make_user(), await make_user()
    hook_id = (await create(client, owner, receiver.url(path())))["id"]
    for method, suffix in (("GET", ""), ("DELETE", ""), ("GET", "/deliveries")):
        answer = await client.request(
            method, f"/api/v1/webhooks/{hook_id}{suffix}", headers=other.headers
        )
        assert answer.status_code == 404, (method, suffix)
        assert answer.json()["error"]["code"] == "not_found"
    assert (await client.get("/api/v1/webhooks", headers=other.headers)).json() == []
    still = await client.get(f"/api/v1/webhooks/{hook_id}", headers=owner.headers)
    assert still.status_code == 200
    bogus = await client.get("/api/v1/webhooks/not-an-id", headers=owner.headers)
    assert bogus.status_code == 404
    anonymous = await client.get("/api/v1/webhooks")
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    ("body", "code", "reason"),
    [
        ({"url": "ftp://127.0.0.1/hook"}, "webhook_url_refused", "scheme"),
        ({"url": "javascript:alert(1)"}, "webhook_url_refused", "scheme"),
        ({"url": "http:///no-host"}, "webhook_url_refused", "host"),
        ({"url": "http://no-such-host.invalid/hook"}, "webhook_url_refused", "unresolvable"),
        ({"url": "http://127.0.0.1/x", "event_types": ["no_such_type"]}, "validation_error", None),
        ({"url": "http://127.0.0.1/x", "event_types": []}, "validation_error", None),
        ({"url": "x" * 3000}, "validation_error", None),
        ({}, "validation_error", None),
    ],
)
async def test_invalid_webhooks_are_refused(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    body: dict[str, Any],
    code: str,
    reason: str | None,
) -> None:
    user = await make_user()
    answer = await client.post("/api/v1/webhooks", json=body, headers=user.headers)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    if reason is not None:
        assert error["details"]["reason"] == reason
    assert (await client.get("/api/v1/webhooks", headers=user.headers)).json() == []


async def test_only_admins_may_receive_every_users_events(
    client: httpx.AsyncClient, make_user: UserFactory, receiver: WebhookReceiver
) -> None:
    user = await make_user()
    answer = await client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url(path()), "all_users": True},
        headers=user.headers,
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"


PRIVATE_URLS = (
    "http://127.0.0.1:9/hook",
    "http://localhost/hook",
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://100.64.0.1/hook",
    "https://169.254.169.254/latest/meta-data",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fe80::1]/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
)


async def test_private_addresses_are_refused_unless_allowed(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_app, client):
        email = f"p-{new_id().lower()}@example.com"
        credentials = {"email": email, "password": "long enough pw"}
        assert (await client.post("/api/v1/auth/register", json=credentials)).status_code == 201
        login = await client.post("/api/v1/auth/login", json=credentials)
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        for url in PRIVATE_URLS:
            answer = await client.post("/api/v1/webhooks", json={"url": url}, headers=headers)
            assert answer.status_code == 422, (url, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "webhook_url_refused", url
            assert error["details"]["reason"] == "private_address", url
            assert "ALLOW_PRIVATE_TARGETS" in error["message"]
        assert (await client.get("/api/v1/webhooks", headers=headers)).json() == []


async def test_the_delivery_log_pages_newest_event_first(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory, receiver: WebhookReceiver
) -> None:
    user = await make_user()
    hook_path = path()
    hook = await create(client, user, receiver.url(hook_path))
    events = [await emit(app, user.id, EventType.MESSAGE_CREATED, n=n) for n in range(5)]
    await receiver.wait_for(hook_path, 5)

    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await client.get(
            f"/api/v1/webhooks/{hook['id']}/deliveries", params=params, headers=user.headers
        )
        assert page.status_code == 200
        seen += [d["event_id"] for d in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [e.id for e in reversed(events)]
    bad = await client.get(
        f"/api/v1/webhooks/{hook['id']}/deliveries",
        params={"cursor": "!!"},
        headers=user.headers,
    )
    assert bad.status_code == 400
