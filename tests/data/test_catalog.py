"""``tradeops catalog``: datasets with description, owner, schema, versions, row counts, sources, validation status
and lineage."""

from __future__ import annotations

import pytest

from tradeops.data import store as st
from tradeops.data.catalog import build_catalog

SAMPLE_ROWS = {"AAPL": 3270, "FB": 196, "GOOG": 2148, "IBM": 3270, "MSFT": 3270}
DATASETS = [st.BARS, st.QUARANTINE, st.STATS, st.REPORTS]


@pytest.fixture(scope="module")
def catalog(sample_home, tradeops) -> dict:
    home, _ = sample_home
    result = tradeops(home, "catalog", "--json")
    assert result.exit_code == 0, result.output
    return result.json()


def _ds(catalog: dict, name: str) -> dict:
    (d,) = [d for d in catalog["datasets"] if d["name"] == name]
    return d


def test_catalog_lists_every_dataset_with_description_owner_and_schema(catalog, sample_home, lake_of):
    assert [d["name"] for d in catalog["datasets"]] == DATASETS
    assert catalog["lake"] == lake_of(sample_home[0]).root
    for d in catalog["datasets"]:
        assert d["description"] and d["owner"] == "data-platform"
        assert d["uri"].endswith("/" + d["name"])
        assert [c["name"] for c in d["schema"]] == st.SCHEMAS[d["name"]].names
        assert {"name", "type", "nullable"} == set(d["schema"][0])
        assert "lineage" in d and isinstance(d["lineage"], list)
    bars_schema = {c["name"]: c["type"] for c in _ds(catalog, st.BARS)["schema"]}
    assert bars_schema["date"] == "date32[day]" and bars_schema["adj_close"] == "double"


def test_catalog_bars_versions_rows_sources_and_status(catalog, sample_home):
    _, report = sample_home
    bars = _ds(catalog, st.BARS)
    assert bars["exists"] is True and bars["current_version"] == 0
    (v0,) = bars["versions"]
    assert v0["version"] == 0 and v0["source"] == "sample" and v0["report_id"] == report["report_id"]
    assert v0["operation"] == "ingest" and v0["timestamp"]
    assert bars["rows"] == sum(SAMPLE_ROWS.values()) and bars["rows_per_ticker"] == SAMPLE_ROWS
    assert bars["sources"] == {t: ["sample"] for t in SAMPLE_ROWS}
    status = bars["validation_status"]
    assert set(status) == set(SAMPLE_ROWS)
    assert {t: s["status"] for t, s in status.items()} == {
        "AAPL": "accepted_with_warnings",
        "FB": "accepted_with_warnings",
        "GOOG": "accepted",
        "IBM": "accepted",
        "MSFT": "accepted",
    }
    assert all(s["report_id"] == report["report_id"] and s["errors"] == 0 and s["checked_at"] for s in status.values())
    assert status["FB"]["warnings"] >= 1
    assert bars["lineage"] == []


def test_catalog_other_datasets(catalog):
    q = _ds(catalog, st.QUARANTINE)
    assert q["exists"] is False and q["current_version"] is None and q["rows"] == 0 and q["versions"] == []
    stats = _ds(catalog, st.STATS)
    assert stats["exists"] and stats["rows_per_ticker"] == {t: 1 for t in SAMPLE_ROWS}
    reports = _ds(catalog, st.REPORTS)
    assert reports["rows_per_ticker"] == {t: 1 for t in SAMPLE_ROWS}
    assert reports["sources"] == {t: ["sample"] for t in SAMPLE_ROWS}


def test_catalog_shows_quarantine_and_latest_status_after_a_rejection(
    sample_home, copy_home, lake_of, tradeops, tmp_path, write_bars, ibm_300
):
    home = copy_home(sample_home[0], tmp_path / "home")
    bad = ibm_300.copy()
    bad.loc[10, "Close"] = "oops"
    assert (
        tradeops(home, "ingest", "--source", "csv", "--path", write_bars(bad, tmp_path / "in", "IBM").parent).exit_code
        == 1
    )
    cat = build_catalog(lake_of(home))
    bars = _ds(cat, st.BARS)
    assert bars["current_version"] == 0 and bars["validation_status"]["IBM"]["status"] == "quarantined"
    assert bars["validation_status"]["MSFT"]["status"] == "accepted"
    q = _ds(cat, st.QUARANTINE)
    assert q["exists"] and q["rows_per_ticker"] == {"IBM": 300} and q["sources"] == {"IBM": ["csv"]}
    assert _ds(cat, st.REPORTS)["sources"]["IBM"] == ["csv", "sample"]


def test_recorded_lineage_shows_under_the_bars_dataset(sample_home, copy_home, lake_of, tradeops, tmp_path):
    home = copy_home(sample_home[0], tmp_path / "home")
    lake = lake_of(home)
    lake.record_lineage(st.BARS, 0, "model", "cnn-ta", "3")
    lake.record_lineage(st.STATS, 0, "feature_set", "thesis", "abc123")
    result = tradeops(home, "catalog", "--json")
    assert result.exit_code == 0, result.output
    cat = result.json()
    (item,) = _ds(cat, st.BARS)["lineage"]
    assert item["dataset_version"] == 0 and item["consumer_kind"] == "model"
    assert item["consumer"] == "cnn-ta" and item["consumer_version"] == "3" and item["recorded_at"]
    assert [i["consumer"] for i in _ds(cat, st.STATS)["lineage"]] == ["thesis"]
    assert _ds(cat, st.QUARANTINE)["lineage"] == []
    human = tradeops(home, "catalog")
    assert human.exit_code == 0 and "cnn-ta" in human.output  # the "read by" column (may wrap)


def test_catalog_human_output(catalog, sample_home, tradeops):
    result = tradeops(sample_home[0], "catalog")
    assert result.exit_code == 0
    out = result.output
    for name in DATASETS + list(SAMPLE_ROWS) + ["accepted_with_warnings", "data-platform", "3270"]:
        assert name in out, name


def test_catalog_of_an_empty_home(tmp_path, tradeops):
    result = tradeops(tmp_path / "home", "catalog", "--json")
    assert result.exit_code == 0, result.output
    cat = result.json()
    assert [d["name"] for d in cat["datasets"]] == DATASETS
    assert all(not d["exists"] and d["rows"] == 0 and d["versions"] == [] for d in cat["datasets"])
    assert cat["datasets"][0]["validation_status"] == {}
