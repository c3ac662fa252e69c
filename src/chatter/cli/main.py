"""The `chatter` command."""

from __future__ import annotations

import asyncio

import typer
import uvicorn
from rich.console import Console

from chatter.cli.chat import chat
from chatter.cli.users import users_app
from chatter.settings import Settings
from chatter.storage.db import create_engine
from chatter.storage.migrate import upgrade_to_head

app = typer.Typer(
    help="Chatter: an LLM chat backend where no usage is ever lost.", no_args_is_help=True
)
db_app = typer.Typer(help="Database commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.command("chat")(chat)
console = Console()


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (default: CHATTER_HOST)."),
    port: int | None = typer.Option(None, help="Port (default: CHATTER_PORT)."),
    workers: int = typer.Option(1, min=1, help="Worker processes."),
) -> None:
    """Start the HTTP server."""
    settings = Settings()
    uvicorn.run(
        "chatter.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all database migrations."""
    settings = Settings()

    async def _run() -> None:
        engine = create_engine(settings.database_url)
        try:
            await upgrade_to_head(engine)
        finally:
            await engine.dispose()

    asyncio.run(_run())
    console.print("[green]Database is up to date.[/green]")


if __name__ == "__main__":
    app()
