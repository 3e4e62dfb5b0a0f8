"""Random draws (a fresh draw per evaluation from the program's seeded stream) and the training flag."""
from __future__ import annotations

import numpy as np

from ..types import FLOATS, NUMPY_DTYPE, TensorType
from . import ShapeError, define
from .common import broadcast_shapes, fmt


def _draw_rule(env, *operands: TensorType, shape, dtype):
    if dtype not in FLOATS:
        raise ShapeError(f"random draws are floats, not {dtype}")
    for t in operands:
        if t.dtype not in FLOATS:
            raise ShapeError(f"random parameters must be floats, got {fmt(env, t)}")
        broadcast_shapes(env, t.shape, tuple(shape))
    return TensorType(dtype, tuple(shape))


def _normal(ctx, mean, std, *, shape, dtype):
    return (ctx.rng.standard_normal(shape) * std + mean).astype(NUMPY_DTYPE[dtype], copy=False)


def _uniform(ctx, low, high, *, shape, dtype):
    return (ctx.rng.random(shape) * (high - low) + low).astype(NUMPY_DTYPE[dtype], copy=False)


def _bernoulli(ctx, p, *, shape, dtype):
    return (ctx.rng.random(shape) < p).astype(NUMPY_DTYPE[dtype])


define("random_normal", _draw_rule, _normal, needs_context=True)
define("random_uniform", _draw_rule, _uniform, needs_context=True)
define("random_bernoulli", _draw_rule, _bernoulli, needs_context=True)
define("training", lambda env: TensorType("bool", ()), lambda ctx: np.asarray(ctx.training), needs_context=True)


from . import REGISTRY, rules  # noqa: E402

for _name in ("random_normal", "random_uniform", "random_bernoulli", "training"):
    REGISTRY[_name].differentiable = False
    rules(_name, lambda p, t, out, **_: None, lambda g, out, *xs, **_: tuple(None for _ in xs))
