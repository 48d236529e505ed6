"""End to end: a short simulation through production's code, interrupted and resumed with identical results, and
the no-look-ahead check (bars after a day are perturbed: everything up to that day is identical).

One ticker (IBM from the bundled sample, cut at 2011-03-31 and served from CSV files), 1-epoch models, lax
blessing, 16 sessions. The three simulations share nothing but the input files.
"""

from __future__ import annotations

import copy
import csv
import io
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from tradeops.config import load_settings
from tradeops.sim.journal import Journal, Plan
from tradeops.sim.run import simulate

pytestmark = pytest.mark.slow

START, END = "2011-01-03", "2011-01-25"
PERTURBED_AFTER = "2011-01-13"  # bars dated after this close are changed in the perturbed copy
LAX = {
    "blessing": {"min_recall_buy": 0.0, "min_recall_sell": 0.0, "min_macro_f1": 0.0, "min_net_sharpe": None},
    "baselines": False,
}
CONFIG = """model:
  baselines: false
  blessing:
    min_recall_buy: 0.0
    min_recall_sell: 0.0
    min_macro_f1: 0.0
    min_net_sharpe: null
"""


def _write_ibm(directory: Path, *, scale_after: str | None = None) -> Path:
    """IBM's sample rows up to 2011-03-31; with ``scale_after``, every price after that date x 1.04."""
    text = resources.files("tradeops.sample_data").joinpath("IBM.csv").read_text()
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], [r for r in rows[1:] if r and r[0] <= "2011-03-31"]
    prices = [i for i, h in enumerate(header) if h in ("Open", "High", "Low", "Close", "Adj Close")]
    if scale_after is not None:
        for r in body:
            if r[0] > scale_after:
                for i in prices:
                    r[i] = f"{float(r[i]) * 1.04:.6f}"
    directory.mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *body])
    (directory / "IBM.csv").write_text(out.getvalue())
    return directory


def _plan(path: Path) -> Plan:
    return Plan(START, END, ("IBM",), "csv", str(path.resolve()), "cnn-ta", 5, 1)


def _comparable(days: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The day records without table version numbers (bookkeeping: an interrupted day's second ingest may add a
    version of the report tables) and the latency-like fields; signals, probabilities, model versions,
    monitoring metrics and decisions stay."""
    out = copy.deepcopy(days)
    for d in out:
        for i in d["ingest"]:
            i.pop("bars_version", None)
            i.pop("features_version", None)
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sim-inputs")
    return {
        "original": _write_ibm(root / "original"),
        "perturbed": _write_ibm(root / "perturbed", scale_after=PERTURBED_AFTER),
    }


@pytest.fixture(scope="module")
def baseline(inputs, tmp_path_factory):
    home = tmp_path_factory.mktemp("sim-a") / "home"
    return simulate(load_settings(home=home, model=LAX), _plan(inputs["original"]))


def test_every_day_ingests_serves_champion_and_shadow_and_monitors(baseline):
    days = baseline.days
    assert [d["date"] for d in days][0] == START and days[-1]["date"] == END and len(days) == 16
    for d in days:
        assert [i["status"] for i in d["ingest"]] == ["ingested"]
        (served,) = d["served"]
        assert served["status"] == 200 and served["signal"] in ("BUY", "SELL", "HOLD")
        assert served["champion_version"] == d["aliases"]["champion"] or d["swaps"]
        assert served["routing_mode"] == "shadow"
    assert all(d["served"][0]["challenger_signal"] is not None for d in days)  # the bootstrap challenger shadows
    ran = [d["date"] for d in days if d["monitor"]["ran"]]
    assert ran == [days[i]["date"] for i in (4, 9, 14)] + [END]
    for d in days:
        if d["monitor"]["ran"]:
            assert "cnn-ta-IBM|data.psi_max" in d["monitor"]["metrics"], d["monitor"]


def test_interrupted_mid_day_then_resumed_gives_identical_results(baseline, inputs, tmp_path_factory, tradeops):
    home = tmp_path_factory.mktemp("sim-b") / "home"
    settings = load_settings(home=home, model=LAX)

    def interrupt(step: str, day: date) -> None:
        if (step, day.isoformat()) == ("serve", "2011-01-11"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate(settings, _plan(inputs["original"]), hook=interrupt)
    done = [d["date"] for d in Journal(home).days()]
    assert done[-1] == "2011-01-10"  # the interrupted day is not recorded; it is done again on resume

    # the same command resumes (through the CLI, with the same configuration) and reports
    config = home.parent / "tradeops.yaml"
    config.write_text(CONFIG)
    r = tradeops(
        None,
        "simulate",
        "--start",
        START,
        "--end",
        END,
        "--tickers",
        "IBM",
        "--source",
        "csv",
        "--path",
        inputs["original"],
        "--epochs",
        "1",
        "--home",
        home,
        "--json",
        env={"TRADEOPS_CONFIG": str(config)},
    )
    assert r.exit_code == 0, r.output
    out = r.json()
    assert out["resumed_from"] == "2011-01-10" and out["days"] == 16
    resumed = Journal(home).days()
    assert _comparable(resumed) == _comparable(baseline.days)
    assert Path(out["reports"]["simulation"]).is_file() and Path(out["reports"]["monitoring"]).is_file()
    assert out["summary"]["trading_days"] == 16 and out["summary"]["signals_served"] == 16
    assert out["reports"]["mlflow_run"]


def test_no_look_ahead_bars_after_a_day_change_nothing_up_to_it(baseline, inputs, tmp_path_factory):
    home = tmp_path_factory.mktemp("sim-c") / "home"
    perturbed = simulate(load_settings(home=home, model=LAX), _plan(inputs["perturbed"]))
    upto = [d for d in baseline.days if d["date"] <= PERTURBED_AFTER]
    assert len(upto) == 9
    assert _comparable(perturbed.days[: len(upto)]) == _comparable(upto)
    after_a = [d["served"][0]["probabilities"] for d in baseline.days if d["date"] > PERTURBED_AFTER]
    after_c = [d["served"][0]["probabilities"] for d in perturbed.days if d["date"] > PERTURBED_AFTER]
    assert after_a != after_c  # the perturbation is visible once its bars are known
