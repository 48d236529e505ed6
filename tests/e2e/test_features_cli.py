"""`tradeops features build|show|export|report` end to end on a small home (IBM + FB from the sample)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def home(tmp_path_factory, tradeops):
    h = tmp_path_factory.mktemp("features-cli")
    assert tradeops(h, "ingest", "--source", "sample", "--tickers", "IBM,FB").exit_code == 0
    return h


def test_build_prints_versions_and_class_balance(home, tradeops):
    r = tradeops(home, "features", "build", "--preset", "cnn-ta")
    assert r.exit_code == 0, r.output
    assert "225 features" in r.stdout and "Class balance per ticker and year" in r.stdout
    j = tradeops(home, "features", "build", "--preset", "thesis", "--tickers", "IBM", "--json").json()
    assert j["n_features"] > 225 and j["tickers"] == ["IBM"] and j["class_balance"]


def test_show_prints_the_vector_and_writes_a_png(home, tradeops, tmp_path):
    tradeops(home, "features", "build", "--preset", "cnn-ta")
    png = tmp_path / "ibm.png"
    r = tradeops(home, "features", "show", "IBM", "--date", "2010-06-01", "--preset", "cnn-ta", "--png", png)
    assert r.exit_code == 0, r.output
    assert "RSI" in r.stdout and "2010-06-01" in r.stdout
    assert Image.open(png).size == (15 * 8, 15 * 8)
    j = tradeops(
        home, "features", "show", "IBM", "--date", "2010-06-01", "--preset", "cnn-ta", "--png", png, "--json"
    ).json()
    assert len(j["features"]) == 225 and j["date"] == "2010-06-01"


def test_show_rejects_a_non_trading_date_and_unknown_ticker(home, tradeops):
    r = tradeops(home, "features", "show", "IBM", "--date", "2010-06-05", "--preset", "cnn-ta")
    assert r.exit_code == 2 and "2010-06-05" in r.output and "2010-06-04" in r.output
    assert tradeops(home, "features", "show", "ZZZ", "--preset", "cnn-ta").exit_code == 2
    assert tradeops(home, "features", "show", "IBM", "--date", "June 1").exit_code == 2


def test_export_writes_date_features_label_and_label_known_at(home, tradeops, tmp_path):
    tradeops(home, "features", "build", "--preset", "cnn-ta")
    out = tmp_path / "ibm.parquet"
    r = tradeops(home, "features", "export", "--ticker", "IBM", "--out", out, "--preset", "cnn-ta")
    assert r.exit_code == 0, r.output
    table = pq.read_table(out)
    names = table.column_names
    assert names[0] == "date" and names[-2:] == ["label", "label_known_at"] and len(names) == 228
    assert table.num_rows == 3270
    assert table.schema.metadata[b"tradeops.preset"] == b"cnn-ta"


def test_export_before_build_is_a_usage_error(tmp_path, tradeops):
    h = tmp_path / "h"
    assert tradeops(h, "ingest", "--source", "sample", "--tickers", "FB").exit_code == 0
    r = tradeops(h, "features", "export", "--ticker", "FB", "--out", tmp_path / "x.parquet", "--preset", "cnn-ta")
    assert r.exit_code == 2 and "features build" in r.output


def test_report_writes_a_self_contained_html(home, tradeops, tmp_path):
    tradeops(home, "features", "build", "--preset", "cnn-ta")
    out = tmp_path / "r.html"
    r = tradeops(home, "features", "report", "--preset", "cnn-ta", "--out", out)
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert "Class balance" in html and "rsi_13" in html and "<script src=" not in html
