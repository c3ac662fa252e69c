"""The turns benchmark's table (one column per target), the ratios to the peer with the
issue's targets (PASS / MISS), and the same figures as a dict for the JSON file."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from bench.turns import Figures, Sizes

CHATTER = "chatter-sqlite-1w"
DELIVERY_TARGET_MS = 50.0
Value = Callable[["Figures", "Figures | None"], float | None]


def _phase(phase: str, what: str) -> Value:
    def value(figures: Figures, _: Figures | None) -> float | None:
        measured = figures.phases.get(phase)
        if measured is None:
            return None
        if what == "per_s":
            return measured.per_s
        if what == "cpu":
            return measured.cpu_ms_per_request
        return measured.p(float(what))

    return value


def _added(phase: str) -> Value:
    def value(figures: Figures, direct: Figures | None) -> float | None:
        mine = _phase(phase, "50")(figures, None)
        base = _phase(phase, "50")(direct, None) if direct else None
        return None if mine is None or base is None else mine - base

    return value


def _delivery(q: float) -> Value:
    def value(figures: Figures, _: Figures | None) -> float | None:
        if figures.delivery is None or not figures.delivery.delays_ms:
            return None
        return float(figures.delivery.summary()[f"p{q:.0f}_ms"])

    return value


def _errors(figures: Figures, _: Figures | None) -> float | None:
    return float(sum(p.errors for p in figures.phases.values()))


ROWS: tuple[tuple[str, str, Value], ...] = (
    ("latency p50, c1 (ms)", "latency_p50_c1_ms", _phase("c1", "50")),
    ("added latency p50, c1 (ms)", "added_p50_c1_ms", _added("c1")),
    ("TTFT, streamed, p50, c1 (ms)", "ttft_p50_c1_ms", _phase("stream", "50")),
    ("turns/s, c1", "per_s_c1", _phase("c1", "per_s")),
    ("turns/s, c16", "per_s_c16", _phase("c16", "per_s")),
    ("turns/s, c64", "per_s_c64", _phase("c64", "per_s")),
    ("p50, c16 (ms)", "p50_c16_ms", _phase("c16", "50")),
    ("p95, c16 (ms)", "p95_c16_ms", _phase("c16", "95")),
    ("p99, c16 (ms)", "p99_c16_ms", _phase("c16", "99")),
    ("added latency p50, c16 (ms)", "added_p50_c16_ms", _added("c16")),
    ("p50, c64 (ms)", "p50_c64_ms", _phase("c64", "50")),
    ("p95, c64 (ms)", "p95_c64_ms", _phase("c64", "95")),
    ("p99, c64 (ms)", "p99_c64_ms", _phase("c64", "99")),
    ("added latency p50, c64 (ms)", "added_p50_c64_ms", _added("c64")),
    ("server CPU ms/turn, c1", "cpu_ms_c1", _phase("c1", "cpu")),
    ("server CPU ms/turn, c16", "cpu_ms_c16", _phase("c16", "cpu")),
    ("event delivery p50 (ms)", "delivery_p50_ms", _delivery(50)),
    ("event delivery p99 (ms)", "delivery_p99_ms", _delivery(99)),
    ("failed requests", "errors", _errors),
)

# (figure, ratio target, higher is better)
TARGETS: tuple[tuple[str, float, bool], ...] = (
    ("added_p50_c1_ms", 0.8, False),
    ("cpu_ms_c16", 0.8, False),
    ("per_s_c16", 1.25, True),
    ("p99_c16_ms", 1.0, False),
)


def _text(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _verdict(met: bool) -> str:
    return "[green]PASS[/green]" if met else "[red]MISS[/red]"


def _values(out: dict[str, Figures]) -> dict[str, dict[str, float | None]]:
    direct = out.get("direct")
    return {name: {key: value(fig, direct) for _, key, value in ROWS} for name, fig in out.items()}


def _table(out: dict[str, Figures], values: dict[str, dict[str, float | None]]) -> Table:
    table = Table(title="Chat turns against the fake upstream (no think time)")
    table.add_column("figure")
    for name in out:
        table.add_column(name, justify="right")
    for label, key, _ in ROWS:
        table.add_row(label, *(_text(values[name][key]) for name in out))
    return table


def _ratios(values: dict[str, dict[str, float | None]], peer: str) -> list[dict[str, Any]]:
    results = []
    for key, target, higher in TARGETS:
        mine, theirs = values.get(CHATTER, {}).get(key), values.get(peer, {}).get(key)
        ok = mine is not None and theirs is not None and theirs > 0 and not math.isnan(mine)
        ratio = mine / theirs if ok and mine is not None and theirs else None
        met = None if ratio is None else (ratio >= target if higher else ratio <= target)
        results.append(
            {
                "figure": key,
                "chatter": mine,
                "peer": theirs,
                "ratio": ratio,
                "target": f"{'>=' if higher else '<='} {target}x",
                "met": met,
            }
        )
    return results


def _print_targets(
    console: Console, values: dict[str, dict[str, float | None]], peer: str | None
) -> list[dict[str, Any]]:
    table = Table(title=f"Targets: {CHATTER}" + (f" / {peer}" if peer else ""))
    for column in ("figure", CHATTER, peer or "peer", "ratio", "target", "met"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    ratios = _ratios(values, peer) if peer else []
    labels = {key: label for label, key, _ in ROWS}
    for row in ratios:
        verdict = "-" if row["met"] is None else _verdict(row["met"])
        table.add_row(
            labels[row["figure"]],
            _text(row["chatter"]),
            _text(row["peer"]),
            _text(row["ratio"]),
            row["target"],
            verdict,
        )
    delivery = values.get(CHATTER, {}).get("delivery_p99_ms")
    met = None if delivery is None else delivery <= DELIVERY_TARGET_MS
    ratios.append(
        {
            "figure": "delivery_p99_ms",
            "chatter": delivery,
            "target": f"<= {DELIVERY_TARGET_MS:.0f} ms",
            "met": met,
        }
    )
    table.add_row(
        labels["delivery_p99_ms"],
        _text(delivery),
        "",
        "",
        f"<= {DELIVERY_TARGET_MS:.0f} ms",
        "-" if met is None else _verdict(met),
    )
    console.print(table)
    return ratios


def render(
    console: Console, out: dict[str, Figures], sizes: Sizes, peer: str | None
) -> dict[str, Any]:
    values = _values(out)
    console.print(_table(out, values))
    console.print(
        "Added latency = the target's p50 minus the direct call's p50 at the same concurrency. "
        "Server CPU = user + system time of the server process and its workers over the "
        "measured requests, divided by them (for `direct`: the fake upstream's own). Each "
        "Chatter turn opens a new conversation. Event delivery: a subscriber's receive time "
        "minus `created_at` of each workflow_completed, turns at c1."
    )
    for figures in out.values():
        if figures.error:
            console.print(f"[red]{figures.name}: {figures.error}[/red]")
    targets = _print_targets(console, values, peer)
    return {
        "sizes": asdict(sizes),
        "peer": peer,
        "figures": values,
        "phases": {n: {p: m.summary() for p, m in f.phases.items()} for n, f in out.items()},
        "delivery": {n: f.delivery.summary() for n, f in out.items() if f.delivery},
        "errors": {n: f.error for n, f in out.items() if f.error},
        "targets": targets,
    }
