"""Sensors of the tradeops code location (filled in by the schedules/sensors work)."""

from __future__ import annotations

SENSORS: list = []
