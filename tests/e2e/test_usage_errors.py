"""Usage errors are usage errors: checks on arguments and config run before any work and exit 2 with a message.

Each test is named after what broke in the field (Wave 2 · 1).
"""

from __future__ import annotations

import time

import pytest


@pytest.fixture(scope="module")
def ibm_home(tmp_path_factory, tradeops):
    """A home holding the sample's IBM bars only (no features built)."""
    home = tmp_path_factory.mktemp("usage") / "home"
    result = tradeops(home, "ingest", "--source", "sample", "--tickers", "IBM")
    assert result.exit_code == 0, result.output
    return home


def _config(tmp_path, text: str):
    path = tmp_path / "tradeops.yaml"
    path.write_text(text)
    return path


def test_malformed_config_file_is_exit_2_naming_file_line_and_problem(tradeops, tmp_path):
    cfg = _config(tmp_path, "model:\n  epochs: 3\n  recipe: [paper\ningest:\n  stale_run: 4\n")
    result = tradeops(tmp_path / "home", "--config", cfg, "catalog")
    assert result.exit_code == 2, result.output
    assert str(cfg) in result.stderr
    assert "line " in result.stderr and "column" in result.stderr
    assert "Traceback" not in result.output


def test_malformed_config_file_does_not_break_help(tradeops, tmp_path):
    cfg = _config(tmp_path, "model: {epochs: 3\n")
    for args in (["--help"], ["ingest", "--help"], ["walkforward", "--help"], ["features", "build", "--help"]):
        result = tradeops(tmp_path / "home", "--config", cfg, *args)
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.stdout


def test_config_file_that_is_not_a_mapping_is_exit_2(tradeops, tmp_path):
    cfg = _config(tmp_path, "- model\n- ingest\n")
    result = tradeops(tmp_path / "home", "--config", cfg, "catalog")
    assert result.exit_code == 2
    assert "must be a mapping" in result.stderr and "line 1" in result.stderr


def test_invalid_value_in_config_file_names_its_line(tradeops, tmp_path):
    cfg = _config(tmp_path, "ingest:\n  stale_run: 4\nmodel:\n  embargo: -3\n")
    result = tradeops(tmp_path / "home", "--config", cfg, "catalog")
    assert result.exit_code == 2
    assert "model.embargo" in result.stderr and f"{cfg} line 4" in result.stderr


def test_even_label_window_is_rejected_by_config_validation(tradeops, tmp_path):
    cfg = _config(tmp_path, "features:\n  label_window: 10\n")
    home = tmp_path / "home"
    result = tradeops(home, "--config", cfg, "features", "build", "--preset", "cnn-ta")
    assert result.exit_code == 2, result.output
    assert "features.label_window" in result.stderr and "odd" in result.stderr
    assert not (home / "lake").exists()  # nothing was started, so no empty table folder is left behind


def test_even_label_window_from_the_environment_is_rejected(tradeops, tmp_path):
    result = tradeops(tmp_path / "home", "catalog", env={"TRADEOPS_FEATURES__LABEL_WINDOW": "8"})
    assert result.exit_code == 2
    assert "features.label_window" in result.stderr


def test_reversed_test_year_range_says_reversed(tradeops, tmp_path):
    result = tradeops(tmp_path / "home", "walkforward", "--tickers", "IBM", "--test-years", "2012-2007")
    assert result.exit_code == 2
    assert "reversed range" in result.stderr and "2007-2012" in result.stderr


@pytest.mark.parametrize("value", ["0", "-1"])
def test_train_years_zero_is_a_usage_error_before_any_work(tradeops, ibm_home, value):
    started = time.perf_counter()
    result = tradeops(ibm_home, "walkforward", "--tickers", "IBM", "--train-years", value, "--test-years", "2010")
    assert result.exit_code == 2, result.output
    assert "--train-years must be a positive" in result.stderr
    assert time.perf_counter() - started < 5  # rejected up front, not after building features


def test_test_year_outside_the_data_is_a_usage_error_before_any_work(tradeops, ibm_home):
    features_before = [p.name for p in (ibm_home / "lake").iterdir()]
    result = tradeops(ibm_home, "walkforward", "--tickers", "IBM", "--test-years", "2019-2020")
    assert result.exit_code == 2, result.output
    assert "2019, 2020 outside the stored history (IBM 2000-2013)" in result.stderr
    assert [p.name for p in (ibm_home / "lake").iterdir()] == features_before  # no feature table was built


def test_walkforward_on_a_ticker_without_bars_is_a_usage_error(tradeops, ibm_home):
    result = tradeops(ibm_home, "walkforward", "--tickers", "ZZZZ", "--test-years", "2010")
    assert result.exit_code == 2
    assert "no bars stored for ZZZZ" in result.stderr


@pytest.mark.parametrize("command", [["train"], ["walkforward", "--test-years", "2010"], ["tune"]])
def test_unknown_preset_is_a_usage_error_naming_the_valid_ones(tradeops, ibm_home, command):
    result = tradeops(ibm_home, *command, "--tickers", "IBM", "--preset", "cnn_ta")
    assert result.exit_code == 2, result.output
    assert "'cnn_ta' is unknown" in result.stderr and "cnn-ta" in result.stderr


def test_implausible_test_year_is_a_usage_error(tradeops, tmp_path):
    result = tradeops(tmp_path / "home", "walkforward", "--tickers", "IBM", "--test-years", "20100")
    assert result.exit_code == 2
    assert "not a plausible calendar year" in result.stderr
