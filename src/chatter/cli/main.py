"""The `chatter` command."""

from __future__ import annotations

import os

import typer
import uvicorn

from chatter.api.request_limits import h11_header_limit
from chatter.cli.analytics import analytics_app
from chatter.cli.chat import chat
from chatter.cli.db import db_app
from chatter.cli.metrics_dir import prepare_multiprocess_dir
from chatter.cli.users import users_app
from chatter.settings import Settings

app = typer.Typer(
    help="Chatter: an LLM chat backend where no usage is ever lost.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(analytics_app, name="analytics")
app.command("chat")(chat)


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (default: CHATTER_HOST)."),
    port: int | None = typer.Option(None, min=1, max=65535, help="Port (default: CHATTER_PORT)."),
    workers: int = typer.Option(1, min=1, help="Worker processes."),
) -> None:
    """Start the HTTP server."""
    settings = Settings()
    host = host or settings.host
    port = port or settings.port
    # Each worker builds its app from the environment (create_app reads Settings): hand it
    # the address actually served, so what the app says about itself (the bootstrap's "Try:"
    # line) is where it listens, not the configured default.
    os.environ["CHATTER_HOST"] = host
    os.environ["CHATTER_PORT"] = str(port)
    prepare_multiprocess_dir(workers, port)
    uvicorn.run(
        "chatter.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        # The app logs one structured line per request itself (route, status, duration,
        # correlation id, user): uvicorn's access line would only repeat it, unstructured.
        access_log=False,
        h11_max_incomplete_event_size=h11_header_limit(settings.limits),
    )


if __name__ == "__main__":
    app()
