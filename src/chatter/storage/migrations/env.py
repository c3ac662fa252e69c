"""Alembic environment. Chatter runs it on a connection it passes in (`migrate.py`);
the plain `alembic` command works too, using CHATTER_DATABASE_URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from chatter.settings import Settings
from chatter.storage import (
    budget_tables,  # noqa: F401 - its tables join the metadata
    rollup_tables,  # noqa: F401 - its tables join the metadata
    tool_servers,  # noqa: F401 - its table joins the metadata
)
from chatter.storage.db import create_engine
from chatter.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(
        _run_with_own_engine(config.get_main_option("sqlalchemy.url") or Settings().database_url)
    )
