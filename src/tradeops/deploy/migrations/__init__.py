"""Alembic migrations of the service database (run by ``tradeops.deploy.predlog.upgrade``)."""
