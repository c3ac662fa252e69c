"""SQLite inline on the event loop's thread: a writer that finds another connection holding
the write lock waits for it in asyncio - the loop keeps running meanwhile - and then writes;
statements, streams of rows and errors behave as with aiosqlite."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from chatter.storage.db import create_engine

HELD_S = 0.4


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}"


async def test_a_writer_waits_for_another_connections_lock_without_blocking_the_loop(
    url: str,
) -> None:
    holder = create_engine(url, sqlite_driver="aiosqlite")
    inline = create_engine(url)
    try:
        async with inline.begin() as connection:
            await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        async with holder.begin() as held:  # BEGIN IMMEDIATE: the write lock
            await held.execute(text("INSERT INTO t (v) VALUES ('first')"))

            async def write() -> None:
                async with inline.begin() as connection:
                    await connection.execute(text("INSERT INTO t (v) VALUES ('second')"))

            writer = asyncio.create_task(write())
            await asyncio.sleep(HELD_S)
            assert not writer.done()  # still waiting for the lock...
            assert ticks >= HELD_S / 0.01 / 2  # ...while the loop ran on
        await asyncio.wait_for(writer, 5)
        ticker.cancel()
        async with inline.connect() as connection:
            rows = (await connection.execute(text("SELECT v FROM t ORDER BY id"))).all()
        assert [row.v for row in rows] == ["first", "second"]
    finally:
        await holder.dispose()
        await inline.dispose()


async def test_statements_results_and_errors_behave_as_usual(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
            await connection.execute(
                text("INSERT INTO t (id, v) VALUES (:id, :v)"),
                [{"id": n, "v": f"row {n}"} for n in range(3)],
            )
        with pytest.raises(IntegrityError):
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO t (id, v) VALUES (0, 'again')"))
        async with engine.connect() as connection:  # the failed transaction left nothing
            assert await connection.scalar(text("SELECT count(*) FROM t")) == 3
            result = await connection.execute(text("SELECT v FROM t ORDER BY id"))
            assert result.scalars().all() == ["row 0", "row 1", "row 2"]
    finally:
        await engine.dispose()
