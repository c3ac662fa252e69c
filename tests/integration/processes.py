"""Run Chatter's commands as real processes (make, chatter serve, chatter chat on a pty) and
watch their output, for tests of what an operator sees."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without anything that configures Chatter or make."""
    dropped = ("HOST", "PORT", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CHATTER_") and name not in dropped
    }
    env.update(values)
    return env


class Output:
    """Everything a process wrote, collected by a thread; tests wait for patterns in it."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._chunks: list[str] = []
        self._changed = threading.Condition()
        self._closed = False
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 4096)
            except OSError:  # a pty whose other side closed answers EIO
                data = b""
            with self._changed:
                if not data:
                    os.close(self._fd)
                    self._closed = True
                    self._changed.notify_all()
                    return
                self._chunks.append(data.decode(errors="replace"))
                self._changed.notify_all()

    @property
    def text(self) -> str:
        with self._changed:
            return ANSI.sub("", "".join(self._chunks))

    def wait_for(self, pattern: str, *, after: int = 0, timeout: float = 30) -> re.Match[str]:
        """The first match of `pattern` at or after offset `after` of `text`."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                match = compiled.search(ANSI.sub("", "".join(self._chunks)), after)
                if match is not None:
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    text = ANSI.sub("", "".join(self._chunks))
                    raise AssertionError(f"no {pattern!r} in output:\n{text}")
                self._changed.wait(remaining)


class Process:
    """A command in a session of its own, so a signal reaches it and its children."""

    def __init__(
        self, args: Sequence[str], env: dict[str, str], *, tty: bool = False, cwd: Path = ROOT
    ) -> None:
        # Ours is the side we read (and, on a pty, type into); theirs is the child's stdio.
        if tty:
            ours, theirs = os.openpty()
            stdin: int = theirs
        else:
            ours, theirs = os.pipe()
            stdin = subprocess.DEVNULL
        self._terminal = ours if tty else None
        self.popen = subprocess.Popen(
            list(args),
            stdin=stdin,
            stdout=theirs,
            stderr=theirs,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        os.close(theirs)
        self.output = Output(ours)

    def type(self, text: str) -> None:
        """Keystrokes on the terminal (tty processes only)."""
        assert self._terminal is not None
        os.write(self._terminal, text.encode())

    def interrupt(self) -> None:
        """What Ctrl-C does: SIGINT to the foreground process group."""
        os.killpg(self.popen.pid, signal.SIGINT)

    def wait(self, timeout: float = 30) -> int:
        return self.popen.wait(timeout)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.interrupt()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)


async def wait_until_ready(url: str, server: Process, timeout_s: float = 60) -> None:
    """Poll `/readyz` until the server answers 200 (it failing to start fails the test)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            assert server.popen.poll() is None, server.output.text
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"the server did not start:\n{server.output.text}")
