"""W4: listing 3-1's per-example regression 100-10-1, 2 epochs of batch-1 SGD (2000 steps), f64."""
from __future__ import annotations

import numpy as np

from .common import HERE, Arrays, Workload, frameworks_of, load_setup

DL = HERE / "w4_regression.dl"


def setup(small: bool):
    return load_setup(DL, batch=1, small_rows=16 if small else None)


def numpy_step(p: Arrays, b: Arrays) -> tuple[float, Arrays]:
    x, y = b["x"], b["y"]
    w2 = p["w2"]
    h = np.tanh(x @ p["w1"] + p["b1"])
    o = np.tanh(h @ w2 + p["b2"])
    d = y - o[:, 0]
    do = (-2 * d)[:, None] * (1 - o * o)
    dz1 = (do @ w2.T) * (1 - h * h)
    return float(d @ d), {"w1": x.T @ dz1, "b1": dz1.sum(axis=0), "w2": h.T @ do, "b2": np.sum(do)}


def make_loss(xp):
    def loss(p, b):
        o = xp.tanh(xp.tanh(b["x"] @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"])
        d = b["y"] - o[:, 0]
        return xp.sum(d * d)
    return loss


WORKLOAD = Workload("W4", "per-example regression 100-10-1, batch 1 (listing 3-1)", DL, "f64",
                    steps=2000, round_steps=500, setup=setup, runners=frameworks_of(make_loss, numpy_step))
