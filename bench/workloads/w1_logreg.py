"""W1: listing 4-10's logistic regression, full batch 1000x100, 1000 steps, f64."""
from __future__ import annotations

import numpy as np

from .common import HERE, Arrays, Workload, frameworks_of, load_setup

DL = HERE / "w1_logreg.dl"


def setup(small: bool):
    return load_setup(DL, batch=64 if small else 1000, small_rows=64 if small else None)


def numpy_step(p: Arrays, b: Arrays) -> tuple[float, Arrays]:
    x, y, w = b["x"], b["y"], p["w"]
    q = 1 / (1 + np.exp(-(x @ w) - p["b"]))
    loss = np.mean(-(y * np.log(q) + (1 - y) * np.log(1 - q))) + 0.01 * np.sum(w * w)
    dz = (q - y) / len(y)  # d mean(BCE(sigmoid(z), y)) / dz
    return loss, {"w": x.T @ dz + 0.02 * w, "b": np.sum(dz)}


def make_loss(xp):
    def loss(p, b):
        x, y, w = b["x"], b["y"], p["w"]
        q = 1 / (1 + xp.exp(-(x @ w) - p["b"]))
        return xp.mean(-(y * xp.log(q) + (1 - y) * xp.log(1 - q))) + 0.01 * xp.sum(w ** 2)
    return loss


WORKLOAD = Workload("W1", "logistic regression, full batch 1000x100 (listing 4-10)", DL, "f64",
                    steps=1000, round_steps=200, setup=setup, runners=frameworks_of(make_loss, numpy_step))
