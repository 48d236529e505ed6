"""The simulation's journal under ``<home>/sim/``: the plan it was started with and one line per completed day.

``plan.json`` is written once; a later run in the same home must ask for the same plan (a resume) or is refused.
``days.jsonl`` gets one JSON line per completed trading day, appended and fsynced after the day's last step, so a
kill at any point loses at most the day in progress, which the next run does again from its start. A torn last
line (a kill inside the write) is dropped on read; a malformed line elsewhere is an error naming the line.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from tradeops.errors import TradeopsError, UsageError

__all__ = ["Plan", "Journal"]


@dataclass(frozen=True)
class Plan:
    """What a simulation replays: trading dates ``start``..``end`` (inclusive, exchange sessions), the tickers, the
    data source, the preset, how often monitoring runs (every ``monitor_every`` sessions) and the bootstrap
    training (champion and challenger trained as of the session before ``start`` with ``epochs``)."""

    start: str
    end: str
    tickers: tuple[str, ...]
    source: str
    path: str | None
    preset: str
    monitor_every: int
    epochs: int | None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tickers"] = list(self.tickers)
        return d

    @property
    def start_date(self) -> date:
        return date.fromisoformat(self.start)

    @property
    def end_date(self) -> date:
        return date.fromisoformat(self.end)


class Journal:
    """Reads and appends ``<home>/sim``'s plan and completed days."""

    def __init__(self, home: Path) -> None:
        self.dir = Path(home) / "sim"
        self.plan_path = self.dir / "plan.json"
        self.days_path = self.dir / "days.jsonl"

    def open(self, plan: Plan) -> list[dict[str, Any]]:
        """Start (write the plan) or resume (the stored plan must equal ``plan``); the completed days so far."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.plan_path.exists():
            stored = json.loads(self.plan_path.read_text())
            if stored != plan.to_dict():
                diff = sorted(k for k in plan.to_dict() if stored.get(k) != plan.to_dict()[k])
                raise UsageError(
                    f"--home {self.dir.parent}: [sim_plan] holds a simulation with a different plan "
                    f"({', '.join(f'{k}: {stored.get(k)!r}' for k in diff)}); resume it with the same arguments "
                    "or use a fresh --home"
                )
        else:
            tmp = self.plan_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(plan.to_dict(), indent=2, sort_keys=True))
            tmp.replace(self.plan_path)
        return self.days()

    def days(self) -> list[dict[str, Any]]:
        """Every completed day, in order (a torn final line from a kill is ignored)."""
        if not self.days_path.exists():
            return []
        lines = self.days_path.read_text().splitlines()
        out = []
        for i, line in enumerate(lines, 1):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                if i == len(lines):
                    break  # torn by a kill during the append: that day is simply not complete
                raise TradeopsError(f"{self.days_path}: line {i}: [journal] not JSON ({exc})") from exc
        return out

    def append(self, record: dict[str, Any]) -> None:
        """Record a completed day durably (append + fsync); a torn previous line is cut first."""
        if self.days_path.exists() and self.days_path.stat().st_size:
            with self.days_path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
            if torn:
                text = self.days_path.read_bytes()
                self.days_path.write_bytes(text[: text.rfind(b"\n") + 1])
        with self.days_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
