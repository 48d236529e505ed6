"""Alembic environment of the service database (prediction log, API keys, audit).

Driven from code by ``tradeops.deploy.predlog.upgrade``, which passes an open connection in
``config.attributes["connection"]``; ``sqlalchemy.url`` is the fallback for running alembic by hand.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from tradeops.deploy.predlog import make_engine, metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations() -> None:
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url or pass a connection in config.attributes['connection']")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


run_migrations()
