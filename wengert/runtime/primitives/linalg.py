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


# ---------------------------------------------------------------- derivative rules
from .. import ops  # noqa: E402
from . import rules  # noqa: E402


def _as_matrices(a, b):
    """Promote 1-D operands as numpy.matmul does, returning how to undo it."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    return a2, b2


def _matmul_jvp(primals, tangents, out):
    """Tangents have a leading axis of directions; align it in front of the broadcast batch axes."""
    a, b = primals
    ta, tb = tangents
    a2, b2 = _as_matrices(a, b)
    batch = max(a2.ndim, b2.ndim) - 2

    def lead(t, promoted_shape):  # (B, *shape) -> (B, 1.., *promoted_shape) with `batch` batch axes
        t = t.reshape((t.shape[0],) + promoted_shape)
        return t.reshape((t.shape[0],) + (1,) * (batch - (len(promoted_shape) - 2)) + promoted_shape)
    result = None
    if ta is not None:
        result = np.matmul(lead(ta, a2.shape), b2)
    if tb is not None:
        term = np.matmul(a2, lead(tb, b2.shape))
        result = term if result is None else result + term
    return result.reshape((result.shape[0],) + out.shape)


def _matmul_vjp(g, out, a, b):
    pa, pb = ops.primal(a), ops.primal(b)
    a2 = ops.bind("reshape", a, shape=(1,) + pa.shape) if pa.ndim == 1 else a
    b2 = ops.bind("reshape", b, shape=pb.shape + (1,)) if pb.ndim == 1 else b
    g_shape = ops.primal(g).shape
    if pa.ndim == 1:
        g_shape = g_shape[:-1] + (1,) + g_shape[-1:] if pb.ndim > 1 else g_shape + (1,)
    if pb.ndim == 1:
        g_shape = g_shape + (1,)
    g2 = ops.bind("reshape", g, shape=g_shape)

    def swap(v):
        r = ops.primal(v).ndim
        return ops.bind("transpose", v, perm=tuple(range(r - 2)) + (r - 1, r - 2))
    ga = ops.unbroadcast(ops.bind("matmul", g2, swap(b2)), ops.primal(a2).shape)
    gb = ops.unbroadcast(ops.bind("matmul", swap(a2), g2), ops.primal(b2).shape)
    return ops.bind("reshape", ga, shape=pa.shape), ops.bind("reshape", gb, shape=pb.shape)


rules("matmul", _matmul_jvp, _matmul_vjp)
