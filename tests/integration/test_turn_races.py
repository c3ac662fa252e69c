"""Races real clients cause: disconnects at every step of a turn, concurrent turns in one
conversation, routes racing each other. After each, the accounting invariants hold (checked
with SQL) and nothing is left running."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from accounting import assert_invariants
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)
from sse_client import read_events

from chatter.app import create_app
from chatter.container import Container
from chatter.domain.ids import new_id
from chatter.services.chat import ChatService
from chatter.settings import Settings
from chatter.storage.models import LLMCall, Message, WorkflowExecution
from conftest import (
    Actor,
    UserFactory,
    make_settings,
    openai_settings,
    running_app,
    serve_app,
)
from fakes.openai_server import FakeOpenAIServer, FakeReply

LONG_TEXT = " ".join(f"word{n}" for n in range(40))


@dataclass
class CommitGate:
    """Holds the N-th commit of the chat service's sessions until released, so a test can
    make a client leave at exactly that step of a turn."""

    pause_at: int | None = None
    commits: int = 0
    before_first_statement: bool = False  # hold the turn before it writes anything
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def arm(self, pause_at: int | None, *, before_first_statement: bool = False) -> None:
        self.pause_at, self.commits = pause_at, 0
        self.before_first_statement = before_first_statement
        self.reached, self.release = asyncio.Event(), asyncio.Event()

    async def hold(self) -> None:
        self.reached.set()
        await self.release.wait()


def gated_sessions(engine: Any, gate: CommitGate) -> async_sessionmaker[AsyncSession]:
    class GatedSession(AsyncSession):
        async def commit(self) -> None:
            gate.commits += 1
            if gate.commits == gate.pause_at:
                await gate.hold()
            await super().commit()

        async def execute(self, *args: Any, **kwargs: Any) -> Any:
            if gate.before_first_statement:
                gate.before_first_statement = False
                await gate.hold()
            return await super().execute(*args, **kwargs)

    return async_sessionmaker(engine, class_=GatedSession, expire_on_commit=False, autoflush=False)


@pytest.fixture(scope="module")
def settings(database_url: str, fake_openai: FakeOpenAIServer) -> Settings:
    return openai_settings(database_url, fake_openai, llm={"sse_ping_s": 0.2, "max_retries": 0})


@pytest.fixture(scope="module")
def gate() -> CommitGate:
    return CommitGate()


@pytest.fixture(scope="module")
async def live_app(settings: Settings, client: httpx.AsyncClient) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with serve_app(app) as url:
        app.state.base_url = url
        yield app


@pytest.fixture(scope="module")
def base_url(live_app: FastAPI) -> str:
    url: str = live_app.state.base_url
    return url


@pytest.fixture(scope="module")
def gated_app(live_app: FastAPI, gate: CommitGate, settings: Settings) -> FastAPI:
    container: Container = live_app.state.container
    sessions = gated_sessions(container.engine, gate)
    container.chat = ChatService(
        sessions,
        container.providers,
        container.executor,
        settings.llm,
        container.publisher,
        container.conversations,
        worker_id=container.worker_id,
        tools=container.tools,
        definitions=container.definitions,
    )
    return live_app


@pytest.fixture(scope="module")
async def alice(make_user: UserFactory) -> Actor:
    return await make_user()


async def wait_until_nothing_runs(engine: AsyncEngine, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with engine.connect() as connection:
            running = await connection.scalar(
                select(func.count(WorkflowExecution.id)).where(
                    WorkflowExecution.status == "running"
                )
            )
        if not running:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("an execution stayed running")


async def turn_rows(engine: AsyncEngine, correlation_id: str) -> dict[str, Any]:
    async with engine.connect() as connection:
        executions = (
            await connection.execute(
                select(WorkflowExecution).where(WorkflowExecution.correlation_id == correlation_id)
            )
        ).all()
        messages = (
            await connection.execute(
                select(Message)
                .where(Message.correlation_id == correlation_id)
                .order_by(Message.sequence)
            )
        ).all()
        calls = (
            await connection.execute(
                select(LLMCall).where(LLMCall.correlation_id == correlation_id)
            )
        ).all()
    return {"executions": executions, "messages": messages, "calls": calls}


# (step, the chat-service commit to hold, and the SSE event after which the client leaves
# when nothing is held). A plain turn commits twice: 1 open, 2 close (which stores its one
# call); a tool turn stores the call that asked for the tool first: 1 open, 2 that call.
STEPS = [
    ("before the open commits", 1, None),
    ("during the model stream", None, "delta"),
    ("while a call that asked for a tool is recorded", 2, None),
    ("between the last usage and the close", None, "usage"),
    ("during the close commit", 2, None),
]
TOOL_STEP = STEPS[2][0]


@pytest.mark.parametrize(("step", "hold_commit", "leave_after"), STEPS, ids=[s[0] for s in STEPS])
async def test_a_client_leaving_at_any_step_leaves_nothing_running(
    gated_app: FastAPI,
    base_url: str,
    gate: CommitGate,
    alice: Actor,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
    step: str,
    hold_commit: int | None,
    leave_after: str | None,
) -> None:
    slow = leave_after == "delta"
    fake.default_reply = FakeReply(content=LONG_TEXT, chunk_delay_s=0.02 if slow else 0.0)
    body: dict[str, Any] = {"message": step}
    if step == TOOL_STEP:
        body["workflow"] = "chat_with_tools"
        tool = {"name": "calculator", "arguments": {"expression": "2+2"}}
        fake.enqueue(FakeReply(content="", tool_calls=[tool]))
    gate.arm(hold_commit)
    correlation_id = new_id()
    headers = {**alice.headers, "X-Correlation-ID": correlation_id}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
        http.stream("POST", "/api/v1/chat/stream", json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        if hold_commit is not None:
            await asyncio.wait_for(gate.reached.wait(), 5)
        else:
            async for event in read_events(response):
                if event.event == leave_after:
                    break
    # The client is gone; give the server a moment to notice, then let the commit go on.
    await asyncio.sleep(0.2)
    gate.release.set()
    await wait_until_nothing_runs(engine)
    await assert_invariants(engine)
    rows = await turn_rows(engine, correlation_id)
    (execution,) = rows["executions"]
    assert execution.status in {"cancelled", "completed"}, step
    assistant = [m for m in rows["messages"] if m.role == "assistant"]
    assert len(assistant) == 1, step  # the usage landed once
    assert len(rows["calls"]) == execution.llm_call_count, step
    if hold_commit == 1:
        assert not rows["calls"], step
    elif step == TOOL_STEP:  # the second call may have started (and been cut) meanwhile
        assert len(rows["calls"]) in {1, 2}, step
    else:
        assert len(rows["calls"]) == 1, step
    assert assistant[0].total_tokens == sum(c.total_tokens for c in rows["calls"])
    assert assistant[0].total_tokens == execution.total_tokens


def _answer_own_question(request: dict[str, Any]) -> FakeReply:
    last = request["messages"][-1]
    return FakeReply(content=f"answer to: {last.get('content')}", chunk_delay_s=0.001)


async def test_concurrent_turns_each_answer_their_own_question(
    client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    fake.set_responder(_answer_own_question)
    created = await client.post("/api/v1/conversations", json={}, headers=alice.headers)
    conversation_id = created.json()["id"]
    questions = [f"question number {n}?" for n in range(12)]

    async def ask(question: str) -> dict[str, Any]:
        response = await client.post(
            "/api/v1/chat",
            json={"message": question, "conversation_id": conversation_id},
            headers=alice.headers,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    answers = await asyncio.gather(*(ask(q) for q in questions))
    for question, body in zip(questions, answers, strict=True):
        assert body["user_message"]["content"] == question
        assert body["assistant_message"]["content"] == f"answer to: {question}"
    # Each model request ended with its own question and saw nothing appended after it.
    sequence_of = {}
    for body in answers:
        for key in ("user_message", "assistant_message"):
            sequence_of[body[key]["content"]] = body[key]["sequence"]
    for request in fake.requests:
        sent = [m.get("content") for m in request["messages"]]
        own = sent[-1]
        assert own in questions
        assert all(sequence_of[content] < sequence_of[own] for content in sent[:-1])
    await assert_invariants(engine)


async def test_disconnects_racing_busy_writers_never_wedge_the_database(
    base_url: str,
    client: httpx.AsyncClient,
    alice: Actor,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    fake.default_reply = FakeReply(content="short answer with a few words in it")
    created = await client.post("/api/v1/conversations", json={}, headers=alice.headers)
    conversation_id = created.json()["id"]
    body = {"conversation_id": conversation_id}
    rng = random.Random(7)

    async def busy_writer(n: int) -> None:
        response = await client.post(
            "/api/v1/chat", json={**body, "message": f"busy {n}"}, headers=alice.headers
        )
        assert response.status_code == 200, response.text

    async def leaver(n: int) -> None:
        leave_after = rng.choice(["start", "delta", "usage", "usage", "usage"])
        linger_s = rng.uniform(0, 0.03)
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=20) as http,
            http.stream(
                "POST",
                "/api/v1/chat/stream",
                json={**body, "message": f"leaver {n}"},
                headers=alice.headers,
            ) as response,
        ):
            async for event in read_events(response):
                if event.event in (leave_after, "done", "error"):
                    break
            await asyncio.sleep(linger_s)

    jobs = [busy_writer(n) for n in range(16)] + [leaver(n) for n in range(40)]
    rng.shuffle(jobs)
    await asyncio.gather(*jobs)
    await wait_until_nothing_runs(engine)
    await assert_invariants(engine)
    # A fresh write goes through at once.
    started = time.monotonic()
    fresh = await client.post("/api/v1/conversations", json={"title": "t"}, headers=alice.headers)
    assert fresh.status_code == 201
    assert time.monotonic() - started < 1.0
    deleted = await client.delete(f"/api/v1/conversations/{conversation_id}", headers=alice.headers)
    assert deleted.status_code == 204


async def test_patch_racing_delete_is_a_404_never_a_500(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    for _ in range(10):
        created = await client.post("/api/v1/conversations", json={}, headers=alice.headers)
        path = f"/api/v1/conversations/{created.json()['id']}"
        patches = [client.patch(path, json={"title": "x"}, headers=alice.headers) for _ in range(3)]
        results = await asyncio.gather(client.delete(path, headers=alice.headers), *patches)
        assert results[0].status_code == 204
        for patched in results[1:]:
            assert patched.status_code in {200, 404}, patched.text
            if patched.status_code == 404:
                assert patched.json()["error"]["code"] == "not_found"


async def test_a_stream_racing_delete_always_ends_with_done_or_error(
    base_url: str, client: httpx.AsyncClient, alice: Actor, fake: FakeOpenAIServer
) -> None:
    fake.default_reply = FakeReply(content="hi")

    async def stream(conversation_id: str) -> str:
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=10) as http,
            http.stream(
                "POST",
                "/api/v1/chat/stream",
                json={"message": "hi", "conversation_id": conversation_id},
                headers=alice.headers,
            ) as response,
        ):
            if response.status_code == 404:  # deleted before the request was admitted
                return "not_found"
            events = [e async for e in read_events(response) if e.event != "comment"]
        last = events[-1]
        assert last.event in {"done", "error"}, [e.event for e in events]
        if last.event == "error":
            assert last.data["code"] == "not_found"
            return "not_found"
        return "done"

    outcomes = set()
    for _ in range(10):
        created = await client.post("/api/v1/conversations", json={}, headers=alice.headers)
        conversation_id = created.json()["id"]
        path = f"/api/v1/conversations/{conversation_id}"
        ended, deleted = await asyncio.gather(
            stream(conversation_id), client.delete(path, headers=alice.headers)
        )
        assert deleted.status_code in {204, 409}
        outcomes.add(ended)
    assert outcomes <= {"done", "not_found"}


async def test_a_stream_whose_conversation_is_deleted_before_it_opens_ends_with_error(
    gated_app: FastAPI,
    base_url: str,
    gate: CommitGate,
    client: httpx.AsyncClient,
    alice: Actor,
    fake: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    created = await client.post("/api/v1/conversations", json={}, headers=alice.headers)
    conversation_id = created.json()["id"]
    gate.arm(None, before_first_statement=True)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
        http.stream(
            "POST",
            "/api/v1/chat/stream",
            json={"message": "hi", "conversation_id": conversation_id},
            headers=alice.headers,
        ) as response,
    ):
        assert response.status_code == 200
        await asyncio.wait_for(gate.reached.wait(), 5)
        deleted = await client.delete(
            f"/api/v1/conversations/{conversation_id}", headers=alice.headers
        )
        assert deleted.status_code == 204
        gate.release.set()
        events = [e async for e in read_events(response) if e.event != "comment"]
    assert [e.event for e in events] == ["error"]
    assert events[0].data["code"] == "not_found"
    assert fake.requests == []
    await assert_invariants(engine)


async def test_a_request_that_cannot_get_a_connection_is_a_503(database_url: str) -> None:
    settings = make_settings(database_url, database_pool_timeout_s=0.2)
    async with running_app(settings) as (app, client):
        container: Container = app.state.container
        holders = await _exhaust_pool(container.engine)
        try:
            response = await client.post(
                "/api/v1/auth/login", json={"email": "a@b.co", "password": "x" * 12}
            )
        finally:
            for connection in holders:
                await connection.close()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_busy"
    assert response.headers["retry-after"] == "1"


async def _exhaust_pool(engine: AsyncEngine) -> list[AsyncConnection]:
    held: list[AsyncConnection] = []
    while True:
        try:
            held.append(await engine.connect())
        except PoolTimeoutError:
            return held
