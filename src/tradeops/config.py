"""One typed configuration: defaults < ``tradeops.yaml`` < ``TRADEOPS_*`` env vars < explicit arguments (CLI flags).

Nested sections are overridden from the environment with a double underscore, e.g.
``TRADEOPS_INGEST__STALE_RUN=8``. Secrets (``ALPHAVANTAGE_API_KEY``) are never part of this model: they are read from
the environment at the moment of use so they cannot leak into logs, reports or MLflow params.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from tradeops.errors import ConfigError

CONFIG_FILE_ENV = "TRADEOPS_CONFIG"
DEFAULT_CONFIG_FILE = "tradeops.yaml"
ALPHAVANTAGE_KEY_ENV = "ALPHAVANTAGE_API_KEY"
ALPHAVANTAGE_PUBLIC_URL = "https://www.alphavantage.co/query"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestConfig(_Section):
    """Rules of the Data level. Returns are simple daily returns of the adjusted close (fractions, 0.1 = 10 %)."""

    calendar: str = Field("XNYS", description="exchange_calendars code used to tell a missing day from a holiday")
    min_history_rows: int = Field(250, ge=1, description="fewer bars than this is a warning (too little history)")
    stale_run: int = Field(5, ge=2, description="this many identical consecutive closes (OHLC flat) = stale series")
    zero_volume_run: int = Field(5, ge=2, description="this many consecutive zero-volume bars = rejected")
    jump_warn: float = Field(0.25, gt=0, description="|adjusted return| above this is a warning (a real move)")
    split_tolerance: float = Field(0.015, gt=0, description="a raw jump within this of a split ratio is a split")
    range_factor: float = Field(5.0, gt=1, description="prices beyond stored max*f or min/f are out of range")
    conflict_rtol: float = Field(1e-6, ge=0, description="relative tolerance for raw values vs stored values")
    drift_ks_warn: float = Field(0.3, gt=0, le=1, description="KS statistic of returns vs stored data that warns")
    drift_min_rows: int = Field(60, ge=5, description="new rows needed before drift is measured")
    max_gap_sessions: int = Field(10, ge=1, description="a run of missing sessions longer than this is rejected")


class AlphaVantageConfig(_Section):
    function: str = Field("TIME_SERIES_DAILY_ADJUSTED", pattern="^TIME_SERIES_DAILY(_ADJUSTED)?$")
    datatype: str = Field("csv", pattern="^(csv|json)$")
    outputsize: str = Field("auto", pattern="^(auto|full|compact)$", description="auto: compact when incremental")
    max_retries: int = Field(4, ge=0)
    backoff_seconds: float = Field(2.0, ge=0, description="first retry delay; doubles each retry")
    timeout_seconds: float = Field(30.0, gt=0)


class FeaturesConfig(_Section):
    """Feature set defaults. Windows are in trading days; the label window is odd (Sezer: 11 -> horizon 5)."""

    preset: str = Field("thesis", pattern="^(thesis|cnn-ta)$")
    windows: tuple[int, ...] = Field(tuple(range(6, 21)), min_length=1)
    label_window: int = Field(11, ge=3)


class CostsConfig(_Section):
    """Realistic-mode trading costs, in basis points of traded value (plus a fixed amount per transaction)."""

    commission_bps: float = Field(5.0, ge=0)
    slippage_bps: float = Field(5.0, ge=0)
    fixed_per_trade: float = Field(0.0, ge=0)


class BlessingSection(_Section):
    """Promotion gate: absolute floors, then beat the champion on the primary metric by a margin."""

    min_recall_buy: float = Field(0.10, ge=0, le=1)
    min_recall_sell: float = Field(0.10, ge=0, le=1)
    min_macro_f1: float = Field(0.30, ge=0, le=1)
    min_net_sharpe: float | None = 0.0
    primary_metric: str = "net_sharpe"
    higher_is_better: bool = True
    champion_margin: float = Field(0.05, ge=0)
    auto_promote: bool = Field(True, description="a blessed challenger becomes champion without a human")


class TuneConfig(_Section):
    """Optuna search space (log-uniform lr; categorical batch/dense) and budget."""

    trials: int = Field(10, ge=1)
    timeout_seconds: float | None = Field(None, gt=0)
    lr_min: float = Field(1e-4, gt=0)
    lr_max: float = Field(3e-3, gt=0)
    batch_sizes: tuple[int, ...] = (128, 256, 512)
    dense_units: tuple[int, ...] = (64, 128, 256)
    dropout_dense: tuple[float, float] = (0.2, 0.6)
    epochs: int = Field(30, ge=1)


class ModelConfig(_Section):
    """Training and evaluation. Windows are in trading days unless named in years; seeds make CPU runs exact."""

    recipe: str = Field("default", pattern="^(paper|default)$")
    epochs: int | None = Field(None, ge=1, description="None: the recipe's default (paper 200, default <=100)")
    batch_size: int | None = Field(None, ge=1)
    seed: int = 0
    train_years: float = Field(5.0, gt=0)
    test_days: int = Field(504, ge=20, description="holdout for `train`: the last ~2 years of trading days")
    val_fraction: float = Field(0.15, ge=0, lt=0.5)
    embargo: int = Field(5, ge=0, description="trading days between train/val/test (>= label horizon)")
    mode: str = Field("realistic", pattern="^(paper|realistic)$")
    costs: CostsConfig = CostsConfig()
    blessing: BlessingSection = BlessingSection()
    tune: TuneConfig = TuneConfig()
    baselines: bool = Field(True, description="evaluate LightGBM and rule baselines on the same windows")


class Settings(BaseSettings):
    """The whole configuration. ``home`` holds all state; deleting it resets everything."""

    model_config = SettingsConfigDict(
        env_prefix="TRADEOPS_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    home: Path = Field(Path(".tradeops"), description="all state lives here (lake, mlflow, reports)")
    lake_uri: str | None = Field(None, description="Delta tables root; default <home>/lake")
    alphavantage_base_url: str = ALPHAVANTAGE_PUBLIC_URL
    ingest: IngestConfig = IngestConfig()
    alphavantage: AlphaVantageConfig = AlphaVantageConfig()
    features: FeaturesConfig = FeaturesConfig()
    model: ModelConfig = ModelConfig()
    mlflow_tracking_uri: str | None = Field(None, description="default sqlite:///<home>/mlflow.db")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path.is_file():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    @property
    def lake(self) -> str:
        """Root of the Delta tables: a local path or an object-store URI."""
        return self.lake_uri or str(self.home / "lake")

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI: configured, else a SQLite file under the home directory."""
        return self.mlflow_tracking_uri or f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> str:
        return (self.home / "mlartifacts").resolve().as_uri()

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"


def load_settings(**overrides: Any) -> Settings:
    """Load and validate the configuration; a bad value is a :class:`ConfigError` naming the field."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
    except (OSError, ValueError) as exc:  # unreadable or malformed YAML
        raise ConfigError(f"invalid configuration file: {exc}") from exc
