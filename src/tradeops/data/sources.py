"""Data sources, one interface: ``fetch(tickers, stored_last) -> list[RawFile]`` (raw bytes plus provenance).

``stored_last`` maps ticker -> last stored trading date so a source can fetch incrementally.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Protocol

from tradeops.data.raw import RawFile
from tradeops.errors import UsageError

SAMPLE_PACKAGE = "tradeops.sample_data"


class Source(Protocol):
    name: str

    def fetch(self, tickers: list[str] | None, stored_last: dict[str, date]) -> list[RawFile]:
        """Raw payloads for ``tickers`` (all available when ``None``)."""
        ...


def _pick(available: Mapping[str, object], tickers: list[str] | None, where: str) -> list[str]:
    if not tickers:
        return sorted(available)
    missing = [t for t in tickers if t not in available]
    if missing:
        raise UsageError(
            f"no data for ticker(s) {', '.join(missing)} in {where}; available: "
            f"{', '.join(sorted(available)) or 'none'}"
        )
    return list(dict.fromkeys(tickers))


class CsvSource:
    """A directory of per-ticker CSV files named ``<TICKER>.csv`` (Yahoo-style or Alpha Vantage layouts)."""

    name = "csv"

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def files(self) -> dict[str, list[Path]]:
        if not self.path.is_dir():
            raise UsageError(f"--path {self.path} is not a directory")
        found: dict[str, list[Path]] = {}
        for p in sorted(self.path.iterdir()):
            if p.is_file() and p.suffix.lower() == ".csv":
                found.setdefault(p.stem.strip().upper(), []).append(p)
        if not found:
            raise UsageError(f"no *.csv files in {self.path}")
        return found

    def fetch(self, tickers: list[str] | None, stored_last: dict[str, date]) -> list[RawFile]:
        found = self.files()
        out = []
        for t in _pick(found, tickers, str(self.path)):
            for p in found[t]:
                out.append(
                    RawFile(
                        ticker=t,
                        content=p.read_bytes(),
                        source=self.name,
                        location=str(p),
                        declared_size=p.stat().st_size,
                    )
                )
        return out


class SampleSource:
    """The embedded default dataset: public-domain daily bars (Quandl WIKI) bundled in the package."""

    name = "sample"

    def fetch(self, tickers: list[str] | None, stored_last: dict[str, date]) -> list[RawFile]:
        root = resources.files(SAMPLE_PACKAGE)
        found = {p.name[:-4].upper(): p for p in root.iterdir() if p.name.endswith(".csv")}
        out = []
        for t in _pick(found, tickers, "the bundled sample"):
            content = found[t].read_bytes()
            out.append(
                RawFile(
                    ticker=t,
                    content=content,
                    source=self.name,
                    location=f"package:{SAMPLE_PACKAGE}/{found[t].name}",
                    declared_size=len(content),
                )
            )
        return out

    @staticmethod
    def provenance() -> str:
        return resources.files(SAMPLE_PACKAGE).joinpath("PROVENANCE.md").read_text()
