"""Model level: train, tune, evaluate, backtest, bless, package, register (CNN-TA, baselines, ONNX, MLflow)."""
