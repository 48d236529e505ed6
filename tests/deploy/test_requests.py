"""Retrain requests: written atomically, listed oldest first, moved to handled/ once a run was requested."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tradeops.deploy.requests import (
    handled_retrain_requests,
    mark_handled,
    pending_retrain_requests,
    requests_dir,
    write_retrain_request,
)
from tradeops.errors import TradeopsError, UsageError

T0 = datetime(2024, 7, 5, 22, 0, tzinfo=UTC)


def test_write_then_pending_then_handled(tmp_path):
    p1 = write_retrain_request(tmp_path, reason="drift on IBM", tickers=["ibm"], requested_by="monitor", now=T0)
    p2 = write_retrain_request(tmp_path, reason="weekly", requested_by="cron", now=T0 + timedelta(seconds=1))
    assert p1.parent == requests_dir(tmp_path) == tmp_path / "requests" / "retrain"
    assert json.loads(p1.read_text())["tickers"] == ["IBM"]
    pending = pending_retrain_requests(tmp_path)
    assert [r.id for r in pending] == [p1.stem, p2.stem]  # oldest first
    assert pending[0].requested_at == T0.isoformat() and pending[1].tickers is None

    moved = mark_handled(tmp_path, p1.stem, handled_by="run key x", now=T0 + timedelta(minutes=1))
    assert not p1.exists() and moved.is_file()
    assert [r.id for r in pending_retrain_requests(tmp_path)] == [p2.stem]
    (done,) = handled_retrain_requests(tmp_path)
    assert done.id == p1.stem and done.handled_by == "run key x" and done.reason == "drift on IBM"
    assert done.handled_at == (T0 + timedelta(minutes=1)).isoformat()
    assert not list(requests_dir(tmp_path).rglob("*.tmp"))  # atomic writes leave no temporaries


def test_no_folder_means_no_requests(tmp_path):
    assert pending_retrain_requests(tmp_path) == [] and not (tmp_path / "requests").exists()


def test_marking_an_unknown_request_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=r"\[not_pending\]"):
        mark_handled(tmp_path, "nope", handled_by="x")


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"reason": " ", "requested_by": "m"}, "reason"),
        ({"reason": "r", "requested_by": ""}, "requested_by"),
        ({"reason": "r", "requested_by": "m", "tickers": [" "]}, "tickers"),
    ],
)
def test_bad_requests_are_refused(tmp_path, kwargs, rule):
    with pytest.raises(UsageError, match=rf"\[{rule}\]"):
        write_retrain_request(tmp_path, **kwargs)


def test_a_malformed_request_file_is_named_not_skipped(tmp_path):
    write_retrain_request(tmp_path, reason="r", requested_by="m")
    bad = requests_dir(tmp_path) / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(TradeopsError, match=r"broken\.json: \[retrain_request\]"):
        pending_retrain_requests(tmp_path)


def test_naive_time_is_refused(tmp_path):
    with pytest.raises(UsageError, match="time-zone aware"):
        write_retrain_request(tmp_path, reason="r", requested_by="m", now=datetime(2024, 1, 1))
