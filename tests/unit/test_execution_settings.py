"""CHATTER_EXECUTIONS__*: a lease no longer than the heartbeat is refused at startup."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chatter.settings import ExecutionSettings, Settings


def test_defaults() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.executions == ExecutionSettings(
        heartbeat_s=5.0, lease_s=30.0, recovery_interval_s=10.0
    )


def test_the_environment_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATTER_EXECUTIONS__HEARTBEAT_S", "0.3")
    monkeypatch.setenv("CHATTER_EXECUTIONS__LEASE_S", "1.5")
    monkeypatch.setenv("CHATTER_EXECUTIONS__RECOVERY_INTERVAL_S", "0.3")
    executions = Settings(_env_file=None).executions  # type: ignore[call-arg]
    assert (executions.heartbeat_s, executions.lease_s, executions.recovery_interval_s) == (
        0.3,
        1.5,
        0.3,
    )


@pytest.mark.parametrize("lease_s", [5.0, 1.0])
def test_a_lease_must_outlast_the_heartbeat(lease_s: float) -> None:
    with pytest.raises(ValidationError, match=r"CHATTER_EXECUTIONS__LEASE_S .* must be greater"):
        ExecutionSettings(heartbeat_s=5.0, lease_s=lease_s)
