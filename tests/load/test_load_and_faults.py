"""Load and fault test: thousands of mixed turns (plain, streamed, tool, clients leaving) at
a bounded concurrency against the real server over TCP, with the model server failing one
call in five (HTTP 500, a timeout, a cut stream). Afterwards every turn ended as its faults
say, and the accounting invariants hold over the whole database.

Size: `--load-turns` (default 2000) and `--load-concurrency` (default 32).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fault_injection import FaultRates, faulty_responder
from load_checks import assert_load_outcome, wait_until_settled
from load_driver import LoadPlan, register_users, run_load, summary
from sqlalchemy.ext.asyncio import AsyncEngine

from conftest import live_server, openai_settings
from fakes.openai_server import FakeOpenAIServer

SEED = 11
RATES = FaultRates(http_500=0.10, timeout=0.05, cut=0.05)
# max_retries=0: a failed call fails its turn, so the rates above are the calls' fault rates.
# Room for a slow answer on a busy 2-core CI machine (the fake model shares the test
# process with 32 clients); injected timeouts outlive it 3x.
LLM_TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def faulty_model() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        server.set_responder(
            faulty_responder(SEED, RATES, timeout_delay_s=LLM_TIMEOUT_S * 3, chunk_delay_s=0.0)
        )
        yield server


async def test_turns_under_load_and_faults_keep_every_invariant(
    database_url: str,
    faulty_model: FakeOpenAIServer,
    engine: AsyncEngine,
    pytestconfig: pytest.Config,
) -> None:
    settings = openai_settings(
        database_url,
        faulty_model,
        llm={"timeout_s": LLM_TIMEOUT_S, "max_retries": 0, "sse_ping_s": 1.0},
        events={"relay_grace_s": 1.0, "relay_interval_s": 0.5},
        log_level="WARNING",
    )
    plan = LoadPlan(
        turns=pytestconfig.getoption("load_turns"),
        concurrency=pytestconfig.getoption("load_concurrency"),
        seed=SEED,
    )
    async with live_server(settings) as url:
        target = await register_users(url, count=8, conversations_each=4)
        started = time.monotonic()
        results = await run_load(target, plan)
        elapsed = time.monotonic() - started
        print(summary(results, elapsed))
        assert len(results) == plan.turns
        await wait_until_settled(engine)
    by_status = await assert_load_outcome(engine, results, SEED, RATES)
    print(dict(by_status))
    assert set(by_status) == {"completed", "failed", "cancelled"}
