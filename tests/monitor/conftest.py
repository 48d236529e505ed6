"""Fixtures of the monitoring tests: a writable copy of the session's trained IBM home, rules files."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from homes import copy_home


@pytest.fixture()
def ibm_home(trained_ibm, tmp_path) -> Path:
    """A writable copy of the trained IBM home without its service database."""
    base, _ = trained_ibm
    return copy_home(base.home, tmp_path / "home", ignore=("service.db*",))


@pytest.fixture()
def write_rules(tmp_path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / f"rules-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write
