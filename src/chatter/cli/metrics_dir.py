"""Several workers share their Prometheus values through a directory of files
(prometheus_client's multiprocess mode). `chatter serve --workers N` makes one when none is
configured, so `/metrics` adds up every worker whichever one answers the scrape."""

from __future__ import annotations

import os
from pathlib import Path

from chatter.observability.metrics import MULTIPROC_ENV

# Under the working directory, one per port: two servers never share (or wipe) one.
DEFAULT_ROOT = Path("var")


def prepare_multiprocess_dir(workers: int, port: int) -> Path | None:
    """The directory the workers will use, emptied of a previous run's values; None when
    one worker keeps its values in memory. Must run before the workers start: they read
    PROMETHEUS_MULTIPROC_DIR when prometheus_client is imported."""
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        # The operator's directory: they empty it between runs (see README).
        return Path(configured)
    if workers <= 1:
        return None
    directory = (DEFAULT_ROOT / f"prometheus-{port}").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory
