"""Monitoring: pure monitors over the prediction log, bars, labels and the model's training reference; rules that
turn their metrics into alerts and actions (notify, retrain, rollback, halt, resume), with cooldowns and an audit
trail; the monitoring report. ``tradeops monitor`` and the Dagster ``monitor`` job call :func:`run.monitor_pass`."""
