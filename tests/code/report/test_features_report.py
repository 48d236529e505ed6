"""Feature exploration report: sections, numbers from the data, self-contained HTML, atomic write."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from tradeops.features.definitions import FeatureDef, indicator_definitions
from tradeops.features.selection import select_features
from tradeops.features.store import class_balance
from tradeops.report import features as report
from tradeops.report.features import (
    SECTIONS,
    duplicate_notes,
    features_report,
    representative_features,
    write_features_report,
)

TICKERS = ("AAA", "BBB")
N_ROWS = 200
H = 5  # label horizon of the synthetic labels (trading days)


def registry() -> list[FeatureDef]:
    """3 indicators x 2 windows, registry (indicator-major) order."""
    return [
        FeatureDef(f"{ind.lower()}_{w}", ind, w, f"{ind}(close, {w}) <= x & y", "fraction", f"synthetic {ind}")
        for ind in ("RSI", "SMA", "ROC")
        for w in (6, 10)
    ]


def frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features with NaN warm-up (window rows) per ticker; labels with the last H rows missing; sma_* tracks the
    label so a selection has something to find. Dates span 2020 and 2021."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-06-01", periods=N_ROWS)
    feats, labs = [], []
    for t in TICKERS:
        cls = rng.integers(0, 3, N_ROWS)
        label = np.array(["BUY", "SELL", "HOLD"], dtype=object)[cls]
        label[-H:] = None
        known = np.full(N_ROWS, np.datetime64("NaT"), dtype="datetime64[ns]")
        known[:-H] = dates[H:].to_numpy()
        f = pd.DataFrame({"ticker": t, "date": dates})
        for d in registry():
            v = rng.normal(size=N_ROWS) + (cls * 1.5 if d.indicator == "SMA" else 0.0)
            v[: d.window] = np.nan
            f[d.name] = v.astype(np.float32)
        feats.append(f)
        labs.append(
            pd.DataFrame(
                {"ticker": t, "date": dates, "label": pd.array(label, dtype="string"), "label_known_at": known}
            )
        )
    return pd.concat(feats, ignore_index=True), pd.concat(labs, ignore_index=True)


def render(**kw: object) -> str:
    features, labels = frames()
    args: dict = {"preset": "cnn-ta", "feature_set_version": "0123456789abcdef", "registry": registry(), **kw}
    return features_report(features, labels, **args)


def table_rows(page: str) -> list[list[str]]:
    """Every table row of the page as its cells' text."""
    rows = re.findall(r"<tr>(.*?)</tr>", page, flags=re.S)
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, flags=re.S) for r in rows]


@pytest.fixture(scope="module")
def page() -> str:
    return render()


def test_every_section_heading_is_present_in_order(page: str) -> None:
    positions = [page.index(f'<h2 id="{anchor}">{heading}</h2>') for anchor, heading in SECTIONS]
    assert positions == sorted(positions)


def test_page_is_self_contained_with_plotly_js_inlined_once(page: str) -> None:
    assert page.count(get_plotlyjs()[:400]) == 1
    figures = ("fig-class-balance", "fig-distributions", "fig-correlations")  # all drawn by the one copy
    assert page.count("Plotly.newPlot(") == len(figures) and all(f'id="{f}"' in page for f in figures)
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, flags=re.I)
    assert not re.search(r"<link[^>]*https?://", page, flags=re.I)


def test_summary_states_counts_and_time_conventions(page: str) -> None:
    features, labels = frames()
    rows = {r[0]: r[1] for r in table_rows(page) if len(r) == 2}
    assert rows["preset"] == "cnn-ta" and rows["feature-set version"] == "0123456789abcdef"
    assert rows["features"] == "6" and rows["indicators"] == "3"
    assert rows["rows (ticker x date)"] == str(len(features))
    assert rows["rows with a label"] == str(int(labels["label"].notna().sum()))
    assert rows["rows with every feature finite (past warm-up)"] == str(len(TICKERS) * (N_ROWS - 10))
    assert "uses bars dated &lt;= t only" in rows["feature time convention"]
    assert f"h = {H} " in rows["label time convention"]


def test_class_balance_table_has_the_counts_of_the_data(page: str) -> None:
    _, labels = frames()
    counts = class_balance(labels.loc[labels["label"].notna()])
    assert len(counts) == 4  # 2 tickers x 2 years
    rows = table_rows(page)
    for (ticker, year), r in counts.iterrows():
        expected = [ticker, str(year), str(r["BUY"]), str(r["SELL"]), str(r["HOLD"]), str(r["n"])]
        assert any(row[:6] == expected for row in rows), expected
    assert 'id="fig-class-balance"' in page


def test_feature_names_are_documented_and_middle_windows_shown(page: str) -> None:
    dictionary = {r[0]: r for r in table_rows(page) if len(r) == 6 and r[0] in {d.name for d in registry()}}
    assert set(dictionary) == {d.name for d in registry()}
    assert dictionary["rsi_10"][5] == "yes" and dictionary["rsi_6"][5] == "no"
    assert "RSI(close, 6) &lt;= x &amp; y" in page  # formulas are escaped
    assert representative_features(registry()) == ["rsi_10", "sma_10", "roc_10"]
    assert representative_features(registry(), max_features_shown=2) == ["rsi_10", "sma_10"]


