"""Lock-free updates of shared params with an ordinary optimizer (train/optim.py).

Two things make an optimizer step safe to run in several processes on the same memory:
- it *adds* its change (`p += new - old`) instead of assigning a value computed from a read
  that another process may have overwritten since, so concurrent steps to one element
  interleave instead of erasing each other (Hogwild!'s `w_v <- w_v - gamma * g_v`);
- it touches only the rows whose gradient is nonzero (an embedding step touches the ids in
  its batch), applying the optimizer's rule to those rows and their slots only, as torch's
  SparseAdam does (momentum and weight decay of a row wait until the row is used again).
  Sparse steps rarely collide, which is what makes Hogwild sound (Niu et al., 2011).
"""
from __future__ import annotations

import numpy as np

from ..train import optim

SPARSE_FRACTION = 0.5  # a row-sparse update when fewer than this fraction of the rows changed


def touched_rows(g: np.ndarray) -> np.ndarray | None:
    """The rows (first axis) of a gradient that are nonzero, or None when most are."""
    if g.ndim == 0 or g.shape[0] < 2:
        return None
    rows = np.flatnonzero(g.reshape(g.shape[0], -1).any(axis=1))
    return rows if len(rows) < SPARSE_FRACTION * g.shape[0] else None


def step(opt: optim.Optimizer, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float) -> None:
    """One `opt` update of `params` (arrays that other processes may update at the same time)."""
    opt.step_count += 1
    for name, p in params.items():
        g = np.asarray(grads[name], dtype=p.dtype)
        slots = opt.slots[name]
        rows = touched_rows(g)
        if rows is None:
            old = p.copy()
            p += opt.rule.update(opt.hyper, old.copy(), g, slots, opt.step_count, float(lr)) - old
            continue
        if len(rows) == 0:
            continue
        row_slots = {k: (v[rows] if v.shape == p.shape else v) for k, v in slots.items()}
        old = p[rows]
        new = opt.rule.update(opt.hyper, old.copy(), g[rows], row_slots, opt.step_count, float(lr))
        for k, v in row_slots.items():
            if slots[k].shape == p.shape:
                slots[k][rows] = v
        p[rows] += new - old
