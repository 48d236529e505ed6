"""The daily schedule: one run per (trading date, ticker), whatever how often it is evaluated.

Dates: 2024-07-04 (Thursday) is an NYSE holiday, 2024-07-05 a session, 2024-07-06/07 a weekend.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from tradeops.config import load_settings
from tradeops.pipelines.schedules import RUN_KEY_TAG, build_schedules, daily_cron, ingest_run_key

NY = ZoneInfo("America/New_York")
SETTINGS = load_settings(home="unused-home", pipelines={"universe": ["AAPL", "IBM"], "catchup_sessions": 2})


def ny(*args) -> datetime:
    return datetime(*args, tzinfo=NY)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def evaluate(instance, when: datetime):
    (schedule,) = build_schedules(SETTINGS)
    return schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=when))


def partitions(result) -> list[str]:
    assert isinstance(result, list), result
    return [r.partition_key for r in result]


def launch(instance, result) -> None:
    """What the daemon does with the requests: create a run per request, tagged with its run key."""
    for r in result:
        create_run_for_test(instance, job_name="ingest_daily", tags={RUN_KEY_TAG: r.run_key})


def test_definition_is_weekdays_after_the_close_in_new_york():
    (schedule,) = build_schedules(SETTINGS)
    assert schedule.name == "ingest_daily_schedule" and schedule.job_name == "ingest_daily"
    assert schedule.cron_schedule == "30 17 * * 1-5" == daily_cron("17:30")
    assert schedule.execution_timezone == "America/New_York"


def test_friday_evening_after_a_holiday_requests_thursday_skipped(instance):
    result = evaluate(instance, ny(2024, 7, 5, 17, 30))
    # the holiday (4th) is not a partition; the catch-up window is the last 2 sessions: 3rd and 5th
    assert partitions(result) == ["2024-07-03|AAPL", "2024-07-03|IBM", "2024-07-05|AAPL", "2024-07-05|IBM"]
    assert [r.run_key for r in result][-1] == ingest_run_key(datetime(2024, 7, 5).date(), "IBM")
    assert str(result[0].partition_key) == "2024-07-03|AAPL"
    assert isinstance(result[0].partition_key, dg.MultiPartitionKey)
    assert result[0].partition_key.keys_by_dimension == {"date": "2024-07-03", "ticker": "AAPL"}


def test_same_date_twice_launches_once(instance):
    launch(instance, evaluate(instance, ny(2024, 7, 5, 17, 30)))
    again = evaluate(instance, ny(2024, 7, 5, 17, 30))
    assert isinstance(again, dg.SkipReason) and "already has a run" in again.skip_message


def test_saturday_and_holiday_add_nothing(instance):
    launch(instance, evaluate(instance, ny(2024, 7, 3, 17, 30)))
    assert isinstance(evaluate(instance, ny(2024, 7, 4, 18, 0)), dg.SkipReason)  # Thursday holiday
    launch(instance, evaluate(instance, ny(2024, 7, 5, 17, 30)))
    assert isinstance(evaluate(instance, ny(2024, 7, 6, 17, 30)), dg.SkipReason)  # Saturday


def test_before_the_schedule_time_only_the_previous_session_is_new(instance):
    launch(instance, evaluate(instance, ny(2024, 7, 2, 17, 30)))
    result = evaluate(instance, ny(2024, 7, 5, 16, 0))  # Friday before 17:30: Friday is not ready yet
    assert partitions(result) == ["2024-07-03|AAPL", "2024-07-03|IBM"]


def test_a_missed_day_is_caught_up_once(instance):
    launch(instance, evaluate(instance, ny(2024, 7, 1, 17, 30)))
    # daemon down on Tuesday the 2nd: Wednesday's evaluation catches it up
    wed = evaluate(instance, ny(2024, 7, 3, 17, 30))
    assert partitions(wed) == ["2024-07-02|AAPL", "2024-07-02|IBM", "2024-07-03|AAPL", "2024-07-03|IBM"]
    launch(instance, wed)
    assert partitions(evaluate(instance, ny(2024, 7, 5, 17, 30))) == ["2024-07-05|AAPL", "2024-07-05|IBM"]


def test_scheduler_daemon_ticks_launch_each_partition_once():
    """Through the daemon's own tick logic on a real instance: Friday's tick and Monday's (whose catch-up window
    repeats Friday) create one run per (date, ticker)."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import (
        InProcessTestWorkspaceLoadTarget,
        create_test_daemon_workspace_context,
        freeze_time,
        load_remote_repo,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._scheduler.scheduler import launch_scheduled_runs
    from dagster._time import get_current_datetime

    queued = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}}
    target = InProcessTestWorkspaceLoadTarget(
        InProcessCodeLocationOrigin(
            LoadableTargetOrigin(python_file=str(Path(__file__).with_name("schedule_location.py")), attribute="defs")
        )
    )
    log = logging.getLogger("test-scheduler")
    with dg.instance_for_test(overrides=queued) as instance:
        with create_test_daemon_workspace_context(target, instance) as workspace:
            schedule = load_remote_repo(workspace, "__repository__").get_schedule("ingest_daily_schedule")

            def tick(when: datetime) -> None:
                with freeze_time(when):
                    list(launch_scheduled_runs(workspace, log, get_current_datetime(), iteration_times={}))

            with freeze_time(ny(2024, 7, 5, 17, 0)):
                instance.start_schedule(schedule)
            tick(ny(2024, 7, 5, 17, 31))
            tick(ny(2024, 7, 5, 17, 45))  # no new tick: nothing more
            tick(ny(2024, 7, 6, 12, 0))  # Saturday: no tick
            tick(ny(2024, 7, 8, 17, 31))  # Monday: window 5th + 8th, the 5th already ran

            runs = instance.get_runs()
            keys = sorted(r.tags[RUN_KEY_TAG] for r in runs)
            partitions_ = sorted(r.tags["dagster/partition"] for r in runs)
            ticks = instance.get_ticks(schedule.get_remote_origin_id(), schedule.selector_id)
    assert keys == sorted(
        f"ingest_daily:{d}:{t}" for d in ("2024-07-03", "2024-07-05", "2024-07-08") for t in ("AAPL", "IBM")
    )
    assert len(set(keys)) == len(keys) == 6
    assert partitions_[0] == "2024-07-03|AAPL"
    assert sorted(len(t.run_ids) for t in ticks) == [2, 4]
