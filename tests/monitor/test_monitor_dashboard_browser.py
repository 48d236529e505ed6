"""The monitoring page in headless Chromium: no console or page error, every plotly figure drawn, no network."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import browser_missing, open_in_chromium
from test_monitor_report import MODELS, synthetic_inputs

from tradeops.report.monitoring import render_monitoring_report


def test_dashboard_renders_in_chromium(tmp_path: Path) -> None:
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    page_file = tmp_path / "monitoring.html"
    page_file.write_text(render_monitoring_report(**synthetic_inputs()), encoding="utf-8")
    seen: dict[str, object] = {}

    def inspect(page) -> None:
        plots = page.locator(".js-plotly-plot")
        seen["plots"] = plots.count()
        seen["drawn"] = [plots.nth(i).locator(".main-svg").count() > 0 for i in range(plots.count())]
        seen["banner"] = page.locator("#halted").inner_text()
        seen["bars"] = page.locator("#fig-top-features-0 .bars .point").count()

    shot = tmp_path / "dashboard.png"
    errors = open_in_chromium(page_file, shot, inspect=inspect)
    assert errors == []
    assert seen["plots"] == 5 * len(MODELS)
    assert seen["drawn"] == [True] * (5 * len(MODELS))
    assert str(seen["banner"]).startswith("HALTED: rule drawdown_halt")
    assert seen["bars"] == 5  # the five top drifted features of the first model
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_chromium_is_named_in_the_skip_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    import browser

    pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    monkeypatch.setattr(browser, "chromium_path", lambda: None)
    assert browser.browser_missing() == "chromium not installed (apt-get install chromium)"
