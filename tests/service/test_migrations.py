"""Alembic migrations of the service database: upgrade from empty, idempotent, matches the table definitions."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from logrows import upgrade_concurrently

from tradeops.deploy import predlog

TABLES = {"predictions", "api_keys", "audit", "service_state", "monitor_events", "monitor_metrics"}


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'service.db'}"


def tables(url: str) -> set[str]:
    engine = predlog.make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_an_empty_database_creates_every_table(url):
    assert predlog.current_revision(url) is None
    assert tables(url) == set()
    predlog.upgrade(url)
    assert tables(url) == TABLES | {"alembic_version"}
    assert predlog.current_revision(url) == predlog.head_revision() == "0003"


def test_upgrade_twice_is_a_no_op_and_keeps_rows(url):
    predlog.upgrade(url)
    engine = predlog.make_engine(url)
    predlog.audit(engine, key_id=None, action="halt", arguments={}, result={}, ok=True)
    predlog.upgrade(url)
    assert predlog.current_revision(url) == predlog.head_revision()
    assert len(predlog.audit_rows(engine)) == 1
    engine.dispose()


def test_migration_matches_the_table_definitions(url):
    """The live ``predlog.metadata`` and what the migrations create must not drift (autogenerate: no difference)."""
    predlog.upgrade(url)
    engine = predlog.make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), predlog.metadata)
    engine.dispose()
    assert diff == []


def test_concurrent_upgrades_of_a_fresh_database_all_succeed(url):
    assert upgrade_concurrently(url) == []
    assert predlog.current_revision(url) == "0003"


def test_upgrade_works_on_an_in_memory_engine():
    engine = predlog.make_engine("sqlite://")
    predlog.upgrade(engine)
    assert set(sa.inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
    assert predlog.current_revision(engine) == "0003"


def test_open_database_creates_the_folder_and_upgrades(tmp_path):
    url = f"sqlite:///{tmp_path / 'new' / 'home' / 'service.db'}"
    engine = predlog.open_database(url)
    assert set(sa.inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


def test_migrations_ship_inside_the_package():
    names = {p.name for p in predlog.MIGRATIONS_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert {"env.py", "script.py.mako", "0001_initial.py", "0002_service_state.py"} <= names
    assert predlog.MIGRATIONS_DIR.is_relative_to(Path(predlog.__file__).parent)
