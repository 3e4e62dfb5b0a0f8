"""W2: listing 4-12's two-layer 100-10-1 tanh network, full batch 1000x100, 1000 steps, f64."""
from __future__ import annotations

import numpy as np

from .common import HERE, Arrays, Workload, frameworks_of, load_setup

DL = HERE / "w2_tanh_net.dl"


def setup(small: bool):
    return load_setup(DL, batch=64 if small else 1000, small_rows=64 if small else None)


def numpy_step(p: Arrays, b: Arrays) -> tuple[float, Arrays]:
    x, y = b["x"], b["y"]
    w1, w2 = p["w1"], p["w2"]
    p1 = np.tanh(x @ w1 + p["b1"])
    p2 = np.tanh(p1 @ w2 + p["b2"])
    with np.errstate(invalid="ignore"):  # log(p2 <= 0) is NaN, as in the book: only the value
        loss = np.mean(-(y * np.log(p2) + (1 - y) * np.log(1 - p2))) + 0.01 * (np.sum(w1 * w1) + np.sum(w2 * w2))
    dp2 = (-(y / p2) + (1 - y) / (1 - p2)) / len(y)
    dz2 = dp2 * (1 - p2 * p2)
    dz1 = np.outer(dz2, w2) * (1 - p1 * p1)
    return loss, {"w1": x.T @ dz1 + 0.02 * w1, "b1": dz1.sum(axis=0),
                  "w2": p1.T @ dz2 + 0.02 * w2, "b2": np.sum(dz2)}


def make_loss(xp):
    def loss(p, b):
        x, y = b["x"], b["y"]
        p1 = xp.tanh(x @ p["w1"] + p["b1"])
        p2 = xp.tanh(p1 @ p["w2"] + p["b2"])
        return (xp.mean(-(y * xp.log(p2) + (1 - y) * xp.log(1 - p2)))
                + 0.01 * (xp.sum(p["w1"] ** 2) + xp.sum(p["w2"] ** 2)))
    return loss


WORKLOAD = Workload("W2", "two-layer 100-10-1 tanh net, full batch (listing 4-12)", DL, "f64",
                    steps=1000, round_steps=200, setup=setup, runners=frameworks_of(make_loss, numpy_step))
