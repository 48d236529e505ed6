"""The simulation and training pages in headless Chromium: no console or page error, every plotly figure drawn, no
network, and the per-ticker menu switches the drawn ticker."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "monitor"))  # tests/monitor/browser.py

from browser import browser_missing, open_in_chromium  # noqa: E402
from test_simulation_report import FIGURES as SIMULATION_FIGURES  # noqa: E402
from test_simulation_report import TICKERS, synthetic_inputs  # noqa: E402
from test_training_report import FIGURES as TRAINING_FIGURES  # noqa: E402
from test_training_report import inputs_of, synthetic_run  # noqa: E402

from tradeops.report.simulation import render_simulation_report  # noqa: E402
from tradeops.report.training import render_training_report  # noqa: E402

_VISIBLE = "id => document.getElementById(id).data.map(t => t.visible !== false)"


def _open(page_file: Path, shot: Path, seen: dict, extra=None) -> list[str]:
    def inspect(page) -> None:
        plots = page.locator(".js-plotly-plot")
        seen["ids"] = [plots.nth(i).get_attribute("id") for i in range(plots.count())]
        seen["drawn"] = [plots.nth(i).locator(".main-svg").count() > 0 for i in range(plots.count())]
        if extra is not None:
            extra(page)

    return open_in_chromium(page_file, shot, inspect=inspect)


def test_simulation_report_renders_in_chromium(tmp_path: Path) -> None:
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    page_file = tmp_path / "simulation.html"
    page_file.write_text(render_simulation_report(**synthetic_inputs()), encoding="utf-8")
    seen: dict[str, object] = {}

    def pick_second_ticker(page) -> None:
        seen["before"] = page.evaluate(_VISIBLE, "fig-signals")
        page.locator("#fig-signals .updatemenu-header-group").click()
        page.locator("#fig-signals .updatemenu-dropdown-button").nth(1).click()
        page.wait_for_function("() => document.getElementById('fig-signals').layout.title.text === 'BBB'")
        seen["after"] = page.evaluate(_VISIBLE, "fig-signals")
        seen["markers"] = page.locator("#fig-signals .scatterlayer .trace .points path").count()

    shot = tmp_path / "simulation.png"
    errors = _open(page_file, shot, seen, pick_second_ticker)
    assert errors == []
    assert seen["ids"] == list(SIMULATION_FIGURES)
    assert seen["drawn"] == [True] * len(SIMULATION_FIGURES)
    assert seen["before"] == [True] * 3 + [False] * 3 * (len(TICKERS) - 1)
    assert seen["after"] == [False] * 3 + [True] * 3
    days = synthetic_inputs()["days"]
    second = days[days["ticker"] == TICKERS[1]]
    assert seen["markers"] == int(second["signal"].isin(["BUY", "SELL"]).sum())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_training_report_renders_in_chromium(tmp_path: Path) -> None:
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    page_file = tmp_path / "training.html"
    page_file.write_text(render_training_report(**inputs_of(synthetic_run())), encoding="utf-8")
    seen: dict[str, object] = {}

    def heatmap_cells(page) -> None:
        seen["cells"] = page.locator("#fig-confusion .heatmaplayer image, #fig-confusion .heatmaplayer rect").count()
        seen["card"] = page.locator("#model-card ~ .card h3").inner_text()

    shot = tmp_path / "training.png"
    errors = _open(page_file, shot, seen, heatmap_cells)
    assert errors == []
    assert seen["ids"] == list(TRAINING_FIGURES)
    assert seen["drawn"] == [True] * len(TRAINING_FIGURES)
    assert seen["cells"] >= 1
    assert seen["card"] == "Model card: cnn_ta"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
