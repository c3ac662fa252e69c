"""The server processes a benchmark runs: started in their own process group on a free port,
waited for, measured (CPU time of the process and all its children) and always stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

# Loopback never goes through a proxy, whatever the shell exported.
LOCAL_ENV = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class BenchError(Exception):
    """A target could not be set up or measured: the message says why, for the operator."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def child_env(extra: Mapping[str, str], drop: tuple[str, ...] = ()) -> dict[str, str]:
    """This process's environment without proxies (and `drop`), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS and k not in drop}
    return {**env, **LOCAL_ENV, **extra}


def run_once(name: str, command: list[str], env: Mapping[str, str], cwd: Path) -> None:
    """A setup command that must succeed (e.g. a migration)."""
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise BenchError(f"{name}: `{' '.join(command)}` failed ({done.returncode}):\n{tail}")


@dataclass
class Server:
    """A running server process (and its process group)."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and every live descendant (the workers)."""
        try:
            root = psutil.Process(self.process.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess as exc:
            raise BenchError(f"{self.name}: the server process is gone") from exc
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    async def wait_ready(self, path: str, timeout_s: float = 120.0) -> None:
        """Poll `path` until it answers 200; fail early (with the log) if the process exits."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.base_url, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise BenchError(
                        f"{self.name} exited ({self.process.returncode}) while starting; "
                        f"log {self.log}:\n{self.log_tail()}"
                    )
                try:
                    if (await client.get(path, timeout=2.0)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise BenchError(f"{self.name}: {path} not ready after {timeout_s:.0f} s; log {self.log}")

    def stop(self) -> None:
        """SIGTERM to the whole group, then SIGKILL whatever is left after 10 s."""
        if self.process.poll() is not None:
            return
        _signal_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pid, sig)  # start_new_session: the group id is the leader's pid


@contextmanager
def started(
    name: str, command: list[str], env: Mapping[str, str], cwd: Path, port: int
) -> Iterator[Server]:
    """Start `command` in its own session (so Ctrl-C in the terminal reaches only us, and we
    stop the whole group in `finally`), its output in `cwd/<name>.log`."""
    log = cwd / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name=name, process=process, port=port, log=log)
    try:
        yield server
    finally:
        server.stop()
