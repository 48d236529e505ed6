"""What the sensors' run tags make the jobs do: a landing file is what raw_bars stages (and a file changed after the
sensor saw it is refused); the promote job promotes the tagged version and refuses a run without the tags."""

from __future__ import annotations

import hashlib

import dagster as dg
import pytest

from tradeops.data import store as st
from tradeops.pipelines.definitions import build_defs
from tradeops.pipelines.run import run_job
from tradeops.pipelines.sensors import LANDING_FILE_TAG, LANDING_SHA_TAG, MODEL_TAG, MODEL_VERSION_TAG, TRIGGER_TAG

DAY1, DAY2 = "2013-02-28", "2013-03-01"


def _landing_file(tmp_path, bars_dir):
    """The configured source stops at DAY1; the landing file carries DAY2 too."""
    from pipeline_homes import write_bars

    landing = write_bars(tmp_path / "landing")
    write_bars(bars_dir, end=DAY1)
    path = landing / "IBM.csv"
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_landing_file_is_what_raw_bars_stages(tmp_path):
    from pipeline_homes import pipeline_settings

    bars_dir = tmp_path / "bars"
    path, sha = _landing_file(tmp_path, bars_dir)
    settings = pipeline_settings(tmp_path / "home", bars_dir)
    tags = {TRIGGER_TAG: "landing", LANDING_FILE_TAG: str(path), LANDING_SHA_TAG: sha}
    (run,) = run_job(settings, "ingest_daily", day=DAY2, tags=tags)
    assert run.ok, run.message()
    assert run.materializations["raw_bars"]["location"] == str(path)
    stored = st.lake_for(settings).read_bars(["IBM"])
    assert stored["date"].max().date().isoformat() == DAY2  # only the landing file has DAY2


def test_a_landing_file_changed_after_the_sensor_saw_it_is_refused(tmp_path):
    from pipeline_homes import pipeline_settings

    bars_dir = tmp_path / "bars"
    path, _sha = _landing_file(tmp_path, bars_dir)
    settings = pipeline_settings(tmp_path / "home", bars_dir)
    tags = {LANDING_FILE_TAG: str(path), LANDING_SHA_TAG: "0" * 64}
    (run,) = run_job(settings, "ingest_daily", day=DAY2, tags=tags)
    assert not run.ok
    assert "[landing_changed]" in run.message() and "IBM" in run.message()
    assert st.lake_for(settings).version(st.BARS) is None  # nothing was written


def _promote(settings, tags):
    job = build_defs(settings).get_job_def("promote")
    return job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), tags=tags, raise_on_error=False)


def test_the_promote_job_promotes_the_tagged_version(trained_ibm):
    settings, outcome = trained_ibm  # v1 is champion already: promoting it again records nothing (read-only)
    result = _promote(settings, {MODEL_TAG: outcome.name, MODEL_VERSION_TAG: outcome.version})
    assert result.success
    entry = result.output_for_node("promote_tagged_version")
    assert entry["champion"] == outcome.version and entry["changed"] is False


@pytest.mark.parametrize("tags", [{}, {MODEL_TAG: "cnn-ta-IBM"}])
def test_a_promote_run_without_its_tags_fails_naming_them(trained_ibm, tags):
    settings, _ = trained_ibm
    result = _promote(settings, tags)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "[promote_tags]" in failure.step_failure_data.error.cause.message
