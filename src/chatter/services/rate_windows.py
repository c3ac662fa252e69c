"""Counting windows for rate limits, on the `limits` library: in Redis when configured (so
every worker counts in the same windows), else in this process's memory.

Fixed windows only: one counter per key, whatever is counted (a window of 200,000 tokens is
one integer, where a moving window would keep an entry per token). The price is a burst of
up to twice the limit across a window boundary."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.asyncio import Redis

from chatter.observability.logging import get_logger

log = get_logger("chatter.rate_limits")


def build_storage(redis_url: str | None, redis: Redis | None, key_prefix: str) -> Storage:
    """The app's Redis connection pool when there is one (limits' own `redis` extra would
    pin an older client: the redis-py implementation uses the one installed)."""
    if redis_url is None or redis is None:
        return MemoryStorage()
    return RedisStorage(
        f"async+{redis_url}",
        implementation="redispy",
        key_prefix=key_prefix,
        wrap_exceptions=True,
        # Typed as scalars only, but use_basic() takes a pool (and documents it).
        connection_pool=redis.connection_pool,  # type: ignore[arg-type]
    )


def window(amount: int, seconds: int) -> RateLimitItem:
    return RateLimitItemPerSecond(amount, seconds)


@dataclass(frozen=True)
class Quota:
    """One window's state, as the `RateLimit-*` headers tell it."""

    limit: int
    remaining: int
    reset_after: int  # seconds until the window ends

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
        }


class RateWindows:
    def __init__(self, storage: Storage) -> None:
        self._limiter = FixedWindowRateLimiter(storage)

    async def hit(self, item: RateLimitItem, *key: str, cost: int = 1) -> tuple[bool, Quota]:
        """Count `cost` in the window (always: what was spent is spent); allowed while the
        window holds at most its amount."""
        allowed = await self._limiter.hit(item, *key, cost=cost)
        return allowed, await self.quota(item, *key)

    async def add(self, item: RateLimitItem, *key: str, cost: int) -> None:
        await self._limiter.hit(item, *key, cost=cost)

    async def spent(self, item: RateLimitItem, *key: str) -> bool:
        """The window holds its amount already (one more would exceed it)."""
        return not await self._limiter.test(item, *key)

    async def quota(self, item: RateLimitItem, *key: str) -> Quota:
        stats = await self._limiter.get_window_stats(item, *key)
        reset_after = max(1, math.ceil(stats.reset_time - time.time()))
        return Quota(item.amount, max(0, stats.remaining), min(reset_after, item.get_expiry()))

    async def clear(self, item: RateLimitItem, *key: str) -> None:
        await self._limiter.clear(item, *key)
