"""Config profiles (``TRADEOPS_ENV``): defaults < profile < tradeops.yaml < TRADEOPS_* env vars < explicit args."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tradeops.config import load_settings
from tradeops.errors import ConfigError

REPO_PROFILES = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No developer TRADEOPS_* variables, no tradeops.yaml; the working directory is ``tmp_path``."""
    for key in list(os.environ):
        if key.startswith("TRADEOPS_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _profile(directory: Path, name: str, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(text, encoding="utf-8")


def test_no_profile_without_tradeops_env(clean_env: Path) -> None:
    _profile(clean_env / "config", "dev", "service:\n  port: 9001\n")
    assert load_settings().service.port == 8000


def test_profile_over_defaults_from_the_default_directory(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _profile(clean_env / "config", "staging", "service:\n  port: 9001\n  workers: 3\n")
    monkeypatch.setenv("TRADEOPS_ENV", "staging")
    settings = load_settings()
    assert (settings.service.port, settings.service.workers) == (9001, 3)
    assert settings.service.host == "127.0.0.1"  # untouched fields keep the defaults


def test_precedence_profile_file_env_args(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profiles = clean_env / "profiles"
    _profile(profiles, "prod", "service:\n  port: 9001\n  workers: 4\n  max_batch: 10\n  min_bars: 70\n")
    (clean_env / "tradeops.yaml").write_text("service:\n  port: 9002\n  workers: 5\n  max_batch: 20\n")
    monkeypatch.setenv("TRADEOPS_ENV", "prod")
    monkeypatch.setenv("TRADEOPS_PROFILE_DIR", str(profiles))
    monkeypatch.setenv("TRADEOPS_SERVICE__WORKERS", "6")
    monkeypatch.setenv("TRADEOPS_SERVICE__PORT", "9003")
    settings = load_settings(home=clean_env / "h", service={"port": 9004})
    # sections merge field by field across the sources: each field comes from the highest source that sets it
    assert settings.service.port == 9004  # explicit argument over everything
    assert settings.service.workers == 6  # env var over tradeops.yaml and the profile
    assert settings.service.max_batch == 20  # tradeops.yaml over the profile
    assert settings.service.min_bars == 70  # the profile over the default
    assert settings.service.log_batch_max == 256  # the default


def test_unknown_profile_is_an_error_naming_it(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEOPS_ENV", "qa")
    with pytest.raises(ConfigError, match=r"TRADEOPS_ENV=qa: no profile file config/qa\.yaml"):
        load_settings()


def test_malformed_profile_names_file_and_line(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _profile(clean_env / "config", "dev", "service:\n  port: [9001\n")
    monkeypatch.setenv("TRADEOPS_ENV", "dev")
    with pytest.raises(ConfigError, match=r"profile config/dev\.yaml: line \d+"):
        load_settings()


def test_invalid_profile_value_names_the_field(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _profile(clean_env / "config", "dev", "service:\n  routing_mode: sometimes\n")
    monkeypatch.setenv("TRADEOPS_ENV", "dev")
    with pytest.raises(ConfigError, match=r"service\.routing_mode"):
        load_settings()


@pytest.mark.parametrize("name", ["dev", "staging", "prod"])
def test_committed_profiles_load(clean_env: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("TRADEOPS_ENV", name)
    monkeypatch.setenv("TRADEOPS_PROFILE_DIR", str(REPO_PROFILES))
    settings = load_settings()
    assert settings.service.auth is True
    if name == "prod":
        assert settings.pipelines.require_approval is True
