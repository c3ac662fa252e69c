"""`chatter analytics rebuild|check`: the rollups against the rows they are made of."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from chatter.settings import Settings

analytics_app = typer.Typer(help="Analytics rollups.", no_args_is_help=True)
console = Console()
COLUMNS = ("table", "key", "column", "stored", "expected")
SHOWN = 50  # differences printed; the count says how many there are

Since = typer.Option(
    None,
    "--since",
    help="A date (YYYY-MM-DD) or ISO datetime, UTC; from the start of its day. Default: all.",
)


def _since(value: str | None) -> datetime:
    if value is None:
        return datetime(1970, 1, 1, tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        console.print(f"[red]--since: not a date: {value!r} (use YYYY-MM-DD).[/red]")
        raise typer.Exit(code=2) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@analytics_app.command("rebuild")
def rebuild(since: str | None = Since) -> None:
    """Recompute the rollups from the executions and LLM calls, one day per transaction.
    Safe while the server runs: closes wait for the day being rebuilt."""
    start = _since(since)

    async def _run() -> int:
        from chatter.container import Container  # the container imports every provider SDK

        container = Container.build(Settings())
        try:
            with Progress(console=console) as progress:
                task = progress.add_task("Rebuilding days", total=None)

                def advance(day: datetime, done: int, total: int) -> None:
                    progress.update(
                        task, completed=done, total=total, description=f"{day:%Y-%m-%d}"
                    )

                return await container.analytics.rebuild(start, advance)
        finally:
            await container.aclose()

    executions = asyncio.run(_run())
    console.print(f"Rolled up {executions} executions since {start:%Y-%m-%d}.")


@analytics_app.command("check")
def check(since: str | None = Since) -> None:
    """Compare the rollups with the executions and LLM calls; exit 1 on any difference."""
    start = _since(since)

    async def _run() -> list[object]:
        from chatter.container import Container

        container = Container.build(Settings())
        try:
            return list(await container.analytics.check(start))
        finally:
            await container.aclose()

    differences = asyncio.run(_run())
    if not differences:
        console.print(f"[green]Rollups match the raw rows since {start:%Y-%m-%d}.[/green]")
        return
    table = Table(*COLUMNS)
    for difference in differences[:SHOWN]:
        table.add_row(*(str(getattr(difference, name)) for name in COLUMNS))
    console.print(table)
    console.print(
        f"[red]{len(differences)} differences; `chatter analytics rebuild` recomputes them.[/red]"
    )
    raise typer.Exit(code=1)
