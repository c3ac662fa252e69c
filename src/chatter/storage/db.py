"""Engine and session factory.

SQLite allows one writer at a time. Chatter's writers queue for it inside the process, not
in SQLite's busy handler (which sleeps with growing back-off, giving tails of seconds, and
where a connection abandoned mid-transaction by a cancelled task would hold the lock for
every other connection): on SQLite the engine has exactly one connection, every transaction
checks it out in turn from the pool's FIFO queue, and the pool rolls it back when it is
returned - which SQLAlchemy's session close does even when the closing task is cancelled.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from chatter.storage import sqlite_inline

# Only another process (a second worker, the CLI) holds SQLite's write lock while we wait.
SQLITE_BUSY_TIMEOUT_MS = 30_000
AIOSQLITE = "sqlite+aiosqlite"
# "inline" runs SQLite on the event loop's thread (storage/sqlite_inline.py); "aiosqlite"
# on a thread per connection, for several processes that share one database file.
SQLiteDriver = Literal["inline", "aiosqlite"]
# How long a transaction may wait for a pooled connection before the request is refused
# with 503 database_busy.
POOL_TIMEOUT_S = 30.0


def create_engine(
    database_url: str,
    *,
    echo: bool = False,
    pool_timeout_s: float = POOL_TIMEOUT_S,
    sqlite_driver: SQLiteDriver = "inline",
) -> AsyncEngine:
    # hide_parameters: a failing statement's log line must not carry bound values
    # (password hashes, message text, API key hashes).
    if database_url.startswith("sqlite"):
        inline = sqlite_driver == "inline" and database_url.startswith(AIOSQLITE)
        if inline:
            sqlite_inline.register()
            database_url = f"sqlite+{sqlite_inline.DRIVER}" + database_url[len(AIOSQLITE) :]
        engine = create_async_engine(
            database_url,
            echo=echo,
            hide_parameters=True,
            # Inline, the busy handler would block the event loop: it waits in asyncio.
            connect_args={"timeout": 0 if inline else SQLITE_BUSY_TIMEOUT_MS / 1000}
            | (
                {"check_same_thread": False, "factory": sqlite_inline.InlineConnection}
                if inline
                else {}
            ),
            pool_size=1,
            max_overflow=0,
            pool_timeout=pool_timeout_s,
        )
        _tune_sqlite(engine)
        return engine
    return create_async_engine(
        database_url,
        echo=echo,
        hide_parameters=True,
        pool_pre_ping=True,
        pool_timeout=pool_timeout_s,
        pool_size=10,
        max_overflow=20,
    )


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if sqlite_inline.is_inline(dbapi_connection):
            sqlite_inline.when_unlocked(
                lambda: cursor.execute("PRAGMA journal_mode=WAL"), SQLITE_BUSY_TIMEOUT_MS / 1000
            )
        else:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front, so writers of other processes wait on
        # busy_timeout instead of one failing with "database is locked" when it upgrades.
        driver_connection = connection.connection.driver_connection
        if sqlite_inline.is_inline(driver_connection):
            sqlite_inline.when_unlocked(
                lambda: driver_connection.execute("BEGIN IMMEDIATE"),
                SQLITE_BUSY_TIMEOUT_MS / 1000,
            )
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
