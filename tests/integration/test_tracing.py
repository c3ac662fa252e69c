"""OpenTelemetry spans of a chat turn: server -> invoke_workflow -> chat / execute_tool,
with the GenAI attributes and the token counts of the stored rows, continuing the caller's
W3C trace context. Spans go to an in-memory exporter given to this app only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.app import create_app
from chatter.observability.telemetry import Telemetry
from chatter.observability.tracing import Tracing
from chatter.storage.models import LLMCall, ToolInvocation
from conftest import openai_settings
from fakes.openai_server import FakeOpenAIServer, FakeReply

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
async def traced_client(
    database_url: str, fake_openai: FakeOpenAIServer, exporter: InMemorySpanExporter
) -> AsyncIterator[httpx.AsyncClient]:
    telemetry = Telemetry(tracing=Tracing.to_exporter(exporter))
    app = create_app(openai_settings(database_url, fake_openai), telemetry=telemetry)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://chatter.test") as client:
            yield client


async def register(client: httpx.AsyncClient) -> dict[str, str]:
    credentials = {"email": "tracer@example.com", "password": "correct horse battery"}
    assert (await client.post("/api/v1/auth/register", json=credentials)).status_code == 201
    login = await client.post("/api/v1/auth/login", json=credentials)
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    (span,) = [span for span in spans if span.name == name]
    return span


async def test_a_tool_turn_yields_the_genai_span_tree(
    traced_client: httpx.AsyncClient,
    fake_openai: FakeOpenAIServer,
    exporter: InMemorySpanExporter,
    engine: AsyncEngine,
) -> None:
    headers = await register(traced_client)
    fake_openai.reset()
    fake_openai.enqueue(
        FakeReply(
            content="",
            tool_calls=[{"name": "calculator", "arguments": {"expression": "6*7"}}],
            usage={"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
        ),
        FakeReply(
            content="42.",
            usage={
                "prompt_tokens": 80,
                "completion_tokens": 20,
                "total_tokens": 100,
                "prompt_tokens_details": {"cached_tokens": 40},
            },
        ),
    )
    exporter.clear()
    response = await traced_client.post(
        "/api/v1/chat",
        json={"message": "6*7?", "workflow": "chat_with_tools"},
        headers={**headers, "traceparent": TRACEPARENT},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == int(TRACE_ID, 16)]

    server = one(spans, "POST /api/v1/chat")
    assert server.kind is SpanKind.SERVER
    assert parent_id(server) == int(PARENT_SPAN_ID, 16)
    assert server.attributes["http.route"] == "/api/v1/chat"
    assert server.attributes["http.response.status_code"] == 200

    workflow = one(spans, "invoke_workflow chat_with_tools")
    assert workflow.kind is SpanKind.INTERNAL
    assert parent_id(workflow) == server.context.span_id
    attrs = workflow.attributes
    assert attrs["gen_ai.operation.name"] == "invoke_workflow"
    assert attrs["gen_ai.workflow.name"] == "chat_with_tools"
    assert attrs["gen_ai.conversation.id"] == body["conversation"]["id"]
    assert attrs["chatter.correlation_id"] == response.headers["x-correlation-id"]
    assert attrs["gen_ai.usage.input_tokens"] == 130

    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(LLMCall)
                .where(LLMCall.execution_id == body["execution"]["id"])
                .order_by(LLMCall.created_at)
            )
        ).all()
        tool_row = (
            await connection.execute(
                select(ToolInvocation).where(ToolInvocation.execution_id == body["execution"]["id"])
            )
        ).one()
    chats = sorted(
        (s for s in spans if s.name == "chat gpt-4o-mini"), key=lambda s: s.start_time or 0
    )
    assert len(chats) == 2 == len(rows)
    for span, row in zip(chats, sorted(rows, key=lambda r: r.prompt_tokens), strict=True):
        assert span.kind is SpanKind.CLIENT
        assert parent_id(span) == workflow.context.span_id
        a = span.attributes
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == "openai"
        assert "gen_ai.system" not in a
        assert a["gen_ai.request.model"] == "gpt-4o-mini"
        assert a["gen_ai.response.model"]
        assert a["gen_ai.request.stream"] is True
        assert a["gen_ai.usage.input_tokens"] == row.prompt_tokens
        assert a["gen_ai.usage.output_tokens"] == row.completion_tokens
        assert a["gen_ai.usage.cache_read.input_tokens"] == row.cached_tokens
        assert a["gen_ai.usage.reasoning.output_tokens"] == row.reasoning_tokens
        assert a["gen_ai.conversation.id"] == body["conversation"]["id"]
        assert a["chatter.cost"] == str(row.cost)
        assert a["chatter.currency"] == row.currency
        assert a["chatter.price_source"] == row.price_source
        assert a["chatter.usage_source"] == row.usage_source
        assert a["chatter.correlation_id"] == response.headers["x-correlation-id"]
        assert a["gen_ai.response.finish_reasons"] == (row.finish_reason,)
        assert abs(((span.end_time or 0) - (span.start_time or 0)) / 1e6 - row.latency_ms) <= 2
    assert chats[0].attributes["gen_ai.usage.input_tokens"] == 50

    tool = one(spans, "execute_tool calculator")
    assert parent_id(tool) == workflow.context.span_id
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "calculator"
    assert tool.attributes["gen_ai.tool.call.id"] == tool_row.tool_call_id
    # In time order: chat, tool, chat; all inside the workflow, inside the request.
    assert chats[0].end_time <= tool.start_time <= tool.end_time <= chats[1].start_time
    assert server.start_time <= workflow.start_time <= chats[0].start_time
    assert chats[1].end_time <= workflow.end_time <= server.end_time


async def test_tracing_is_off_without_an_otlp_endpoint() -> None:
    assert not Tracing.from_environment({}).enabled
    assert not Tracing.from_environment({"OTEL_SERVICE_NAME": "x"}).enabled
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert not Tracing.from_environment({**endpoint, "OTEL_SDK_DISABLED": "true"}).enabled
    tracing = Tracing.from_environment(endpoint)
    assert tracing.enabled
    assert tracing.provider is not None
    tracing.provider.shutdown()  # nothing was recorded: nothing is sent
