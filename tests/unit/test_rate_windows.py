"""Fixed windows on the `limits` storage: counting, costs, quotas, and a Redis outage seen as
a StorageError (which the services let through)."""

from __future__ import annotations

import pytest
from limits.errors import StorageError
from redis.asyncio import Redis

from chatter.services.login_throttle import let_through
from chatter.services.rate_windows import RateWindows, build_storage, window


async def test_a_window_counts_hits_and_costs() -> None:
    windows = RateWindows(build_storage(None, None, "unused"))
    item = window(3, 60)
    for remaining in (2, 1, 0):
        allowed, quota = await windows.hit(item, "requests", "user", "u1")
        assert allowed
        assert (quota.limit, quota.remaining) == (3, remaining)
        assert 1 <= quota.reset_after <= 60
    allowed, quota = await windows.hit(item, "requests", "user", "u1")
    assert not allowed
    assert quota.headers()["RateLimit-Remaining"] == "0"
    # Another subject has its own window.
    assert (await windows.hit(item, "requests", "user", "u2"))[0]

    tokens = window(1000, 60)
    assert not await windows.spent(tokens, "tokens", "user", "u1")
    await windows.add(tokens, "tokens", "user", "u1", cost=999)
    assert not await windows.spent(tokens, "tokens", "user", "u1")
    await windows.add(tokens, "tokens", "user", "u1", cost=5000)  # counted in full
    assert await windows.spent(tokens, "tokens", "user", "u1")
    await windows.clear(tokens, "tokens", "user", "u1")
    assert not await windows.spent(tokens, "tokens", "user", "u1")


async def test_an_unreachable_redis_is_a_storage_error_let_through() -> None:
    url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    redis = Redis.from_url(url, socket_connect_timeout=1)
    try:
        windows = RateWindows(build_storage(url, redis, "chatter:test"))
        with pytest.raises(StorageError):
            await windows.hit(window(3, 60), "requests", "user", "u1")
        assert await let_through(windows.spent(window(3, 60), "login", "ip", "x")) is None
    finally:
        await redis.aclose()
