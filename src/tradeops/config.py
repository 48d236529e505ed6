"""One typed configuration: defaults < profile < ``tradeops.yaml`` < ``TRADEOPS_*`` env vars < explicit arguments.

The profile is the named environment (``dev``, ``staging``, ``prod``) selected by ``TRADEOPS_ENV``: the file
``<TRADEOPS_PROFILE_DIR or ./config>/<name>.yaml``. Unset, no profile applies; set to a name without a file, loading
fails. The same image runs in every environment; only ``TRADEOPS_ENV`` and the backend URLs differ.

Nested sections are overridden from the environment with a double underscore, e.g.
``TRADEOPS_INGEST__STALE_RUN=8``. Secrets (``ALPHAVANTAGE_API_KEY``) are never part of this model: they are read from
the environment at the moment of use so they cannot leak into logs, reports or MLflow params.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from tradeops.errors import ConfigError

CONFIG_FILE_ENV = "TRADEOPS_CONFIG"
DEFAULT_CONFIG_FILE = "tradeops.yaml"
PROFILE_ENV = "TRADEOPS_ENV"
PROFILE_DIR_ENV = "TRADEOPS_PROFILE_DIR"
DEFAULT_PROFILE_DIR = "config"
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
    split_tolerance: float = Field(
        0.015,
        gt=0,
        description="relative distance within which an open gap or an adjustment-factor step matches a split ratio",
    )
    split_window: int = Field(
        20,
        ge=2,
        description="sessions before and after a jump whose medians give the volume "
        "and day-range levels a split is judged on",
    )
    split_level_sessions: int = Field(
        10,
        ge=1,
        description="sessions after a jump whose median close must stay at the split's new level (no reversion)",
    )
    split_range_factor: float = Field(
        3.0,
        gt=1,
        description="a split day's range around its open is at most this "
        "times the median of the sessions before (an ordinary day)",
    )
    split_volume_tolerance: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="the median log volume after a split must "
        "shift by -log(price ratio) within this fraction of it (at least 0.15), and "
        "the later half of the window by at least half of it (persistent)",
    )
    split_spike_factor: float = Field(
        3.0,
        gt=1,
        description="a split day's volume is at most this times the higher "
        "of the volume level before and the level the split leads to (a news day "
        "spikes)",
    )
    split_level_tolerance: float = Field(
        0.1,
        gt=0,
        description="log distance of the median close after a jump from "
        "the split's new level (also at most half the log ratio)",
    )
    split_evidence_common: int = Field(
        2,
        ge=0,
        le=3,
        description="supporting signs (ordinary day range, no volume "
        "spike, volume shift) a jump at a common split ratio (2:1, 3:2, 3:1, 4:1, 1:5, "
        "1:10, 1:20) needs to be taken for an unadjusted split",
    )
    split_evidence_rare: int = Field(
        3, ge=0, le=3, description="supporting signs a jump at any other split ratio (5:4, 4:3, 4:5, 3:4, ...) needs"
    )
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
    label_window: int = Field(11, ge=3, description="odd window of the Sezer labeller (horizon = (w - 1) / 2)")

    @field_validator("label_window")
    @classmethod
    def _odd_window(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"must be odd (a centred window: 11 looks 5 days back and 5 ahead), got {value}")
        return value


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
    torch_threads: int = Field(
        2,
        ge=0,
        description="torch intra-op threads per training process (0: torch's default, one per core). A fixed "
        "count keeps CPU results bit-identical across machines; 2 measured 1.7-1.9x faster than 1 on 2 cores "
        "(bench/train.py); use 1 per process when folds run in parallel processes",
    )
    device: str = Field(
        "cpu",
        pattern=r"^(cpu|cuda(:[0-9]+)?)$",
        description="torch device of CNN training (cpu, cuda, cuda:N); CPU runs are bit-identical, GPU runs may "
        "differ in the last bits",
    )


class PipelinesConfig(_Section):
    """Dagster orchestration (``tradeops.pipelines``). Dates are exchange trading dates (XNYS sessions)."""

    universe: tuple[str, ...] = Field(
        ("AAPL", "FB", "GOOG", "IBM", "MSFT"), min_length=1, description="the static ticker partition set"
    )
    source: str = Field("sample", pattern="^(sample|csv|alphavantage)$", description="where `raw_bars` reads")
    source_path: Path | None = Field(None, description="directory of <TICKER>.csv files (source csv)")
    start_date: str = Field("2000-01-03", description="first trading-date partition (ISO date)")
    preset: str = Field("cnn-ta", pattern="^(thesis|cnn-ta)$", description="feature preset of the trained model")
    train_tickers: tuple[str, ...] = Field(("IBM",), min_length=1, description="tickers of the trained model")
    epochs: int | None = Field(None, ge=1, description="override the recipe's epochs in pipeline training")
    schedule_time: str = Field(
        "17:30", pattern="^[0-2][0-9]:[0-5][0-9]$", description="daily run time after the close, America/New_York"
    )
    catchup_sessions: int = Field(5, ge=1, description="missed trading days the schedule still catches up (once)")
    landing_dir: Path | None = Field(None, description="arriving files trigger ingest_daily; default <home>/landing")
    alert_webhook_url: str | None = Field(None, description="run failures are POSTed here as JSON")
    dagster_url: str = Field(
        "http://127.0.0.1:3000", description="base URL of the Dagster UI that alerts link a failed run to"
    )
    require_approval: bool = Field(
        False, description="a new blessed challenger waits for `tradeops promote` instead of the promotion sensor"
    )
    retry_max: int = Field(3, ge=0, description="retries of network steps (Alpha Vantage); deterministic steps: none")
    retry_delay_seconds: float = Field(2.0, ge=0, description="first retry delay; doubles each retry")
    sensor_interval_seconds: int = Field(30, ge=1)
    executor: str = Field(
        "multiprocess",
        pattern="^(in_process|multiprocess|celery|k8s)$",
        description="Dagster executor of every job: multiprocess on one machine; celery / k8s to scale out",
    )
    celery_broker: str = Field("pyamqp://guest@127.0.0.1:5672//", description="Celery broker URL (RabbitMQ or Redis)")
    celery_backend: str = Field("rpc://", description="Celery result backend URL")
    celery_queue: str = Field(
        "dagster",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Celery queue the steps are sent to and the workers listen on (`celery worker -Q`)",
    )


class ServiceConfig(_Section):
    """The signal service (``tradeops serve``). Latencies in milliseconds, intervals in seconds."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    auth: bool = Field(True, description="API keys required; off only by explicit config for local use")
    models: tuple[str, ...] = Field((), description="registered models to serve; empty: every one with a champion")
    routing_mode: str = Field("shadow", pattern="^(off|shadow|canary)$", description="what the challenger does")
    canary_share: float = Field(0.1, ge=0, le=1, description="share of (ticker, as_of) keys the challenger answers")
    poll_seconds: float = Field(10.0, gt=0, description="how often registry aliases are checked for a swap")
    max_batch: int = Field(500, ge=1, description="most items in one POST /v1/signals:batch")
    min_bars: int = Field(60, ge=1, description="fewest caller-supplied bars a request may carry")
    explain_top_k: int = Field(10, ge=1)
    state_seconds: float = Field(
        0.5,
        ge=0,
        description="how stale a worker's view of the shared halt/routing state may be: every worker re-reads it "
        "from the service database at most this often (0: on every request)",
    )
    log_batch_max: int = Field(256, ge=1, description="prediction-log rows committed together at most")
    log_batch_wait_ms: float = Field(1.0, ge=0, description="how long a commit waits to group more rows")


