"""The budget routes: admins set and read budgets, users read their usage; 403 for
non-admins, 404 for unknown users, 422 for bad budgets (nothing written)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from budget_support import make_admin, my_usage, set_budget
from fastapi import FastAPI

from conftest import UserFactory


@pytest.fixture(scope="module")
async def admin(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    return await make_admin(app, client)


async def test_admin_sets_and_reads_a_budget(
    client: httpx.AsyncClient, admin: dict[str, str], make_user: UserFactory
) -> None:
    alice = await make_user()
    empty = await client.get(f"/api/v1/admin/users/{alice.id}/budget", headers=admin)
    assert empty.status_code == 200, empty.text
    assert empty.json()["daily_tokens"] is None
    assert empty.json()["updated_at"] is None
    body = await set_budget(
        client,
        admin,
        alice.id,
        daily_tokens=1000,
        monthly_cost="12.5",
        alert_thresholds=[0.9, 0.5, 0.9],
    )
    assert body["daily_tokens"] == 1000
    assert body["monthly_cost"] == "12.5"
    assert body["daily_cost"] is None
    assert body["alert_thresholds"] == [0.5, 0.9]
    assert body["currency"] == "USD"
    read = await client.get(f"/api/v1/admin/users/{alice.id}/budget", headers=admin)
    assert read.json() == body
    usage = await client.get(f"/api/v1/admin/users/{alice.id}/usage", headers=admin)
    assert usage.status_code == 200
    assert usage.json() == await my_usage(client, alice.headers)
    assert usage.json()["day"]["remaining_tokens"] == 1000
    assert usage.json()["month"]["remaining_cost"] == "12.5"
    assert usage.json()["day"]["limit_cost"] is None


async def test_only_admins_and_known_users(
    client: httpx.AsyncClient, admin: dict[str, str], make_user: UserFactory
) -> None:
    alice, bob = await make_user(), await make_user()
    for method, suffix in (("PUT", "budget"), ("GET", "budget"), ("GET", "usage")):
        url = f"/api/v1/admin/users/{bob.id}/{suffix}"
        body = {"daily_tokens": 1} if method == "PUT" else None
        refused = await client.request(method, url, json=body, headers=alice.headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden"
        anonymous = await client.request(method, url, json=body)
        assert anonymous.status_code == 401
        missing = await client.request(
            method, f"/api/v1/admin/users/NOSUCHUSER/{suffix}", json=body, headers=admin
        )
        assert missing.status_code == 404, missing.text
        assert missing.json()["error"]["code"] == "not_found"
    assert (await client.get("/api/v1/auth/me/usage")).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"daily_tokens": -1},
        {"daily_tokens": "12"},
        {"daily_tokens": True},
        {"monthly_tokens": 10**16},
        {"daily_cost": "-0.01"},
        {"daily_cost": "0.00000000001"},
        {"daily_cost": "abc"},
        {"daily_cost": 0.5},
        {"daily_cost": "1e3"},
        {"daily_cost": "056445469129820.864"},  # does not fit an exact money column
        {"currency": "usd"},
        {"alert_thresholds": [0]},
        {"alert_thresholds": [1.5]},
        {"alert_thresholds": [0.1] * 11},
        {"alert_thresholds": "0.8"},
    ],
)
async def test_invalid_budgets_are_422(
    client: httpx.AsyncClient, admin: dict[str, str], make_user: UserFactory, body: dict[str, Any]
) -> None:
    alice = await make_user()
    response = await client.put(f"/api/v1/admin/users/{alice.id}/budget", json=body, headers=admin)
    assert response.status_code == 422, (body, response.text)
    assert response.json()["error"]["code"] == "validation_error"
    read = await client.get(f"/api/v1/admin/users/{alice.id}/budget", headers=admin)
    assert read.json()["updated_at"] is None  # nothing written
