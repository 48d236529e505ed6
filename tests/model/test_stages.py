"""Training in stages, as an orchestrator calls it: each stage takes and returns typed objects, and a check can
stand between blessing and promotion (here: a blocking check that stops an unblessed candidate)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tradeops.config import load_settings
from tradeops.data.ingest import ingest
from tradeops.data.sources import SampleSource
from tradeops.model import registry as reg
from tradeops.model import training as tr

pytestmark = pytest.mark.slow  # trains models or starts processes; `pytest -m 'not slow'` skips

LAX = {
    "blessing": {"min_recall_buy": 0.0, "min_recall_sell": 0.0, "min_macro_f1": 0.0, "min_net_sharpe": None},
    "baselines": False,
}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("stages") / "home"
    ingest(SampleSource(), load_settings(home=home), ["IBM"], today=date(2026, 11, 26))
    return home


class BlockingCheckFailed(Exception):
    pass


def blessing_check(blessing: tr.BlessingOutcome) -> None:
    """What an orchestrator's blocking asset check does: an unblessed candidate never reaches promotion."""
    if not blessing.blessed:
        raise BlockingCheckFailed("; ".join(c.message for c in blessing.decision.checks if not c.passed))


def test_stages_one_by_one_with_a_check_between_blessing_and_promotion(ingested, tmp_path):
    home = Path(shutil.copytree(ingested, tmp_path / "home"))
    settings = load_settings(home=home, model=LAX)
    prepared = tr.prepare_window(settings, preset="cnn-ta", tickers=["IBM"])
    assert isinstance(prepared.versions, tr.TableVersions) and prepared.versions.bars == 0
    fitted = tr.fit_candidate(settings, prepared, epochs=1)
    assert fitted.parity < 1e-5
    evaluation = tr.evaluate_candidate(settings, prepared, fitted)
    assert set(evaluation.preds["ticker"]) == {"IBM"} and "macro_f1" in evaluation.summary
    blessing = tr.bless_candidate(settings, prepared, evaluation)
    blessing_check(blessing)  # lax floors, no champion: blessed
    registered = tr.register_candidate(settings, prepared, fitted, evaluation, blessing)
    c = reg.client(settings)
    assert reg.alias_version(c, registered.name, reg.CHALLENGER) == registered.version
    assert reg.alias_version(c, registered.name, reg.CHAMPION) is None  # nothing promoted before the last stage
    assert c.get_run(prepared.run_id).info.status == "FINISHED"
    promotion = tr.promote_candidate(settings, registered, blessing)
    assert promotion.promoted and promotion.champion_after == registered.version

    # A strict floor: the next candidate fails its blessing, the check blocks, no alias moves.
    strict = load_settings(home=home, model={**LAX, "blessing": {**LAX["blessing"], "min_macro_f1": 0.99}})
    prepared2 = tr.prepare_window(strict, preset="cnn-ta", tickers=["IBM"])
    fitted2 = tr.fit_candidate(strict, prepared2, epochs=1)
    evaluation2 = tr.evaluate_candidate(strict, prepared2, fitted2)
    blessing2 = tr.bless_candidate(strict, prepared2, evaluation2)
    assert blessing2.champion_version == registered.version  # compared with the champion on the same window
    with pytest.raises(BlockingCheckFailed, match="macro_f1"):
        blessing_check(blessing2)
    assert reg.alias_version(c, registered.name, reg.CHAMPION) == registered.version
    assert reg.alias_version(c, registered.name, reg.CHALLENGER) == registered.version


def test_prepare_window_as_of_uses_only_what_was_known_at_that_close(ingested, tmp_path):
    home = Path(shutil.copytree(ingested, tmp_path / "home"))
    settings = load_settings(home=home, model=LAX)
    as_of = pd.Timestamp("2010-06-30")
    prepared = tr.prepare_window(settings, preset="cnn-ta", tickers=["IBM"], as_of=as_of)
    data = prepared.data
    for part in (data.fit, data.val, data.test):
        assert part["date"].max() <= as_of
    labelled = pd.concat([data.fit, data.val])
    assert (pd.to_datetime(labelled["label_known_at"]) <= as_of).all()
    assert max(b.index.max() for b in prepared.bars.values()) <= as_of
    run = reg.client(settings).get_run(prepared.run_id)
    assert run.data.params["as_of"] == "2010-06-30"


def test_prepare_window_reads_explicit_table_versions(ingested, tmp_path):
    """A rebuild names the versions it reads; later table versions do not leak in."""
    home = Path(shutil.copytree(ingested, tmp_path / "home"))
    settings = load_settings(home=home, model=LAX)
    first = tr.prepare_window(settings, preset="cnn-ta", tickers=["IBM"])
    pinned = tr.prepare_window(settings, preset="cnn-ta", tickers=["IBM"], versions=first.versions)
    pd.testing.assert_frame_equal(first.data.test, pinned.data.test)
    assert pinned.versions == first.versions


def test_a_failing_stage_marks_the_run_failed_and_registers_nothing(ingested, tmp_path, monkeypatch):
    home = Path(shutil.copytree(ingested, tmp_path / "home"))
    settings = load_settings(home=home, model=LAX)

    def broken(*args, **kwargs):
        raise RuntimeError("the fit blew up")

    monkeypatch.setattr(tr, "fit_window", broken)
    with pytest.raises(RuntimeError, match="blew up"):
        tr.train_model(settings, preset="cnn-ta", tickers=["IBM"], epochs=1)
    c = reg.client(settings)
    runs = c.search_runs([c.get_experiment_by_name(reg.EXPERIMENT).experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert c.search_registered_models() == []
