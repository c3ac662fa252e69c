"""The peer Chatter is compared with: the LiteLLM proxy, installed once into its own venv
under var/ and run offline in front of the same fake upstream."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from rich.console import Console

from bench.processes import BenchError, Server, child_env, free_port, started
from bench.targets import MODEL, Target, openai_target

PEERS = ("litellm",)
ROOT = Path(__file__).resolve().parent.parent / "var" / "peer-litellm"
REQUIREMENT = "litellm[proxy]>=1.70,<2"
MASTER_KEY = "sk-bench-master-key"
# No outbound request: the bundled cost map and beta headers, no telemetry, no database,
# no .env read from above the install folder.
OFFLINE_ENV = {
    "LITELLM_OFFLINE_MODE": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "ERROR",
    "LITELLM_MODE": "PRODUCTION",
    "DISABLE_SCHEMA_UPDATE": "True",
    "DISABLE_ADMIN_UI": "True",
}
DROPPED_ENV = ("DATABASE_URL", "DIRECT_URL", "DATABASE_HOST", "REDIS_URL", "OPENAI_API_KEY")


def install(console: Console) -> Path:
    """`var/peer-litellm/bin/litellm`, installing it the first time (pip log alongside)."""
    binary = ROOT / "bin" / "litellm"
    stamp = ROOT / ".installed"
    if stamp.exists() and binary.exists():
        return binary
    log = ROOT.parent / "peer-litellm-install.log"
    ROOT.parent.mkdir(parents=True, exist_ok=True)
    steps = [[sys.executable, "-m", "venv", str(ROOT)]]
    steps.append([str(ROOT / "bin" / "python"), "-m", "pip", "install", REQUIREMENT])
    status = f"installing {REQUIREMENT} into {ROOT} (once; log: {log})"
    with console.status(status), log.open("w") as out:
        for step in steps:
            done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, check=False)  # noqa: S603
            if done.returncode != 0:
                raise BenchError(f"installing {REQUIREMENT} failed; see {log}")
    stamp.touch()
    return binary


def _config(upstream: Server, workdir: Path) -> Path:
    path = workdir / "litellm.yaml"
    path.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream.base_url}/v1\n"
        "      api_key: bench\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  set_verbose: false\n"
        "general_settings:\n"
        f"  master_key: {MASTER_KEY}\n"
    )
    return path


@asynccontextmanager
async def litellm(upstream: Server, workdir: Path, console: Console) -> AsyncIterator[Target]:
    """The proxy, one worker, authenticating a master key (as Chatter checks its API key)."""
    binary = install(console)
    cwd = workdir / "litellm"
    cwd.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [str(binary), "--config", str(_config(upstream, cwd))]
    command += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    env = child_env(OFFLINE_ENV, drop=DROPPED_ENV)
    with started("litellm", command, env, cwd, port) as server:
        await server.wait_ready("/health/liveliness", timeout_s=180)
        yield openai_target("litellm", server, {"Authorization": f"Bearer {MASTER_KEY}"})
