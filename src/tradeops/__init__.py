"""tradeops: DataOps + MLOps for trading-signal models."""

__version__ = "0.1.0"
