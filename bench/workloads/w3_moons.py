"""W3: the 2-1000-2 moons network (listing 8-3), batch size 1, 2000 steps, f64."""
from __future__ import annotations

import numpy as np

from .common import HERE, Arrays, Workload, frameworks_of, load_setup

DL = HERE / "w3_moons.dl"
REG = 1 / 100 * 0.01 / 2  # the program's loss_reg coefficient


def setup(small: bool):
    return load_setup(DL, batch=1, small_rows=16 if small else None)


def numpy_step(p: Arrays, b: Arrays) -> tuple[float, Arrays]:
    x, y = b["x"], b["y"]
    W1, W2 = p["W1"], p["W2"]
    a1 = np.tanh(x @ W1 + p["b1"])
    z2 = a1 @ W2 + p["b2"]
    m = z2.max(axis=1, keepdims=True)
    e = np.exp(z2 - m)
    s = e.sum(axis=1, keepdims=True)
    n = len(x)
    loss = -np.sum(y * (z2 - m - np.log(s))) / n + REG * (np.sum(W1 * W1) + np.sum(W2 * W2))
    dz2 = (e / s * y.sum(axis=1, keepdims=True) - y) / n
    dz1 = (dz2 @ W2.T) * (1 - a1 * a1)
    return loss, {"W1": x.T @ dz1 + 2 * REG * W1, "b1": dz1.sum(axis=0),
                  "W2": a1.T @ dz2 + 2 * REG * W2, "b2": dz2.sum(axis=0)}


def make_loss(xp):
    def loss(p, b):
        x, y = b["x"], b["y"]
        a1 = xp.tanh(x @ p["W1"] + p["b1"])
        z2 = a1 @ p["W2"] + p["b2"]
        m = xp.max(z2, axis=1, keepdims=True)
        logp = z2 - m - xp.log(xp.sum(xp.exp(z2 - m), axis=1, keepdims=True))
        return xp.mean(-xp.sum(y * logp, axis=1)) + REG * (xp.sum(p["W1"] ** 2) + xp.sum(p["W2"] ** 2))
    return loss


WORKLOAD = Workload("W3", "moons 2-1000-2 net, batch 1 (listing 8-3)", DL, "f64",
                    steps=2000, round_steps=500, setup=setup, runners=frameworks_of(make_loss, numpy_step))
