"""The OpenAI-compatible endpoint, with the official `openai` package as the client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from accounting import assert_invariants
from compat_support import Clients, compat_settings, new_user, recorded, sdk_clients
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.settings import Settings
from conftest import Actor, live_server
from fakes.anthropic_server import FakeAnthropicServer
from fakes.openai_server import FakeOpenAIServer


@pytest.fixture(scope="module")
def settings(
    database_url: str, fake_openai: FakeOpenAIServer, fake_anthropic: FakeAnthropicServer
) -> Settings:
    return compat_settings(database_url, fake_openai, fake_anthropic)


@pytest.fixture(scope="module")
async def server(settings: Settings) -> AsyncIterator[str]:
    async with live_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
async def alice(http: httpx.AsyncClient) -> tuple[Actor, str]:
    return await new_user(http)


@pytest.fixture(scope="module")
def sdk(server: str, alice: tuple[Actor, str]) -> Clients:
    return sdk_clients(server, alice[1])


async def test_demo_plain(sdk: Clients, engine: AsyncEngine) -> None:
    raw = await sdk.openai.chat.completions.with_raw_response.create(
        model="demo/demo-1", messages=[{"role": "user", "content": "Hello there"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    conversation_id = raw.headers["x-chatter-conversation-id"]
    stored = await recorded(engine, conversation_id)
    assert stored.calls[0].prompt_tokens == completion.usage.prompt_tokens
    await assert_invariants(engine)
