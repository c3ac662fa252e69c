"""Prometheus `/metrics`: who may read it, and counters that move by exactly a turn's usage,
fed from the turn's own events."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from events_support import commit_events, event_for, make_admin
from fastapi import FastAPI
from metrics_support import Samples, scrape, total, value
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.container import Container
from chatter.domain.events import EventType
from chatter.settings import Settings
from chatter.storage.models import LLMCall
from conftest import Actor, UserFactory, openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply

SCRAPE_TOKEN = "scrape-token-0123456789abcdef"
OPENAI = {"provider": "openai", "model": "gpt-4o-mini"}


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(
        database_url,
        fake_openai,
        metrics={"scrape_token": SCRAPE_TOKEN},
        # The relay may take any unmarked event at once: what it republishes must not count.
        events={"relay_grace_s": 0},
    )


@pytest.fixture(scope="module")
async def alice(make_user: UserFactory) -> Actor:
    return await make_user()


@pytest.fixture(scope="module")
async def admin(make_user: UserFactory, engine: AsyncEngine) -> Actor:
    actor = await make_user()
    await make_admin(engine, actor.id)
    return actor


SCRAPER = {"Authorization": f"Bearer {SCRAPE_TOKEN}"}


async def test_metrics_are_for_admins_and_the_scrape_token(
    client: httpx.AsyncClient, alice: Actor, admin: Actor
) -> None:
    anonymous = await client.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    user = await client.get("/metrics", headers=alice.headers)
    assert user.status_code == 403
    assert user.json()["error"]["code"] == "forbidden"
    assert (await client.get("/metrics", headers=admin.headers)).status_code == 200
    assert (await client.get("/metrics", headers=SCRAPER)).status_code == 200


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_a_turn_moves_the_counters_by_exactly_its_usage(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    usage = {
        "prompt_tokens": 1234,
        "completion_tokens": 321,
        "total_tokens": 1555,
        "prompt_tokens_details": {"cached_tokens": 1000},
        "completion_tokens_details": {"reasoning_tokens": 100},
    }
    fake.enqueue(
        FakeReply(
            content="",
            tool_calls=[{"name": "calculator", "arguments": {"expression": "6*7"}}],
            usage={"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
        ),
        FakeReply(content="42.", usage=usage),
    )
    before = await scrape(client, SCRAPER)
    response = await client.post(
        "/api/v1/chat",
        json={"message": "6*7?", "workflow": "chat_with_tools", **OPENAI},
        headers=alice.headers,
    )
    assert response.status_code == 200, response.text
    after = await scrape(client, SCRAPER)

    async with engine.connect() as connection:
        calls = (
            await connection.execute(
                select(LLMCall).where(LLMCall.execution_id == response.json()["execution"]["id"])
            )
        ).all()
    assert len(calls) == 2
    labels = {"provider": "openai", "model": "gpt-4o-mini"}
    assert delta(after, before, "chatter_llm_requests_total", status="succeeded", **labels) == 2
    for kind, column in (
        ("prompt", "prompt_tokens"),
        ("completion", "completion_tokens"),
        ("cached", "cached_tokens"),
        ("reasoning", "reasoning_tokens"),
    ):
        expected = sum(getattr(call, column) for call in calls)
        assert delta(after, before, "chatter_llm_tokens_total", kind=kind, **labels) == expected
    assert delta(after, before, "chatter_llm_tokens_total", kind="prompt", **labels) == 1284
    cost = sum((Decimal(call.cost) for call in calls), Decimal(0))
    assert cost > 0
    moved = delta(after, before, "chatter_llm_cost_total", currency="USD", **labels)
    assert moved == pytest.approx(float(cost), rel=1e-9, abs=1e-12)
    assert delta(after, before, "chatter_llm_cost_unknown_total", **labels) == 0
    assert delta(after, before, "chatter_usage_estimated_total", **labels) == 0
    assert delta(after, before, "chatter_llm_latency_seconds_count", **labels) == 2
    assert delta(after, before, "chatter_llm_time_to_first_token_seconds_count", **labels) == 2
    assert delta(after, before, "chatter_tool_calls_total", tool="calculator", status="ok") == 1
    workflow = {"workflow": "chat_with_tools"}
    assert (
        delta(after, before, "chatter_workflow_executions_total", status="completed", **workflow)
        == 1
    )
    assert delta(after, before, "chatter_workflow_duration_seconds_count", **workflow) == 1
    chat_route = {"method": "POST", "route": "/api/v1/chat"}
    assert delta(after, before, "chatter_http_requests_total", status="200", **chat_route) == 1
    assert delta(after, before, "chatter_http_request_duration_seconds_count", **chat_route) == 1
    # The relay republishes nothing here, and nothing is counted twice when it does.
    assert value(after, "chatter_outbox_backlog") >= 0


async def test_unknown_prices_and_security_events_are_counted(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer
) -> None:
    before = await scrape(client, SCRAPER)
    fake.enqueue(FakeReply(content="hi"))
    priceless = {"provider": "openai", "model": "no-such-priced-model"}
    response = await client.post(
        "/api/v1/chat", json={"message": "hi", **priceless}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["assistant_message"]["cost_known"] is False
    refused = await client.post(
        "/api/v1/auth/login", json={"email": alice.email, "password": "wrong password!"}
    )
    assert refused.status_code == 401
    after = await scrape(client, SCRAPER)
    assert delta(after, before, "chatter_llm_cost_unknown_total", **priceless) == 1
    assert total(after, "chatter_llm_cost_total") == total(before, "chatter_llm_cost_total")
    assert delta(after, before, "chatter_security_events_total", type="login_failed") == 1


async def test_http_metrics_are_labelled_by_route_template(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    missing = "01M8CJ38Y1T42TKZ1GWMR9S2DC"
    assert (
        await client.get(f"/api/v1/conversations/{missing}", headers=alice.headers)
    ).status_code == 404
    assert (await client.get(f"/no/such/path/{missing}")).status_code == 404
    response = await client.get("/metrics", headers=SCRAPER)
    assert missing not in response.text
    samples = await scrape(client, SCRAPER)
    template = "/api/v1/conversations/{conversation_id}"
    assert (
        value(samples, "chatter_http_requests_total", method="GET", route=template, status="404")
        >= 1
    )
    assert (
        value(samples, "chatter_http_requests_total", method="GET", route="unmatched", status="404")
        >= 1
    )


async def test_relayed_events_are_not_counted_again_and_the_backlog_is_visible(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    container: Container = app.state.container
    before = await scrape(client, SCRAPER)
    # Committed but never published here (as if this process died right after the commit):
    # the relay publishes it, and only the process that committed it counts it.
    refused = event_for(None, EventType.TOKEN_REFUSED, data={"kind": "api_key", "reason": "x"})
    await commit_events(container, [refused], publish=False)
    pending = await scrape(client, SCRAPER)
    assert value(pending, "chatter_outbox_backlog") >= 1
    assert await container.publisher.relay_once() >= 1
    await container.publisher.flush_marks()
    after = await scrape(client, SCRAPER)
    assert delta(after, before, "chatter_security_events_total", type="token_refused") == 0
    assert value(after, "chatter_outbox_backlog") < value(pending, "chatter_outbox_backlog")


async def test_a_chat_stream_is_an_active_stream_until_it_ends(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer
) -> None:
    fake.enqueue(FakeReply(content="streamed"))
    stream_route = {"route": "/api/v1/chat/stream"}
    before = await scrape(client, SCRAPER)
    async with client.stream(
        "POST", "/api/v1/chat/stream", json={"message": "hi", **OPENAI}, headers=alice.headers
    ) as response:
        assert response.status_code == 200
        assert "event: done" in (await response.aread()).decode()
    after = await scrape(client, SCRAPER)
    assert ("chatter_active_streams", frozenset(stream_route.items())) in after
    assert value(after, "chatter_active_streams", **stream_route) == 0
    labels = {"method": "POST", "status": "200", **stream_route}
    assert delta(after, before, "chatter_http_requests_total", **labels) == 1
