"""The real-shaped corpus (``tests/corpus.py``) ingested in batches, as a user updating Alpha Vantage downloads would.

32 synthetic instruments x 10 years of XNYS sessions (~80k rows) with dividends, forward and reverse splits, crashes
and rallies opening on split ratios, and isolated zero-volume days. The home already holds the sample's IBM. Batches:
the first half of history (files as downloaded then), the full files as downloaded later (every stored row
overlapped and re-based), then two increments of the newest rows with a 10-session overlap. Every batch must be
accepted, and every planted event reported as what it is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from corpus import build_corpus

pytestmark = pytest.mark.slow  # trains models or starts processes; `pytest -m 'not slow'` skips

N_INSTRUMENTS, YEARS = 32, 10


@pytest.fixture(scope="module")
def corpus():
    return build_corpus(N_INSTRUMENTS, YEARS, seed=1999)


def _batches(corpus, root):
    """(folder, as_of) per batch: half the history, the full files later, then two overlapping increments."""
    dates = corpus.frames["SYN00"]["date"]
    cuts = [dates.iloc[int(len(dates) * f)] for f in (0.5, 0.7, 0.85)] + [dates.iloc[-1]]
    out = []
    for k, cut in enumerate(cuts):
        start = None if k < 2 else dates.iloc[int(dates.searchsorted(cuts[k - 1])) - 10]
        out.append((corpus.write(root / f"batch{k}", end=cut, start=start), cut))
    return out


def test_corpus_ingested_in_batches_reports_every_planted_event(corpus, tmp_path, tradeops, lake_of):
    home = tmp_path / "home"
    assert tradeops(home, "ingest", "--source", "sample", "--tickers", "IBM").exit_code == 0  # a non-empty home
    splits, jumps, zero, readjusted = set(), {}, set(), 0
    for folder, cut in _batches(corpus, tmp_path):
        r = tradeops(home, "ingest", "--source", "csv", "--path", folder, "--json")
        assert r.exit_code == 0, r.output[-3000:]
        report = r.json()
        assert report["summary"]["quarantined"] == 0
        for t in report["tickers"]:
            assert t["errors"] == [], (cut, t["ticker"], t["errors"])
            for e in t["events"]:
                if e["type"] == "split":
                    splits.add((t["ticker"], e["date"], e["ratio"], e["ratio_text"]))
                readjusted += e["type"] == "readjusted"
            for w in t["warnings"]:
                if w["rule"] == "price_jump":
                    jumps[(t["ticker"], w["date"])] = w["message"]
                elif w["rule"] == "zero_volume":
                    zero.add((t["ticker"], w["date"]))
                else:
                    assert w["rule"] in {"drift", "adjustment_unverified"}, w

    planted = corpus.events
    assert splits == {(e["ticker"], e["date"], e["ratio"], e["ratio_text"]) for e in planted if e["kind"] == "split"}
    want_jumps = {(e["ticker"], e["date"]): e for e in planted if e["kind"] == "price_jump"}
    assert set(jumps) == set(want_jumps)
    for key, message in jumps.items():
        assert f"{want_jumps[key]['pct'] * 100:+.1f}%" in message and "accepted as a real move" in message
    assert zero == {(e["ticker"], e["date"]) for e in planted if e["kind"] == "zero_volume"}
    assert readjusted > 0  # later dividends and splits re-based the stored history

    # The stored history equals the newest download: every row, adjusted as the source adjusts it today.
    bars = lake_of(home).read_bars([*corpus.frames])
    assert bars.groupby("ticker").size().to_dict() == {t: len(f) for t, f in corpus.frames.items()}
    from corpus import adjusted_close

    for t, f in corpus.frames.items():
        stored = bars.loc[bars["ticker"] == t]
        assert np.array_equal(stored["close"].to_numpy(), f["close"].to_numpy())
        np.testing.assert_allclose(stored["adj_close"].to_numpy(), adjusted_close(f), rtol=2e-3)


def test_corpus_kinds_of_events(corpus):
    """The manifest lists every planted event, and the corpus has each kind the ingestion test relies on."""
    kinds = pd.Series([e["kind"] for e in corpus.events]).value_counts().to_dict()
    assert kinds["split"] >= 15 and kinds["price_jump"] >= 30 and kinds["zero_volume"] >= 30 and kinds["dividend"] > 500
    ratios = {e["ratio_text"] for e in corpus.events if e["kind"] == "split"}
    assert {"2:1", "3:2", "5:4", "1:10", "1:5"} <= ratios
    labels = {e["label"] for e in corpus.events if e["kind"] == "price_jump"}
    assert {"collapse -30%, opens on 3:2", "rally +35%, opens on 4:5"} <= labels
    f = corpus.frames["SYN00"]
    assert f["date"].is_monotonic_increasing and not f["date"].isin(pd.to_datetime(["2019-12-25"])).any()


# --- regressions found with the corpus and around it ---------------------------------------------------------------


def test_reverse_split_applied_since_the_stored_download_is_not_out_of_range(tmp_path, tradeops):
    """A 1:20 reverse split after the stored download multiplies every adjusted price of the new download by 20;
    the stored price range must move with it (it was compared on the old basis: a false [out_of_range])."""
    from fractions import Fraction

    from corpus import Plan, Split, av_csv, simulate
    from tradeops.data.clean import sessions

    dates = sessions("XNYS", pd.Timestamp("2005-01-03"), pd.Timestamp("2008-12-31"))
    k = len(dates) - 150
    frame = simulate(dates, Plan(splits=[Split(k, Fraction(1, 20))]), seed=2, price0=2.0)
    for name, as_of in (("old", dates[k - 100]), ("new", dates[-1])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "PENY.csv").write_text(av_csv(frame, as_of=as_of))
    home = tmp_path / "home"
    assert tradeops(home, "ingest", "--source", "csv", "--path", tmp_path / "old").exit_code == 0
    r = tradeops(home, "ingest", "--source", "csv", "--path", tmp_path / "new", "--json")
    assert r.exit_code == 0, r.output[-2000:]
    (t,) = r.json()["tickers"]
    assert t["errors"] == []
    assert [(e["date"], e["ratio_text"]) for e in t["events"] if e["type"] == "split"] == [
        (f"{dates[k]:%Y-%m-%d}", "1:20")
    ]


def test_stats_on_basis_moves_the_stored_range_by_the_new_adjustment():
    from tradeops.data.quality import infer_stats, stats_on_basis

    d = pd.bdate_range("2021-03-01", periods=4)
    stored = pd.DataFrame(
        {
            "date": d[:3],
            "close": [2.0, 2.1, 2.2],
            "adj_close": [2.0, 2.1, 2.2],
            "adj_volume": [1e6] * 3,
            "open": 2.0,
            "high": 2.3,
            "low": 1.9,
            "volume": 1e6,
        }
    )
    stats = infer_stats("T", stored)
    new = stored.assign(adj_close=stored["adj_close"] * 20)  # the same dates, now on a x20 basis
    moved = stats_on_basis(stats, new, stored)
    assert (moved.adj_close_min, moved.adj_close_max) == pytest.approx((40.0, 44.0))
    contiguous = pd.DataFrame({"date": d[3:], "close": [2.3], "adj_close": [2.3]})  # no overlap, same basis
    assert stats_on_basis(stats, contiguous, stored) == stats
    assert stats_on_basis(None, new, stored) is None


def test_file_identical_to_another_stored_ticker_is_quarantined(tmp_path, tradeops, lake_of):
    """The same bytes under a new ticker name were accepted silently: a second name for one instrument's bars."""
    from tradeops.data import store as st

    small = build_corpus(2, 2, seed=7)
    home, first = tmp_path / "home", small.write(tmp_path / "first")
    assert tradeops(home, "ingest", "--source", "csv", "--path", first).exit_code == 0
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "CLONE.csv").write_bytes((first / "SYN01.csv").read_bytes())
    (copy / "SYN00.csv").write_bytes((first / "SYN00.csv").read_bytes())  # its own file again: fine
    bars_version = lake_of(home).version(st.BARS)
    r = tradeops(home, "ingest", "--source", "csv", "--path", copy, "--json")
    assert r.exit_code == 1
    by = {t["ticker"]: t for t in r.json()["tickers"]}
    assert by["SYN00"]["errors"] == [] and by["SYN00"]["rows_written"] == 0
    assert by["CLONE"]["status"] == "quarantined"
    (f,) = by["CLONE"]["errors"]
    assert (f["rule"], f["ticker"], f["details"]["same_as"]) == ("duplicate_content", "CLONE", "SYN01")
    assert "CLONE" in f["message"] and "SYN01" in f["message"]
    assert "[duplicate_content]" in tradeops(home, "ingest", "--source", "csv", "--path", copy).output
    lake = lake_of(home)
    assert lake.version(st.BARS) == bars_version and "CLONE" not in set(lake.read_bars()["ticker"])


def test_stored_duplicate_findings_count_only_accepted_files_of_other_tickers():
    from tradeops.data.ingest import _accepted_sha256, _stored_duplicate_findings
    from tradeops.data.raw import RawFile

    a, b = RawFile("AAA", b"same bytes\n", "csv", "a.csv"), RawFile("BBB", b"same bytes\n", "csv", "b.csv")
    reports = pd.DataFrame(
        {
            "ticker": ["OLD", "AAA", "QQQ"],
            "status": ["quarantined", "accepted_with_warnings", "accepted"],
            "sha256": [a.sha256, a.sha256, "f" * 64],
            "created_at": pd.to_datetime(["2021-01-01", "2021-01-02", "2021-01-03"], utc=True),
        }
    )
    stored = _accepted_sha256(reports)
    assert stored == {a.sha256: "AAA", "f" * 64: "QQQ"}  # a quarantined file is not stored data
    found = _stored_duplicate_findings([a, b, RawFile("CCC", b"", "csv", "c.csv")], stored)
    assert list(found) == [1] and found[1][0].rule == "duplicate_content" and "AAA" in found[1][0].message
