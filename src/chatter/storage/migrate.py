"""Apply and check Alembic migrations from async code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


@dataclass(frozen=True)
class Upgrade:
    """What `upgrade_to_head` did: the database's revisions before and after (empty: none)."""

    before: tuple[str, ...]
    after: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _current_heads(connection: Connection) -> tuple[str, ...]:
    return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


async def upgrade_to_head(engine: AsyncEngine) -> Upgrade:
    def _upgrade(connection: Connection) -> Upgrade:
        before = _current_heads(connection)
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        return Upgrade(before, _current_heads(connection))

    async with engine.begin() as connection:
        return await connection.run_sync(_upgrade)


def describe_revision(revision: str) -> str:
    """ "0001 (initial schema)": the id with its message, for people reading CLI output."""
    script = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    return f"{revision} ({script.doc})" if script is not None and script.doc else revision


async def pending_migrations(engine: AsyncEngine) -> list[str]:
    """Revisions in the code that the database has not applied (empty when up to date)."""
    script = ScriptDirectory.from_config(alembic_config())

    def _current(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    async with engine.connect() as connection:
        current = await connection.run_sync(_current)
    if current == set(script.get_heads()):
        return []
    applied: set[str] = set()
    for head in current:
        applied.update(rev.revision for rev in script.iterate_revisions(head, "base"))
    return [rev.revision for rev in script.walk_revisions() if rev.revision not in applied]
