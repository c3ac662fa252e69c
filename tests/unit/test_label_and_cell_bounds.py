"""Text that users choose reaches Prometheus labels and CSV cells: both are bounded."""

from __future__ import annotations

from chatter.api.routers.analytics import _cell
from chatter.observability.metrics import OTHER, _BoundedLabels


def test_made_up_model_names_stop_adding_series_past_the_bound() -> None:
    labels = _BoundedLabels(3)
    assert [labels.pair("openai", f"m{i}") for i in range(3)] == [
        ("openai", "m0"),
        ("openai", "m1"),
        ("openai", "m2"),
    ]
    assert labels.pair("openai", "m3") == ("openai", OTHER)
    assert labels.pair("openai", "m1") == ("openai", "m1")  # known names keep their series
    assert labels.one("calculator") == OTHER


def test_csv_cells_a_spreadsheet_would_run_are_written_as_text() -> None:
    assert _cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert _cell("@SUM(A1)") == "'@SUM(A1)"
    assert _cell("gpt-4o-mini") == "gpt-4o-mini"
    assert _cell(12) == 12
