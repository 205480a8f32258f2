"""Small, fast training components used by the tune and TFJob tests (real data, milliseconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from claimed_airflow.core import InputPath, OutputPath, component


@component("train", name="logistic_german")
def logistic_german(
    data: InputPath, learning_rate: float = 0.1, epochs: int = 20, l2: float = 0.0, model: OutputPath = "model.json"
) -> dict:
    """Logistic regression by gradient descent on the German credit data; accuracy on the last 300 rows.

    :param data: german.data (UCI Statlog, space separated, last column 1=good 2=bad).
    :param learning_rate: Step size.
    :param epochs: Passes over the training rows.
    :param l2: L2 penalty.
    :param model: The weights (JSON).
    """
    import numpy as np

    frame = pd.read_csv(data, sep=" ", header=None)
    y = (frame.pop(20) == 1).to_numpy(float)
    x = pd.get_dummies(frame, dtype=float)
    x = ((x - x.mean()) / (x.std() + 1e-9)).to_numpy()
    x = np.hstack([x, np.ones((len(x), 1))])
    train, test = slice(0, 700), slice(700, None)
    w = np.zeros(x.shape[1])
    for _ in range(epochs):
        p = 1 / (1 + np.exp(-x[train] @ w))
        w -= learning_rate * (x[train].T @ (p - y[train]) / 700 + l2 * w)
    accuracy = float(((x[test] @ w > 0) == (y[test] == 1)).mean())
    Path(model).write_text(json.dumps(w.tolist()))
    return {"accuracy": accuracy}
