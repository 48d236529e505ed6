"""Progress shows on every long command: plain periodic lines when stderr is not a terminal (CI, pipes)."""

from __future__ import annotations

import io

from tradeops.cli.common import PlainProgress


def test_plain_progress_prints_each_new_step_and_throttles_repeats():
    now = [0.0]
    out = io.StringIO()
    bar = PlainProgress(out, interval=10.0, clock=lambda: now[0])
    bar.update(0, description="features")
    now[0] = 1.0
    bar.update(0, description="features")  # same step within the interval: silent
    bar.update(0, description="epoch 1", completed=1, total=3)
    now[0] = 2.0
    bar.update(0, description="epoch 2")  # the same kind of step within the interval: silent
    now[0] = 12.5
    bar.update(0, description="epoch 9", completed=2, total=3)  # interval passed: printed with the count
    bar.update(0, description="evaluating")  # a new step: printed at once
    lines = out.getvalue().splitlines()
    assert lines == ["[   0.0s] features", "[   1.0s] epoch 1 1/3", "[  12.5s] epoch 9 2/3", "[  12.5s] evaluating"]


def test_piped_cli_commands_log_progress_lines(tradeops, tmp_path):
    result = tradeops(tmp_path / "home", "ingest", "--source", "sample", "--tickers", "IBM")
    assert result.exit_code == 0
    assert "validating IBM 0/1" in result.stderr