def test_dictionary_notes_each_feature_that_duplicates_another() -> None:
    defs = indicator_definitions(["RSI", "SMA", "CMO"], [6, 10])
    features, labels = frames()
    features = features.rename(columns={"roc_6": "cmo_6", "roc_10": "cmo_10"})
    page = features_report(features, labels, preset="cnn-ta", feature_set_version="v", registry=defs)
    dictionary = {r[0]: r for r in table_rows(page) if len(r) == 7 and r[0] in {d.name for d in defs}}
    assert dictionary["cmo_6"][6] == "same values as rsi_6 (CMO/100 = RSI/50 - 1 under Wilder smoothing)"
    assert dictionary["cmo_10"][6] == "same values as rsi_10 (CMO/100 = RSI/50 - 1 under Wilder smoothing)"
    assert dictionary["rsi_6"][6] == "" and dictionary["sma_10"][6] == ""
    assert "2 column(s) of this set carry the same values as another column" in page
    assert "CMO (2 window(s)) equals RSI at the same window" in page
    # without its twin in the set a CMO column duplicates nothing: no note
    assert duplicate_notes(indicator_definitions(["SMA", "CMO"], [6])) == {}


def test_dictionary_without_duplicates_has_no_note_column(page: str) -> None:
    assert "<th>note</th>" not in page and "Duplicated features" not in page


def test_without_selection_says_none_was_fitted_and_shows_descriptive_means(page: str) -> None:
    assert "No feature selection was fitted" in page
    assert "Descriptive, whole sample, not used for fitting" in page
    means = {r[0]: r for r in table_rows(page) if len(r) == 5 and r[0] in {"rsi_10", "sma_10", "roc_10"}}
    assert set(means) == {"rsi_10", "sma_10", "roc_10"}
    # sma_* is shifted by 1.5 per class id (BUY=0, SELL=1, HOLD=2): the class means show it
    buy, sell, hold = (float(v) for v in means["sma_10"][1:4])
    assert buy < sell < hold


def test_with_selection_shows_scores_and_the_selected_names() -> None:
    features, labels = frames()
    rows = features.merge(labels, on=["ticker", "date"]).dropna()
    names = [d.name for d in registry()]
    selection = select_features(rows[names].reset_index(drop=True), rows["label"].astype(str).to_numpy(), n=2)
    assert set(selection.names) == {"sma_6", "sma_10"}
    page = render(selection=selection)
    selected_rows = [r for r in table_rows(page) if len(r) == 8 and r[0] in names]
    assert [r[0] for r in selected_rows] == list(selection.names)
    assert 'id="fig-selection"' in page
    assert "No feature selection was fitted" not in page
    dictionary = {r[0]: r for r in table_rows(page) if len(r) == 7 and r[0] in names}
    assert {n for n, r in dictionary.items() if r[6] == "yes"} == set(selection.names)


def test_text_from_the_inputs_is_escaped() -> None:
    page = render(title="<script>alert(1)</script>", preset="a&b")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<code>a&amp;b</code>" in page


def test_rendering_is_deterministic_and_sampling_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    full = render()
    assert render() == full
    assert "at most 2000 rows per ticker" in full
    monkeypatch.setattr(report, "MAX_POINTS_PER_TICKER", 50)
    small = render()
    assert "at most 50 rows per ticker" in small
    assert len(small) < len(full)


def test_inputs_that_do_not_fit_together_are_rejected() -> None:
    features, labels = frames()
    args: dict = {"preset": "cnn-ta", "feature_set_version": "v", "registry": registry()}
    with pytest.raises(ValueError, match="undocumented"):
        features_report(features.assign(extra=1.0), labels, **args)
    with pytest.raises(ValueError, match="missing"):
        features_report(features.drop(columns=["roc_6"]), labels, **args)
    with pytest.raises(ValueError, match="unknown class"):
        features_report(features, labels.assign(label="UP"), **args)
    with pytest.raises(ValueError, match="datetime64"):
        features_report(features.assign(date=features["date"].dt.strftime("%Y-%m-%d")), labels, **args)
    with pytest.raises(ValueError, match="duplicated"):
        features_report(pd.concat([features, features.iloc[:1]]), labels, **args)
    with pytest.raises(ValueError, match="max_features_shown"):
        features_report(features, labels, **args, max_features_shown=0)


def test_write_features_report_replaces_the_file_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    features, labels = frames()
    args: dict = {"preset": "cnn-ta", "feature_set_version": "0123456789abcdef", "registry": registry()}
    target = tmp_path / "reports" / "features.html"
    assert write_features_report(target, features, labels, **args) == target
    assert target.read_text(encoding="utf-8") == features_report(features, labels, **args)
    assert sorted(p.name for p in target.parent.iterdir()) == ["features.html"]

    target.write_text("old page", encoding="utf-8")

    def failing_replace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
        assert Path(src).parent == target.parent and Path(src).read_text(encoding="utf-8").startswith("<!DOCTYPE")
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_features_report(target, features, labels, **args)
    assert target.read_text(encoding="utf-8") == "old page"
    assert sorted(p.name for p in target.parent.iterdir()) == ["features.html"]
