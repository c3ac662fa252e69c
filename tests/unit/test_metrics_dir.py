"""`chatter serve --workers N` prepares prometheus_client's multiprocess directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatter.cli.metrics_dir import prepare_multiprocess_dir
from chatter.observability.metrics import MULTIPROC_ENV


def test_several_workers_get_a_fresh_directory_per_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # setenv first: monkeypatch then restores the variable's absence after the test.
    monkeypatch.setenv(MULTIPROC_ENV, "")
    monkeypatch.delenv(MULTIPROC_ENV)
    stale = tmp_path / "var" / "prometheus-8123" / "counter_1.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old run")

    directory = prepare_multiprocess_dir(2, 8123)

    assert directory == stale.parent
    assert not stale.exists()
    assert os.environ[MULTIPROC_ENV] == str(directory)


def test_the_variable_does_not_leak_out_of_the_test_above() -> None:
    assert MULTIPROC_ENV not in os.environ


def test_one_worker_needs_none_and_a_configured_one_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # setenv first: monkeypatch then restores the variable's absence after the test.
    monkeypatch.setenv(MULTIPROC_ENV, "")
    monkeypatch.delenv(MULTIPROC_ENV)
    assert prepare_multiprocess_dir(1, 8000) is None
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path / "mine"))
    assert prepare_multiprocess_dir(4, 8000) == tmp_path / "mine"
