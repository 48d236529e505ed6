"""Alembic revision scripts (one file per revision; alembic loads them by path)."""
