"""`make bench`: run every benchmark and print ratios against baselines from the same run."""

from __future__ import annotations

import asyncio

from bench.chat_overhead import main

if __name__ == "__main__":
    asyncio.run(main())
