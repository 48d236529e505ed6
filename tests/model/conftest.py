"""Fixtures of the model tests: synthetic, learnable 15 x 15 images shared by the classifier tests."""

from __future__ import annotations

import numpy as np
import pytest

SIDE = 15


def make_images(n: int, seed: int, p: tuple[float, float, float] = (0.2, 0.2, 0.6)) -> tuple[np.ndarray, np.ndarray]:
    """Learnable images: BUY rows have a bright top-left block, SELL rows a bright bottom-right block."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=p)
    X = rng.uniform(0.0, 0.5, size=(n, 1, SIDE, SIDE)).astype(np.float32)
    X[y == 0, 0, :5, :5] += 0.5
    X[y == 1, 0, -5:, -5:] += 0.5
    return X, y


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = make_images(300, seed=0)
    X_val, y_val = make_images(200, seed=1)
    return X, y, X_val, y_val
