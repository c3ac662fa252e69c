"""`chatter chat` on a real terminal (a pty) against a live server: Ctrl-C during a reply
cancels that turn and returns to the prompt; Ctrl-D at the prompt quits with status 0."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import httpx
from accounting import assert_invariants
from processes import Process, clean_env, free_port
from sqlalchemy.ext.asyncio import AsyncEngine

from conftest import live_server, make_settings

# Slow enough that a reply (about 45 words) is still streaming when the test presses Ctrl-C.
CHUNK_DELAY_S = 0.08


async def api_key(api: httpx.AsyncClient) -> str:
    credentials = {"email": "terminal@example.com", "password": "correct horse battery"}
    registered = await api.post("/api/v1/auth/register", json=credentials)
    assert registered.status_code == 201, registered.text
    login = await api.post("/api/v1/auth/login", json=credentials)
    token = login.json()["access_token"]
    created = await api.post(
        "/api/v1/auth/api-keys",
        json={"name": "terminal"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


async def settled_messages(
    api: httpx.AsyncClient, conversation_id: str, count: int
) -> list[dict[str, Any]]:
    """The conversation's messages once it has `count` (the cancelled turn closes async)."""
    deadline = time.monotonic() + 10
    while True:
        listed = await api.get(f"/api/v1/conversations/{conversation_id}/messages")
        assert listed.status_code == 200, listed.text
        items: list[dict[str, Any]] = listed.json()["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        await asyncio.sleep(0.1)


async def test_ctrl_c_cancels_the_reply_returns_to_the_prompt_and_ctrl_d_quits(
    database_url: str, engine: AsyncEngine
) -> None:
    llm = {"demo_chunk_delay_s": CHUNK_DELAY_S, "max_retries": 0, "timeout_s": 10}
    async with (
        live_server(make_settings(database_url, llm=llm)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as api,
    ):
        key = await api_key(api)
        api.headers["Authorization"] = f"Bearer {key}"
        chat = Process(
            [sys.executable, "-m", "chatter.cli.main", "chat"],
            clean_env(CHATTER_URL=url, CHATTER_API_KEY=key),
            tty=True,
        )
        try:
            out = chat.output

            async def expect(pattern: str, after: int) -> int:
                return (await asyncio.to_thread(out.wait_for, pattern, after=after)).end()

            at = await expect(r"you> ", 0)
            chat.type("Please tell me something long\n")
            at = await expect(r"assistant> \S+ \S+ \S+", at)  # mid-reply
            chat.interrupt()
            at = await expect(r"Reply interrupted; the turn is cancelled\.", at)
            at = await expect(r"you> ", at)

            # The prompt works, and the next turn continues the same conversation.
            chat.type("hello again\n")
            done = await asyncio.to_thread(
                out.wait_for, r"conversation (\w+): \d+ tokens", after=at
            )
            at = await expect(r"you> ", done.end())
            chat.type("\x04")  # Ctrl-D at an empty prompt
            assert await asyncio.to_thread(chat.wait) == 0
        finally:
            chat.stop()
        assert "Traceback" not in out.text

        messages = await settled_messages(api, done.group(1), 4)
        # Sequences follow commit order: the next turn may open before the cancelled
        # turn's close (which waits for the server to notice the disconnect) commits.
        assert sorted((m["role"], m["status"]) for m in messages) == [
            ("assistant", "complete"),
            ("assistant", "partial"),
            ("user", "complete"),
            ("user", "complete"),
        ]
        assert messages[0]["role"] == "user"
        partial = next(m for m in messages if m["status"] == "partial")
        finished = next(m for m in messages if m["role"] == "assistant" and m is not partial)
        assert partial["content"].startswith("Thanks for your")  # what streamed before Ctrl-C
        assert len(partial["content"]) < len(finished["content"])
        assert partial["completion_tokens"] > 0  # the interrupted call's usage is kept
        execution = await api.get(f"/api/v1/executions/{partial['workflow_execution_id']}")
        assert execution.json()["status"] == "cancelled"
    await assert_invariants(engine)


def test_ctrl_c_at_the_prompt_quits() -> None:
    # Nothing is sent before a message is typed, so no server is needed here.
    chat = Process(
        [sys.executable, "-m", "chatter.cli.main", "chat"],
        clean_env(CHATTER_URL=f"http://127.0.0.1:{free_port()}", CHATTER_API_KEY="chk_unused"),
        tty=True,
    )
    try:
        chat.output.wait_for(r"you> ")
        chat.interrupt()
        assert chat.wait() == 0
    finally:
        chat.stop()
    assert "Traceback" not in chat.output.text
