"""Fixed-bucket latency histograms: counts that add up in SQL (`x = x + excluded.x`) and
still give percentiles back, to within a bucket."""

from __future__ import annotations

from collections.abc import Sequence

# Upper bounds in milliseconds; a last, open bucket takes everything slower.
LATENCY_BOUNDS_MS: tuple[int, ...] = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
BUCKETS = len(LATENCY_BOUNDS_MS) + 1


def bucket_of(value_ms: int) -> int:
    for index, bound in enumerate(LATENCY_BOUNDS_MS):
        if value_ms <= bound:
            return index
    return BUCKETS - 1


def percentile(counts: Sequence[int], quantile: float) -> float | None:
    """The `quantile` (0..1) of the values counted, interpolated linearly inside its
    bucket; None when nothing was counted. The open last bucket answers its lower bound."""
    total = sum(counts)
    if total == 0:
        return None
    rank = quantile * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = LATENCY_BOUNDS_MS[index - 1] if index else 0
            if index >= len(LATENCY_BOUNDS_MS):
                return float(lower)
            upper = LATENCY_BOUNDS_MS[index]
            return round(lower + (upper - lower) * max(rank - seen, 0) / count, 1)
        seen += count
    return float(LATENCY_BOUNDS_MS[-1])
