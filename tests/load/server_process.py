"""`chatter serve` as a real process on a free port, configured by environment like an
operator would, talking to a fake model server of the test process; it can be killed hard."""

from __future__ import annotations

import hashlib
import os
import signal

from conftest import TEST_SECRET
from integration.processes import ROOT, Process, clean_env, free_port, wait_until_ready


def server_env(database_url: str, model_url: str, **extra: str) -> dict[str, str]:
    env = clean_env(
        CHATTER_ENV="test",
        CHATTER_DATABASE_URL=database_url,
        CHATTER_SECRET_KEY=TEST_SECRET,
        CHATTER_OPENAI_BASE_URL=model_url,
        CHATTER_OPENAI_API_KEY="test-key",
        CHATTER_DEFAULT_PROVIDER="openai",
        CHATTER_DEFAULT_MODEL="gpt-4o-mini",
        CHATTER_LOG_LEVEL="WARNING",
        # The load is many turns per user per minute: limits on, but never reached.
        CHATTER_RATE_LIMITS__REQUESTS_PER_MINUTE="1000000",
        CHATTER_RATE_LIMITS__TOKENS_PER_MINUTE="1000000000",
        CHATTER_RATE_LIMITS__REGISTER_PER_IP_PER_HOUR="1000000",
    )
    redis_url = os.environ.get("CHATTER_TEST_REDIS_URL")
    if redis_url:
        env["CHATTER_REDIS_URL"] = redis_url
        # Event ids mean something only within one database: a stream per database.
        digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
        env["CHATTER_EVENTS__REDIS_STREAM"] = f"chatter:test:load:{digest}"
    env.update(extra)
    return env


class ChatterServer:
    """One `chatter serve` (a single worker: the process we start is the server)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.process: Process | None = None

    async def start(self, timeout_s: float = 60) -> None:
        chatter = str(ROOT / ".venv" / "bin" / "chatter")
        self.process = Process([chatter, "serve", "--port", str(self.port)], self.env)
        await wait_until_ready(self.url, self.process, timeout_s)

    @property
    def output(self) -> str:
        return self.process.output.text if self.process else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.popen.pid

    def kill(self) -> None:
        """SIGKILL to the server's process group: no shutdown, no close, no flush."""
        assert self.process is not None
        os.killpg(self.pid, signal.SIGKILL)
        self.process.popen.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