class MonitorConfig(_Section):
    """Monitoring (``tradeops monitor``): windows in trading days (sessions), thresholds unitless."""

    rules_path: Path | None = Field(None, description="rules YAML; default: the bundled rules (tradeops/monitor)")
    window_days: int = Field(
        60, ge=2, description="recent served sessions compared with the training reference (>= 30 rows needed)"
    )
    psi_bins: int = Field(10, ge=2, le=100, description="quantile bins of the reference for PSI")
    psi_threshold: float = Field(0.25, gt=0, description="per-feature PSI above this counts as drifted")
    ks_pvalue: float = Field(0.01, gt=0, lt=1, description="per-feature KS p-value below this counts as drifted")
    max_rows: int = Field(
        200_000, ge=100, description="most recent logged rows read per pass (a uniform subsample beyond)"
    )
    domain_sample: int = Field(2_000, ge=50, description="rows per side for the multivariate domain classifier")
    reference_rows: int = Field(2_000, ge=50, description="training rows kept with the model as drift reference")
    quality_window: int = Field(60, ge=5, description="matured served sessions in the rolling live-quality window")
    trading_window: int = Field(60, ge=5, description="sessions of paper trading in the rolling trading metrics")
    service_url: str | None = Field(
        None, description="the running signal service (e.g. http://127.0.0.1:8000); its /metrics feeds service.*"
    )
    seed: int = 0


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
    database_url: str | None = Field(
        None, description="prediction log, keys and audit (SQLAlchemy URL); default sqlite:///<home>/service.db"
    )
    pipelines: PipelinesConfig = PipelinesConfig()
    service: ServiceConfig = ServiceConfig()
    monitor: MonitorConfig = MonitorConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        for path in (config_path(), profile_path()):  # earlier wins: tradeops.yaml over the profile
            if path is not None and path.is_file():
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
    def service_database_url(self) -> str:
        """Prediction log / keys / audit database: configured, else a SQLite file under the home directory."""
        return self.database_url or f"sqlite:///{(self.home / 'service.db').resolve()}"

    @property
    def dagster_home(self) -> Path:
        """``DAGSTER_HOME`` of this home: instance storage (``dagster.yaml``), run and event logs."""
        return (self.home / "dagster").resolve()

    @property
    def landing_dir(self) -> Path:
        """Where arriving ``<TICKER>.csv`` files trigger ``ingest_daily``."""
        return self.pipelines.landing_dir or self.home / "landing"

    @property
    def artifact_root(self) -> str:
        return (self.home / "mlartifacts").resolve().as_uri()

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"


