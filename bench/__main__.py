"""`make bench`: run every benchmark section, or only those named (`python -m bench turns`,
`make bench BENCH=analytics`); `--peer litellm` (`make bench PEER=litellm`) adds the LiteLLM
proxy to the turns section. Figures go to var/bench/<timestamp>.json and var/bench/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import analytics_scale, turns
from bench.processes import BenchError

SECTIONS = ("turns", "analytics")
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "bench"


def _machine() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit or None,
    }


async def _run(sections: list[str], peer: str | None, sizes: str | None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for section in sections:
        if section == "turns":
            results["turns"] = await turns.main(peer, sizes)
        else:
            await analytics_scale.main()
            results["analytics"] = json.loads((OUT / "analytics.json").read_text())
    return results


def _write(figures: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(figures, indent=2, default=str) + "\n"
    path = OUT / f"{stamp}.json"
    path.write_text(text)
    (OUT / "latest.json").write_text(text)
    return path


def _terminate(signum: int, _frame: object) -> None:
    # SIGTERM as Ctrl-C: unwind, so every server started is stopped.
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("sections", nargs="*", help=f"of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--peer", help="compare with a peer: litellm")
    parser.add_argument("--sizes", help="requests per phase, e.g. c1=200,stream=100,c16=800")
    args = parser.parse_args(argv)
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    machine = _machine()
    turns.console.print(
        f"machine: {machine['cpu_count']} CPUs, Python {machine['python']}, "
        f"{machine['platform']}, commit {machine['commit']}"
    )
    signal.signal(signal.SIGTERM, _terminate)
    try:
        results = asyncio.run(_run(args.sections or list(SECTIONS), args.peer, args.sizes))
    except BenchError as exc:
        turns.console.print(f"[red]bench failed:[/red] {exc}")
        return 1
    except KeyboardInterrupt:
        turns.console.print("[yellow]interrupted; servers stopped[/yellow]")
        return 130
    path = _write({"timestamp": datetime.now(UTC).isoformat(), "machine": machine, **results})
    turns.console.print(f"written: {path} and {OUT / 'latest.json'}")
    failed = results.get("turns", {}).get("errors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
