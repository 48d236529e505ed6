"""`tradeops reproduce MODEL[@VERSION] [--json]` end to end: exit 0 on a freshly trained model, 1 naming what
differs, 2 on a bad reference. Training and reproduce see one clean fake commit (the checkout may be dirty)."""

from __future__ import annotations

import pytest

from tradeops.model import training

pytestmark = pytest.mark.slow  # trains a model

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
LAX = {
    "TRADEOPS_MODEL__BLESSING__MIN_MACRO_F1": "0",
    "TRADEOPS_MODEL__BLESSING__MIN_RECALL_BUY": "0",
    "TRADEOPS_MODEL__BLESSING__MIN_RECALL_SELL": "0",
    "TRADEOPS_MODEL__BLESSING__MIN_NET_SHARPE": "-100",
    "TRADEOPS_MODEL__BASELINES": "false",
}


@pytest.fixture(scope="module")
def home(tmp_path_factory, tradeops):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "git_commit", lambda: COMMIT)
        h = tmp_path_factory.mktemp("reproduce-cli")
        assert tradeops(h, "ingest", "--tickers", "IBM").exit_code == 0
        r = tradeops(h, "train", "--preset", "cnn-ta", "--tickers", "IBM", "--epochs", "2", env=LAX)
        assert r.exit_code == 0, r.output
        yield h


def test_reproduce_verifies_the_champion_and_names_a_vacuumed_data_version(home, tradeops, monkeypatch):
    monkeypatch.setattr(training, "git_commit", lambda: COMMIT)
    ok = tradeops(home, "reproduce", "cnn-ta-IBM", "--json", env=LAX)
    assert ok.exit_code == 0, ok.output
    j = ok.json()
    assert j["ok"] is True and j["version"] == "1" and j["differences"] == [] and j["rebuilt"] is True
    assert j["checked"]["table_versions"] == {"bars": 0, "features": 0, "labels": 0}

    # the lake's recorded bars version is gone (rows deleted, then vacuumed): data, and nothing rebuilt
    from tradeops.config import load_settings
    from tradeops.data import store as st

    lake = st.lake_for(load_settings(home=home))
    lake.delete_tickers(st.BARS, ["IBM"], {"operation": "delete"})
    lake.table(st.BARS).vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)

    bad = tradeops(home, "reproduce", "cnn-ta-IBM@1", env=LAX)
    assert bad.exit_code == 1, bad.output
    assert "NOT reproduced (data)" in bad.stdout
    assert "[data] bars_version: recorded 'bars v0', now 'unreadable" in bad.stdout
    j = tradeops(home, "reproduce", "cnn-ta-IBM@1", "--json", env=LAX)
    assert j.exit_code == 1
    assert [(d["kind"], d["field"]) for d in j.json()["differences"]] == [("data", "bars_version")]
    assert j.json()["ok"] is False and j.json()["rebuilt"] is False


@pytest.mark.parametrize(
    ("ref", "says"),
    [("nope", "no registered model 'nope'"), ("cnn-ta-IBM@9", "has no version 9"), ("cnn-ta-IBM@", "NAME@VERSION")],
)
def test_reproduce_of_an_unknown_model_or_version_is_a_usage_error(home, tradeops, ref, says):
    r = tradeops(home, "reproduce", ref)
    assert r.exit_code == 2, r.output
    assert says in r.stderr
