"""The landing directory: ``<TICKER>.csv`` files dropped there trigger an ingest of that ticker.

A writer should write ``X.csv.tmp`` (or a hidden file) and rename it into place: only ``*.csv`` files whose stem is
a ticker are considered, so a half-written file under another name is never read. A file is identified by its
content (SHA-256): an unchanged file never triggers twice, a changed one does. ``size``/``mtime_ns`` only let a scan
reuse the hash of a file that was not touched since it was last hashed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from tradeops.errors import TradeopsError


@dataclass(frozen=True)
class LandingFile:
    """One landed file: its ticker (upper-cased stem), path, size in bytes, mtime in ns and content hash."""

    ticker: str
    path: Path
    size: int
    mtime_ns: int
    sha256: str

    @property
    def run_key(self) -> str:
        """Identity of this content for this ticker: the same bytes never ingest twice."""
        return f"landing:{self.ticker}:{self.sha256}"

    def fingerprint(self) -> dict:
        return {"path": str(self.path), "size": self.size, "mtime_ns": self.mtime_ns, "sha256": self.sha256}


@dataclass(frozen=True)
class LandingScan:
    """What a scan found: files of universe tickers, and ``*.csv`` files of tickers outside the universe."""

    files: list[LandingFile]
    foreign: list[Path]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def scan_landing(folder: Path, universe: Iterable[str], known: Mapping[str, Mapping] | None = None) -> LandingScan:
    """``<TICKER>.csv`` files in ``folder`` (not recursive; hidden files skipped), sorted by ticker.

    ``known`` maps ticker -> a previous :meth:`LandingFile.fingerprint`; when path, size and mtime match, its hash
    is reused instead of reading the file again. A missing folder holds nothing.
    """
    allowed = {t.upper() for t in universe}
    files: list[LandingFile] = []
    foreign: list[Path] = []
    if not folder.is_dir():
        return LandingScan(files, foreign)
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() != ".csv" or not path.is_file():
            continue
        ticker = path.stem.strip().upper()
        if ticker not in allowed:
            foreign.append(path)
            continue
        stat = path.stat()
        prev = (known or {}).get(ticker) or {}
        same = prev.get("path") == str(path) and prev.get("size") == stat.st_size
        if same and prev.get("mtime_ns") == stat.st_mtime_ns and prev.get("sha256"):
            digest = str(prev["sha256"])
        else:
            digest = _sha256(path)
        files.append(LandingFile(ticker, path, stat.st_size, stat.st_mtime_ns, digest))
    return LandingScan(sorted(files, key=lambda f: f.ticker), foreign)


def new_landing_files(scan: LandingScan, seen: Mapping[str, Mapping]) -> list[LandingFile]:
    """Files whose content differs from the last one that triggered for their ticker (``seen``: ticker ->
    fingerprint of the last triggering file)."""
    return [f for f in scan.files if (seen.get(f.ticker) or {}).get("sha256") != f.sha256]


def latest_session_in_file(path: Path, ticker: str, *, today: date, calendar: str = "XNYS") -> date:
    """The latest trading date among the file's bars that is on or before ``today`` (exchange date).

    An unreadable file, or one without any such session, is a :class:`TradeopsError` naming the ticker, the file
    and the rule."""
    from tradeops.data.calendar import trading_dates
    from tradeops.data.parse import parse_raw
    from tradeops.data.raw import RawFile

    try:
        content = path.read_bytes()
    except OSError as exc:
        raise TradeopsError(f"{ticker}: [landing_unreadable] cannot read {path}: {exc}") from exc
    parsed = parse_raw(RawFile(ticker=ticker, content=content, source="landing", location=str(path)))
    if parsed.frame is None or parsed.frame.empty:
        why = "; ".join(str(f) for f in parsed.findings[:3]) or "no bars"
        raise TradeopsError(f"{ticker}: [landing_unreadable] {path}: {why}")
    days = sorted({d.date() for d in parsed.frame["date"].dropna()})
    past = [d for d in days if d <= today]
    if past:
        sessions = set(trading_dates(past[0], past[-1], calendar))
        past = [d for d in past if d in sessions]
    if not past:
        raise TradeopsError(
            f"{ticker}: [landing_no_session] {path}: no bar on a {calendar} trading date on or before {today} "
            f"(file dates {days[0] if days else '-'}..{days[-1] if days else '-'})"
        )
    return past[-1]
