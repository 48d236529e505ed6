"""Sensors: landing files -> ingest_daily, run failure -> webhook, retrain request -> retrain, challenger -> promote."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from tradeops.config import load_settings
from tradeops.deploy.challenger import challenger_decisions
from tradeops.deploy.requests import handled_retrain_requests, pending_retrain_requests, write_retrain_request
from tradeops.pipelines.sensors import (
    LANDING_FILE_TAG,
    MODEL_TAG,
    MODEL_VERSION_TAG,
    RETRAIN_REQUEST_TAG,
    build_sensors,
)
from webhook import webhook_receiver

NY = ZoneInfo("America/New_York")
FRIDAY_EVENING = datetime(2024, 7, 5, 18, 0, tzinfo=NY)


def sensors(settings, when=FRIDAY_EVENING) -> dict:
    return {s.name: s for s in build_sensors(settings, clock=lambda: when)}


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_every_sensor_uses_the_configured_interval(tmp_path):
    settings = load_settings(home=tmp_path, pipelines={"sensor_interval_seconds": 7})
    found = sensors(settings)
    assert set(found) == {"landing_sensor", "alert_on_run_failure", "retrain_request_sensor", "challenger_sensor"}
    assert {s.minimum_interval_seconds for s in found.values()} == {7}
    assert found["landing_sensor"].job_name == "ingest_daily"
    assert found["retrain_request_sensor"].job_name == "retrain"
    assert found["challenger_sensor"].job_name == "promote"


# --- landing ---------------------------------------------------------------------------------------------------


def tick(sensor, instance, cursor=None):
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor))


def test_landing_file_triggers_once_and_again_when_changed(tmp_path, instance, bars_fixtures):
    settings = load_settings(home=tmp_path, pipelines={"universe": ["IBM", "MSFT"]})
    landing = settings.landing_dir
    landing.mkdir(parents=True)
    shutil.copy(bars_fixtures / "yahoo" / "IBM.csv", landing / "IBM.csv")
    (landing / "ZZZ.csv").write_text("Date,Open,High,Low,Close,Volume\n")
    (landing / "IBM.csv.tmp").write_text("half written")
    sensor = sensors(settings)["landing_sensor"]

    first = tick(sensor, instance)
    (req,) = first.run_requests
    last_day = max(line.split(",")[0] for line in (landing / "IBM.csv").read_text().splitlines()[1:])
    assert req.partition_key.keys_by_dimension == {"date": last_day, "ticker": "IBM"}
    assert req.tags[LANDING_FILE_TAG] == str((landing / "IBM.csv").resolve())
    assert req.run_key.startswith("landing:IBM:")

    second = tick(sensor, instance, first.cursor)  # unchanged file: nothing; the foreign ticker is reported
    assert not second.run_requests
    assert "ZZZ.csv" in second.skip_reason.skip_message and "not in the universe" in second.skip_reason.skip_message

    with (landing / "IBM.csv").open("a") as fh:  # a changed file triggers again, under a new run key
        fh.write("")
    os.utime(landing / "IBM.csv", ns=(1, 1))
    assert not tick(sensor, instance, second.cursor).run_requests  # touched, same bytes: no trigger
    lines = (landing / "IBM.csv").read_text().splitlines()
    (landing / "IBM.csv").write_text("\n".join(lines[:-1]) + "\n")
    third = tick(sensor, instance, second.cursor)
    (req3,) = third.run_requests
    assert req3.run_key != req.run_key
    assert req3.partition_key.keys_by_dimension["date"] == lines[-2].split(",")[0]


def test_landing_file_without_bars_is_reported_not_requested(tmp_path, instance):
    settings = load_settings(home=tmp_path, pipelines={"universe": ["IBM"]})
    settings.landing_dir.mkdir(parents=True)
    (settings.landing_dir / "IBM.csv").write_text("<html>error</html>")
    result = tick(sensors(settings)["landing_sensor"], instance)
    assert not result.run_requests
    assert "IBM: [landing_unreadable]" in result.skip_reason.skip_message


def test_landing_date_is_the_last_session_not_after_today(tmp_path, instance):
    settings = load_settings(home=tmp_path, pipelines={"universe": ["IBM"]})
    settings.landing_dir.mkdir(parents=True)
    rows = ["2024-07-03,1,2,0.5,1.5,100", "2024-07-05,1,2,0.5,1.5,100", "2024-07-08,1,2,0.5,1.5,100"]
    (settings.landing_dir / "IBM.csv").write_text("Date,Open,High,Low,Close,Volume\n" + "\n".join(rows) + "\n")
    sat = datetime(2024, 7, 6, 10, 0, tzinfo=NY)
    (req,) = tick(sensors(settings, sat)["landing_sensor"], instance).run_requests
    assert req.partition_key.keys_by_dimension == {"date": "2024-07-05", "ticker": "IBM"}


# --- retrain requests -------------------------------------------------------------------------------------------


def test_each_retrain_request_becomes_one_run_then_is_handled(tmp_path, instance):
    settings = load_settings(home=tmp_path)
    sensor = sensors(settings)["retrain_request_sensor"]
    assert isinstance(tick(sensor, instance), dg.SkipReason)
    a = write_retrain_request(tmp_path, reason="drift", tickers=["IBM"], requested_by="monitor")
    b = write_retrain_request(tmp_path, reason="manual", requested_by="ops")
    result = tick(sensor, instance)
    assert [r.run_key for r in result] == [a.stem, b.stem]
    assert {r.partition_key for r in result} == {"2024-07-05"}  # the latest ready session on Friday evening
    assert result[0].tags[RETRAIN_REQUEST_TAG] == a.stem and result[0].tags["tradeops/tickers"] == "IBM"
    assert pending_retrain_requests(tmp_path) == [] and len(handled_retrain_requests(tmp_path)) == 2
    assert isinstance(tick(sensor, instance), dg.SkipReason)


# --- run failure alert --------------------------------------------------------------------------------------------


@dg.op
def explode() -> None:
    raise ValueError("boom at apikey=SECRETKEY")


@dg.job
def failing_job() -> None:
    explode()


def failure_context(instance):
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False, tags={"dagster/partition": "P1"})
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    event = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    ctx = dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure", dagster_event=event, dagster_instance=instance, dagster_run=run
    )
    return ctx.for_run_failure(), result.run_id


def test_run_failure_is_posted_to_the_webhook(tmp_path, instance):
    with webhook_receiver() as hook:
        settings = load_settings(home=tmp_path, pipelines={"alert_webhook_url": hook.url, "dagster_url": "http://d:3"})
        ctx, run_id = failure_context(instance)
        sensors(settings)["alert_on_run_failure"](ctx)
    (body,) = hook.bodies
    assert body["event"] == "run_failure" and body["job"] == "failing_job" and body["run_id"] == run_id
    assert body["partition"] == "P1" and body["dagster_url"] == f"http://d:3/runs/{run_id}"
    assert "explode" in body["error"] and "boom" in body["error"] and "SECRETKEY" not in body["error"]


def test_run_failure_without_webhook_sends_nothing(tmp_path, instance):
    with webhook_receiver() as hook:
        ctx, _ = failure_context(instance)
        sensors(load_settings(home=tmp_path))["alert_on_run_failure"](ctx)
    assert hook.bodies == []


# --- challenger --------------------------------------------------------------------------------------------------


def model(name="m", *, champion="1", challenger="2", blessed="true", complete=True):
    versions = [
        {"version": "1", "tags": {"blessed": "true"}, "complete": True, "missing_tags": []},
        {"version": "2", "tags": {"blessed": blessed}, "complete": complete, "missing_tags": [] if complete else ["x"]},
    ]
    aliases = {k: v for k, v in {"champion": champion, "challenger": challenger}.items() if v}
    return {"name": name, "aliases": aliases, "versions": versions}


@pytest.mark.parametrize(
    ("record", "promotable", "settled"),
    [
        (model(), True, True),
        (model(blessed="false"), False, True),
        (model(complete=False), False, False),  # still being registered: look again later
        (model(champion="2"), False, True),
    ],
)
def test_challenger_decision(record, promotable, settled):
    (d,) = challenger_decisions([record])
    assert (d.key, d.promotable, d.settled) == ("m:2", promotable, settled)


def test_handled_or_missing_challengers_give_no_decision():
    assert challenger_decisions([model()], handled=["m:2"]) == []
    assert challenger_decisions([model(challenger=None)]) == []


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A tiny MLflow registry: model ``m`` with champion v1 and a blessed, complete challenger v2."""
    from tradeops.model import registry as reg

    home = tmp_path_factory.mktemp("registry")
    settings = load_settings(home=home)
    (home / "artifact").mkdir()
    c = reg.client(settings)
    c.create_registered_model("m")
    tags = {k: "x" for k in reg.REQUIRED_TAGS} | {"blessed": "true", reg.COMPLETE_TAG: "true"}
    for _ in range(2):
        c.create_model_version("m", source=(home / "artifact").as_uri(), tags=tags)
    c.set_registered_model_alias("m", "champion", "1")
    c.set_registered_model_alias("m", "challenger", "2")
    return settings


def test_blessed_challenger_requests_promotion_once(registry, instance):
    sensor = sensors(registry)["challenger_sensor"]
    first = tick(sensor, instance)
    (req,) = first.run_requests
    assert req.run_key == "m:2" and req.tags[MODEL_TAG] == "m" and req.tags[MODEL_VERSION_TAG] == "2"
    assert json.loads(first.cursor) == ["m:2"]
    again = tick(sensor, instance, first.cursor)
    assert not again.run_requests and "no new blessed challenger" in again.skip_reason.skip_message


def test_require_approval_waits_for_tradeops_promote(registry, instance):
    settings = registry.model_copy(
        update={"pipelines": registry.pipelines.model_copy(update={"require_approval": True})}
    )
    result = tick(sensors(settings)["challenger_sensor"], instance)
    assert not result.run_requests
    assert "tradeops promote 2" in result.skip_reason.skip_message
    assert json.loads(result.cursor) == []  # still waiting: promoted by the sensor once approval is lifted
