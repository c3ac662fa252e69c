"""`chatter db ...`."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from chatter.settings import Settings
from chatter.storage.db import create_engine
from chatter.storage.migrate import Upgrade, describe_revision, upgrade_to_head

db_app = typer.Typer(help="Database commands.", no_args_is_help=True)
console = Console()


@db_app.command("upgrade")
def upgrade() -> None:
    """Apply all database migrations and say what changed."""
    url = Settings().database_url
    shown = _shown_url(url)

    async def _run() -> Upgrade:
        engine = create_engine(url)
        try:
            return await upgrade_to_head(engine)
        finally:
            await engine.dispose()

    try:
        done = asyncio.run(_run())
    except (OSError, SQLAlchemyError) as exc:
        # An unreachable or misnamed database is an operator's mistake, not a crash.
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        console.print(
            f"Cannot upgrade {shown}: {first_line}",
            style="red",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=1) from exc
    # soft_wrap: a URL in the line must stay on one line, whatever the terminal width.
    console.print(
        upgrade_summary(shown, done), style="green", markup=False, highlight=False, soft_wrap=True
    )


def upgrade_summary(database: str, done: Upgrade) -> str:
    after = _revisions(done.after)
    if not done.changed:
        return f"{database} is already at head: {after}."
    before = _revisions(done.before)
    return f"Upgraded {database} from {before} to {after} (head)."


def _revisions(revisions: tuple[str, ...]) -> str:
    return ", ".join(describe_revision(revision) for revision in revisions) or "no revision"


def _shown_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        # Unparseable: the password cannot be located, so show nothing of the URL.
        return "the database in CHATTER_DATABASE_URL"
