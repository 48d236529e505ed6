"""Retrain requests: small JSON files that monitoring (or a person) writes and the ``retrain`` sensor consumes.

Layout under the home: ``requests/retrain/<id>.json`` is pending; once a run was requested for it, it moves to
``requests/retrain/handled/<id>.json`` with ``handled_at`` and ``handled_by`` added. Every write goes to a temporary
file in the same folder and is renamed into place, so a reader never sees half a request. Times are UTC ISO 8601.
Ids sort by request time (``YYYYMMDDTHHMMSSffffffZ-<8 hex>``).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from tradeops.errors import TradeopsError, UsageError

REQUESTS_DIR = ("requests", "retrain")
HANDLED = "handled"


@dataclass(frozen=True)
class RetrainRequest:
    """One request to retrain: why, for which tickers (``None``: the configured ones), by whom, when (UTC)."""

    id: str
    reason: str
    requested_by: str
    requested_at: str
    tickers: tuple[str, ...] | None = None
    handled_at: str | None = None
    handled_by: str | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["tickers"] = list(self.tickers) if self.tickers is not None else None
        return out


def requests_dir(home: Path) -> Path:
    """``<home>/requests/retrain`` (not created here)."""
    return Path(home).joinpath(*REQUESTS_DIR)


def _atomic_write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise UsageError(f"now={now.isoformat()} must be time-zone aware")
    return now.astimezone(UTC)


def write_retrain_request(
    home: Path,
    *,
    reason: str,
    tickers: list[str] | tuple[str, ...] | None = None,
    requested_by: str,
    now: datetime | None = None,
) -> Path:
    """Write a pending retrain request and return its path. ``reason`` and ``requested_by`` must be non-empty."""
    if not reason or not reason.strip():
        raise UsageError("retrain request: [reason] must say why the model is retrained")
    if not requested_by or not requested_by.strip():
        raise UsageError("retrain request: [requested_by] must name who asks (e.g. monitor)")
    picked: tuple[str, ...] | None = None
    if tickers is not None:
        picked = tuple(dict.fromkeys(t.strip().upper() for t in tickers if t.strip()))
        if not picked:
            raise UsageError("retrain request: [tickers] is empty; pass None for the configured tickers")
    at = _utc(now)
    rid = f"{at.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:8]}"
    request = RetrainRequest(
        id=rid, reason=reason.strip(), requested_by=requested_by.strip(), requested_at=at.isoformat(), tickers=picked
    )
    path = requests_dir(home) / f"{rid}.json"
    _atomic_write(path, request.to_dict())
    return path


def _read(path: Path) -> RetrainRequest:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        tickers = data.get("tickers")
        request = RetrainRequest(
            id=str(data["id"]),
            reason=str(data["reason"]),
            requested_by=str(data["requested_by"]),
            requested_at=str(data["requested_at"]),
            tickers=tuple(str(t) for t in tickers) if tickers is not None else None,
            handled_at=data.get("handled_at"),
            handled_by=data.get("handled_by"),
        )
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TradeopsError(
            f"retrain request {path}: [retrain_request] unreadable ({type(exc).__name__}: {exc})"
        ) from exc
    if request.id != path.stem:
        raise TradeopsError(f"retrain request {path}: [retrain_request] its id {request.id!r} differs from its name")
    return request


def pending_retrain_requests(home: Path) -> list[RetrainRequest]:
    """Pending requests, oldest first; a malformed file is a :class:`TradeopsError` naming it (never skipped)."""
    folder = requests_dir(home)
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.glob("*.json") if p.is_file() and not p.name.startswith("."))
    return [_read(p) for p in files]


def handled_retrain_requests(home: Path) -> list[RetrainRequest]:
    """Requests already turned into runs, oldest first."""
    folder = requests_dir(home) / HANDLED
    if not folder.is_dir():
        return []
    return [_read(p) for p in sorted(folder.glob("*.json")) if not p.name.startswith(".")]


def mark_handled(home: Path, request_id: str, *, handled_by: str, now: datetime | None = None) -> Path:
    """Move a pending request to ``handled/`` recording when and by what (e.g. a run key); returns the new path.

    The handled copy is written before the pending file is removed: a crash in between leaves both, and the
    request is requested again under the same id (a run key, so Dagster launches it once)."""
    pending = requests_dir(home) / f"{request_id}.json"
    if not pending.is_file():
        raise UsageError(f"retrain request {request_id}: [not_pending] no such pending request in {pending.parent}")
    request = _read(pending)
    done = replace(request, handled_at=_utc(now).isoformat(), handled_by=handled_by)
    target = requests_dir(home) / HANDLED / f"{request_id}.json"
    _atomic_write(target, done.to_dict())
    pending.unlink()
    return target
