"""`make run` and `chatter serve` as real processes: where they listen, what they print.

This module works on `empty_database_url`, so `make run`'s own `chatter db upgrade` creates
the schema and the first development start finds no user (and prints the bootstrap)."""

from __future__ import annotations

import subprocess

import httpx
from processes import ROOT, Process, clean_env, free_port

from chatter.settings import Settings


def make_run(database_url: str, *make_args: str, **env: str) -> Process:
    return Process(
        ["make", "--no-print-directory", "run", *make_args],
        clean_env(CHATTER_DATABASE_URL=database_url, CHATTER_ENV="development", **env),
    )


def test_make_run_port_wins_and_the_try_line_names_the_port_served(
    empty_database_url: str,
) -> None:
    # CHATTER_PORT says one port, make's command line another: the server, and what it
    # prints about itself, must agree on the one actually served.
    port, configured = free_port(), free_port()
    run = make_run(empty_database_url, f"PORT={port}", CHATTER_PORT=str(configured))
    try:
        out = run.output
        out.wait_for(r"Upgraded \S+ from no revision to \S+ \(.+\) \(head\)\.")
        key = out.wait_for(r"API key:\s+(chk_\S+)").group(1)
        url = out.wait_for(r"Try: curl .* (http://\S+)/api/v1/auth/me").group(1)
        out.wait_for(rf"Uvicorn running on http://127\.0\.0\.1:{port}\b")

        assert url == f"http://127.0.0.1:{port}"
        # The Try line works as printed.
        me = httpx.get(f"{url}/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"})
        assert me.status_code == 200, me.text
        assert me.json()["role"] == "admin"
    finally:
        run.stop()


def test_make_run_serves_where_chatter_host_and_port_say(empty_database_url: str) -> None:
    port = free_port()
    run = make_run(empty_database_url, CHATTER_HOST="127.0.0.1", CHATTER_PORT=str(port))
    try:
        out = run.output
        out.wait_for(r"\S+ is already at head: \S+ \(.+\)\.")
        out.wait_for(rf"Uvicorn running on http://127\.0\.0\.1:{port}\b")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        assert "API key" not in out.text  # not an empty database any more
    finally:
        run.stop()


def test_make_run_without_any_setting_serves_the_default_address() -> None:
    # Dry runs: port 8000 may be taken on a shared machine. Without CHATTER_HOST/PORT, make
    # passes no address, so `chatter serve` takes Settings' defaults; HOST and PORT merely
    # exported by the shell are not make's business.
    for env in (clean_env(), clean_env(HOST="example.org", PORT="1")):
        dry = subprocess.run(
            ["make", "--no-print-directory", "-n", "run"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert dry.stdout.splitlines()[-2:] == [
            ".venv/bin/chatter db upgrade",
            ".venv/bin/chatter serve",
        ]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (defaults.host, defaults.port) == ("127.0.0.1", 8000)
