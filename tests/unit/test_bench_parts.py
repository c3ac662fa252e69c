"""`make bench`'s own parts: the fake upstream answers as OpenAI does (JSON and SSE, usage
only when asked for in a stream), percentiles, and how the load client spots a first token."""

from __future__ import annotations

import json

import httpx
import pytest
from bench import fake_upstream, load
from bench.processes import BenchError
from bench.turns import Sizes


async def _post(body: dict[str, object]) -> httpx.Response:
    transport = httpx.ASGITransport(app=fake_upstream.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as http:
        return await http.post("/v1/chat/completions", json=body)


def _frames(response: httpx.Response) -> list[str]:
    return [line[len("data: ") :] for line in response.text.splitlines() if line]


async def test_fake_upstream_answers_json_with_fixed_usage() -> None:
    response = await _post({"model": "gpt-4o-mini", "messages": []})
    body = response.json()
    assert body["choices"][0]["message"]["content"] == fake_upstream.CONTENT
    assert (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]) == (11, 7)


async def test_fake_upstream_streams_usage_only_when_asked() -> None:
    with_usage = _frames(
        await _post({"stream": True, "stream_options": {"include_usage": True}, "messages": []})
    )
    assert with_usage[-1] == "[DONE]"
    chunks = [json.loads(frame) for frame in with_usage[:-1]]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 18
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == fake_upstream.CONTENT
    without = _frames(await _post({"stream": True, "messages": []}))
    assert all("usage" not in json.loads(frame) for frame in without[:-1])


async def test_fake_upstream_lists_models() -> None:
    transport = httpx.ASGITransport(app=fake_upstream.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as http:
        models = (await http.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]] == list(fake_upstream.MODELS)


def test_percentile_is_nearest_rank() -> None:
    samples = [float(n) for n in range(100, 0, -1)]
    assert (load.percentile(samples, 50), load.percentile(samples, 99)) == (50.0, 99.0)
    assert load.percentile([3.0], 99) == 3.0


def test_first_token_lines() -> None:
    role = {"choices": [{"delta": {"role": "assistant", "content": ""}}]}
    word = {"choices": [{"delta": {"content": "Hello"}}]}
    assert not load.openai_token(f"data: {json.dumps(role)}")
    assert load.openai_token(f"data: {json.dumps(word)}")
    assert load.chatter_token("event: delta")
    assert not load.chatter_token("event: start")


def test_sizes_parse() -> None:
    assert Sizes.parse("c1=5,c64=7") == Sizes(c1=5, c64=7)
    with pytest.raises(BenchError):
        Sizes.parse("c2=5")
