"""Jobs: ``ingest_daily`` (per date x ticker), ``train``, ``retrain``, ``promote`` and ``walkforward`` (per date).

Every job includes the checks of its assets; schedules and sensors target these names.
"""

import dagster as dg
from dagster import OpExecutionContext

from tradeops.config import Settings
from tradeops.errors import UsageError
from tradeops.model import registry as reg
from tradeops.pipelines.assets import INGEST_ASSETS, TRAINING_ASSETS
from tradeops.pipelines.sensors import MODEL_TAG, MODEL_VERSION_TAG, TRIGGER_TAG

INGEST_DAILY, TRAIN, RETRAIN, PROMOTE, WALKFORWARD = "ingest_daily", "train", "retrain", "promote", "walkforward"
MONITOR = "monitor"
JOB_NAMES = (INGEST_DAILY, TRAIN, RETRAIN, PROMOTE, WALKFORWARD, MONITOR)
PER_TICKER_JOBS = (INGEST_DAILY,)


@dg.op(
    description="Make the run's tagged model version champion (tags tradeops/model, tradeops/model_version), "
    "by registry alias with the reason recorded; the registry refuses an incomplete version."
)
def promote_tagged_version(context: OpExecutionContext, tradeops: dg.ResourceParam[Settings]) -> dg.Output:
    name, version = context.run.tags.get(MODEL_TAG), context.run.tags.get(MODEL_VERSION_TAG)
    if not name or not version:
        raise UsageError(f"promote: [promote_tags] the run needs tags {MODEL_TAG} and {MODEL_VERSION_TAG}")
    trigger = context.run.tags.get(TRIGGER_TAG, "manual")
    entry = reg.promote(tradeops, name, version, reason=f"blessed challenger ({trigger} via Dagster)")
    return dg.Output(entry, metadata={"model_name": name, "model_version": version, **_flat(entry)})


def _flat(entry: dict) -> dict[str, str]:
    return {str(k): str(v) for k, v in entry.items() if isinstance(v, (str, int, float, bool)) or v is None}


@dg.job(name=PROMOTE, description="Promote a registered, blessed version (what the challenger sensor requests).")
def promote_job() -> None:
    promote_tagged_version()


def build_jobs() -> list:
    """The jobs; each one's partitions are its assets' (date x ticker for ingest_daily, date for the others)."""
    return [
        dg.define_asset_job(
            INGEST_DAILY,
            selection=dg.AssetSelection.assets(*INGEST_ASSETS),
            description="Stage the day's raw file, run the Data-level checks, ingest, build features and labels.",
        ),
        dg.define_asset_job(
            TRAIN,
            selection=dg.AssetSelection.assets(*TRAINING_ASSETS),
            description="Train, evaluate, bless, register and promote as of the date.",
        ),
        dg.define_asset_job(
            RETRAIN,
            selection=dg.AssetSelection.assets(*TRAINING_ASSETS),
            tags={TRIGGER_TAG: "retrain"},
            description="The train job, requested by monitoring (continuous training).",
        ),
        promote_job,
        dg.define_asset_job(
            WALKFORWARD,
            selection=dg.AssetSelection.assets("walkforward_report"),
            description="Walk-forward evaluation as of the date.",
        ),
        dg.define_asset_job(
            MONITOR,
            selection=dg.AssetSelection.assets("monitoring"),
            description="Monitoring pass as of the date: monitors, rules, actions, report.",
        ),
    ]