def config_path() -> Path:
    """The config file that applies: ``$TRADEOPS_CONFIG`` or ``./tradeops.yaml`` (it need not exist)."""
    return Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))


def profile_path() -> Path | None:
    """The profile file ``$TRADEOPS_ENV`` names (``<profile dir>/<name>.yaml``), or ``None`` when it is unset."""
    name = os.environ.get(PROFILE_ENV, "").strip()
    if not name:
        return None
    return Path(os.environ.get(PROFILE_DIR_ENV, DEFAULT_PROFILE_DIR)) / f"{name}.yaml"


def _yaml_marks(path: Path) -> tuple[dict[tuple[str, ...], int], str | None]:
    """Parse ``path`` as YAML: (line of every key path, problem or ``None``).

    A syntax error, a file that is not a mapping at the top, or an unreadable file is the problem, named with
    the file, the 1-based line and column and what the parser expected.
    """
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return {}, f"{path}: cannot be read ({exc})"
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown line"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        return {}, f"{path}: {where}: {problem}" + (f" ({context})" if context else "")
    if root is None:
        return {}, None
    if not isinstance(root, yaml.MappingNode):
        return (
            {},
            f"{path}: line {root.start_mark.line + 1}: the file must be a mapping of sections (e.g. "
            f"`model:` or `ingest:`), got a {root.tag.rsplit(':', 1)[-1]}",
        )
    marks: dict[tuple[str, ...], int] = {}

    def walk(node, prefix: tuple[str, ...]) -> None:
        for key, value in node.value:
            loc = (*prefix, str(key.value))
            marks[loc] = key.start_mark.line + 1
            if isinstance(value, yaml.MappingNode):
                walk(value, loc)

    walk(root, ())
    return marks, None


def load_settings(**overrides: Any) -> Settings:
    """Load and validate the configuration; a bad value is a :class:`ConfigError` naming the field (and, when it
    comes from the config file, the file and line); a malformed file names the file, line and problem."""
    path = config_path()
    profile = profile_path()
    if profile is not None and not profile.is_file():
        raise ConfigError(
            f"{PROFILE_ENV}={os.environ[PROFILE_ENV].strip()}: no profile file {profile} "
            f"(profiles are <{PROFILE_DIR_ENV} or ./{DEFAULT_PROFILE_DIR}>/<name>.yaml)"
        )
    if profile is not None:
        _, problem = _yaml_marks(profile)
        if problem:
            raise ConfigError(f"invalid configuration profile {problem}")
    marks: dict[tuple[str, ...], int] = {}
    if path.is_file():
        marks, problem = _yaml_marks(path)
        if problem:
            raise ConfigError(f"invalid configuration file {problem}")
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            line = next((marks[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in marks), None)
            where = f" ({path} line {line})" if line is not None else ""
            problems.append(f"{'.'.join(loc)}: {err['msg']}{where}")
        raise ConfigError(f"invalid configuration: {'; '.join(problems)}") from exc
    except (OSError, ValueError) as exc:  # unreadable file or a value pydantic-settings cannot decode
        raise ConfigError(f"invalid configuration file {path}: {exc}") from exc
