"""Matrix product with numpy.matmul semantics."""
from __future__ import annotations

import numpy as np

from ..types import TensorType
from . import ShapeError, define
from .common import broadcast_shapes, fmt, unify_dim


def _matmul_rule(env, a: TensorType, b: TensorType):
    if "bool" in (a.dtype, b.dtype):
        raise ShapeError(f"arithmetic on bool ({fmt(env, a)} @ {fmt(env, b)}); use cast(x, f32) first")
    if a.dtype != b.dtype:
        raise ShapeError(f"dtype mismatch: {fmt(env, a)} @ {fmt(env, b)}")
    if a.rank == 0 or b.rank == 0:
        raise ShapeError(f"`@` needs operands of rank >= 1, got {fmt(env, a)} @ {fmt(env, b)} (use `*` for scalars)")
    ash = a.shape if a.rank > 1 else (1,) + a.shape
    bsh = b.shape if b.rank > 1 else b.shape + (1,)
    unify_dim(env, ash[-1], bsh[-2],
              f"inner dimensions do not match: {fmt(env, a)} @ {fmt(env, b)} "
              f"({env.resolve(ash[-1])} vs {env.resolve(bsh[-2])})")
    batch = broadcast_shapes(env, ash[:-2], bsh[:-2])
    out = batch + ((ash[-2],) if a.rank > 1 else ()) + ((bsh[-1],) if b.rank > 1 else ())
    return TensorType(a.dtype, out)


define("matmul", _matmul_rule, np.matmul)
