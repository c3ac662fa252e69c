from __future__ import annotations

import os

import httpx

from conftest import make_settings, running_app


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_migrated(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["database"] == "ok"
    if os.environ.get("CHATTER_TEST_REDIS_URL"):
        assert response.json()["redis"] == "ok"


async def test_readyz_reports_unreachable_redis(database_url: str) -> None:
    settings = make_settings(database_url, redis_url="redis://127.0.0.1:1/0")
    async with running_app(settings) as (_, client):
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["redis"] == "unreachable"


async def test_openapi_and_docs(client: httpx.AsyncClient) -> None:
    spec = await client.get("/openapi.json")
    assert spec.status_code == 200
    assert "/api/v1/conversations" in spec.json()["paths"]
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
