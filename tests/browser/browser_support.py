"""Finding a headless Chromium for the browser tests, and skipping LOUDLY when there is none.

Playwright's own browser download cannot work on these machines: the tests drive Debian's
`chromium` package (.ci/run installs it). CHATTER_CHROMIUM names another binary;
CHATTER_REQUIRE_BROWSER=1 (set by .ci/run) turns a missing browser into a failure."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"


class BrowserTestSkipped(UserWarning):
    """A browser test did not run: shown in pytest's warnings summary, not only in -ra."""


def find_chromium() -> str | None:
    named = os.environ.get("CHATTER_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def skip_loudly(reason: str) -> NoReturn:
    message = f"BROWSER TEST NOT RUN: {reason}"
    if os.environ.get("CHATTER_REQUIRE_BROWSER"):
        pytest.fail(f"{message} (CHATTER_REQUIRE_BROWSER is set)")
    print(f"\n{'!' * 78}\n{message}\n{'!' * 78}", file=sys.stderr)
    warnings.warn(message, BrowserTestSkipped, stacklevel=2)
    pytest.skip(message)


def chromium_or_skip() -> str:
    """The Chromium binary to drive, or a loud skip that says what to install."""
    if importlib.util.find_spec("playwright") is None:
        skip_loudly("Playwright for Python is missing: `make install` installs the dev extras.")
    path = find_chromium()
    if path is None:
        skip_loudly(
            "no Chromium found: install Debian's package (`apt-get install -y chromium`) "
            "or set CHATTER_CHROMIUM to a Chromium binary."
        )
    return path
