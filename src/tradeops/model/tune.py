"""Hyper-parameter tuning with Optuna: TPE sampler + median pruner, search space and budget from config, an RDB
storage under the home directory so several workers (processes, machines sharing the database) join one study.

The objective is the validation macro-F1 of the default recipe on the holdout fold's fit/validation rows (the test
window is never touched while tuning).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tradeops.config import Settings
from tradeops.data import store as st
from tradeops.errors import UsageError
from tradeops.features.store import FeatureSet
from tradeops.model import registry as reg
from tradeops.model.windows import holdout_fold, horizon_of, split_rows


@dataclass
class TuneResult:
    study: str
    storage: str
    n_trials: int
    n_pruned: int
    best_value: float
    best_params: dict

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def storage_url(settings: Settings) -> str:
    return f"sqlite:///{(settings.home / 'optuna.db').resolve()}"


def run_tune(
    settings: Settings,
    *,
    preset: str,
    tickers: list[str],
    trials: int | None = None,
    storage: str | None = None,
    on_trial: Callable[[int, float | None, str], None] | None = None,
) -> TuneResult:
    import optuna

    from tradeops.model.cnn import CNNClassifier
    from tradeops.model.training import ensure_features, load_frame
    from tradeops.model.windows import fit_window

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    reg.reap_orphaned_runs(settings)  # runs of trainings killed earlier end KILLED (tuning logs no runs itself)
    cfg = settings.model
    space = cfg.tune
    if space.lr_min >= space.lr_max:
        raise UsageError(f"model.tune.lr_min {space.lr_min} must be < lr_max {space.lr_max}")
    fs = FeatureSet.from_preset(preset, settings.features.windows, settings.features.label_window)
    lake = st.lake_for(settings)
    tickers = sorted(set(tickers))
    ensure_features(lake, fs, tickers)
    frame = load_frame(lake, fs, tickers)
    fold = holdout_fold(
        frame["date"].unique(),
        test_days=cfg.test_days,
        train_years=cfg.train_years,
        embargo=cfg.embargo,
        val_fraction=max(cfg.val_fraction, 0.1),
        horizon=horizon_of(fs.label_window),
    )
    data = split_rows(frame, fs.names, fold)
    settings.home.mkdir(parents=True, exist_ok=True)
    url = storage or storage_url(settings)
    name = f"tune-{reg.model_name(preset, tickers)}"
    study = optuna.create_study(
        study_name=name,
        storage=url,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=cfg.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=5),
    )

    def objective(trial: optuna.Trial) -> float:
        clf = CNNClassifier(
            recipe="default",
            epochs=space.epochs,
            seed=cfg.seed,
            lr=trial.suggest_float("lr", space.lr_min, space.lr_max, log=True),
            batch_size=trial.suggest_categorical("batch_size", list(space.batch_sizes)),
            dense=trial.suggest_categorical("dense", list(space.dense_units)),
            dropout_dense=trial.suggest_float("dropout_dense", *space.dropout_dense),
        )

        def report(epoch: int, record: dict) -> None:
            trial.report(float(record["val_macro_f1"]), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}: val macro-F1 {record['val_macro_f1']:.3f} below median")

        window = fit_window(data, preset, fs.names, cfg, on_epoch=report, classifier=clf)
        best = max(h["val_macro_f1"] for h in window.classifier.history_)
        return float(best)

    def callback(study_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial:
            on_trial(trial.number, trial.value, trial.state.name)

    study.optimize(
        objective, n_trials=trials or space.trials, timeout=space.timeout_seconds, callbacks=[callback], catch=()
    )
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise UsageError(f"study {name}: no trial completed")
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return TuneResult(name, url, len(study.trials), pruned, float(study.best_value), dict(study.best_params))
