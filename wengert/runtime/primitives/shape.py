"""Shape primitives: fill, iota, reshape, transpose, broadcast_to, concat, slice, pad, index, gather."""
from __future__ import annotations

import numpy as np

from ..types import INTS, NUMPY_DTYPE, Dim, TensorType, dim_op
from . import ShapeError, define
from .common import broadcast_shapes, fmt, unify_dim


def _check_sizes(shape):
    for d in shape:
        if isinstance(d, int) and d < 0:
            raise ShapeError(f"negative dimension {d} in shape [{', '.join(map(str, shape))}]")


def _fill_rule(env, *, shape, value, dtype, weak=False):
    _check_sizes(shape)
    return TensorType(dtype, tuple(shape), weak=weak)


define("fill", _fill_rule, lambda *, shape, value, dtype, weak=False: np.full(shape, value, dtype=NUMPY_DTYPE[dtype]))


def _iota_rule(env, *, shape, axis, dtype):
    _check_sizes(shape)
    return TensorType(dtype, tuple(shape))


def _iota(*, shape, axis, dtype):
    n = shape[axis]
    view = [1] * len(shape)
    view[axis] = n
    return np.broadcast_to(np.arange(n, dtype=NUMPY_DTYPE[dtype]).reshape(view), shape).copy()


define("iota", _iota_rule, _iota)


def _product(env, shape) -> Dim:
    total: Dim = 1
    for d in shape:
        total = dim_op("*", total, env.resolve(d))
    return total


def _reshape_rule(env, x: TensorType, *, shape):
    total = _product(env, x.shape)
    known = [d for d in shape if d != -1]
    if list(shape).count(-1) > 1:
        raise ShapeError("reshape: at most one dimension may be -1")
    if -1 in shape:
        rest = _product(env, known)
        if isinstance(total, int) and isinstance(rest, int):
            if rest == 0 or total % rest:
                raise ShapeError(f"cannot reshape {fmt(env, x)} into [{', '.join(map(str, shape))}]")
        fill = dim_op("//", total, rest)
        shape = tuple(fill if d == -1 else d for d in shape)
    _check_sizes(shape)
    new_total = _product(env, shape)
    if isinstance(total, int) and isinstance(new_total, int) and total != new_total:
        raise ShapeError(f"cannot reshape {fmt(env, x)} ({total} elements) into "
                         f"[{', '.join(map(str, shape))}] ({new_total} elements)")
    return TensorType(x.dtype, tuple(shape), weak=x.weak)


define("reshape", _reshape_rule, lambda x, *, shape: np.reshape(x, shape))


def _transpose_rule(env, x: TensorType, *, perm):
    if sorted(perm) != list(range(x.rank)):
        raise ShapeError(f"transpose: {list(perm)} is not a permutation of the {x.rank} axes of {fmt(env, x)}")
    return TensorType(x.dtype, tuple(x.shape[p] for p in perm), weak=x.weak)


define("transpose", _transpose_rule, lambda x, *, perm: np.transpose(x, perm))


def _broadcast_to_rule(env, x: TensorType, *, shape):
    if x.rank > len(shape):
        raise ShapeError(f"cannot broadcast {fmt(env, x)} to a shape of lower rank [{', '.join(map(str, shape))}]")
    out = broadcast_shapes(env, x.shape, shape)
    for got, want in zip(out, shape):
        if env.same(got, want) is False:
            raise ShapeError(f"cannot broadcast {fmt(env, x)} to [{', '.join(map(str, shape))}]")
    return TensorType(x.dtype, tuple(shape), weak=x.weak)


define("broadcast_to", _broadcast_to_rule, lambda x, *, shape: np.broadcast_to(x, shape))


def _concat_rule(env, *xs: TensorType, axis: int):
    first = xs[0]
    total: Dim = 0
    for x in xs:
        if x.rank != first.rank:
            raise ShapeError(f"concat: operands have different ranks: {fmt(env, first)} and {fmt(env, x)}")
        if x.dtype != first.dtype:
            raise ShapeError(f"concat: dtype mismatch: {fmt(env, first)} and {fmt(env, x)}")
        if not 0 <= axis < first.rank:
            raise ShapeError(f"concat: axis {axis} is out of range for rank {first.rank}")
        for i, (a, b) in enumerate(zip(first.shape, x.shape)):
            if i != axis:
                unify_dim(env, a, b, f"concat: shapes {fmt(env, first)} and {fmt(env, x)} differ on axis {i}")
        total = dim_op("+", total, env.resolve(x.shape[axis]))
    shape = tuple(total if i == axis else d for i, d in enumerate(first.shape))
    return TensorType(first.dtype, shape, weak=all(x.weak for x in xs))


define("concat", _concat_rule, lambda *xs, axis: np.concatenate(xs, axis=axis))


def slice_length(start: Dim, stop: Dim, step: int) -> Dim:
    if isinstance(start, int) and isinstance(stop, int):
        return max(0, -((start - stop) // step))  # ceil division in integers (no float overflow)
    span = dim_op("-", stop, start)
    return span if step == 1 else dim_op("//", dim_op("+", span, step - 1 if step > 0 else step + 1), step)


def _slice_rule(env, x: TensorType, *, starts, stops, steps):
    shape = tuple(slice_length(a, b, s) for a, b, s in zip(starts, stops, steps))
    return TensorType(x.dtype, shape, weak=x.weak)


def _slice(x, *, starts, stops, steps):
    return x[tuple(slice(a, b, s) for a, b, s in zip(starts, stops, steps))]


define("slice", _slice_rule, _slice)


def _pad_rule(env, x: TensorType, *, widths, value=0):
    if len(widths) != x.rank:
        raise ShapeError(f"pad: {len(widths)} (before, after) pairs for a tensor of rank {x.rank}")
    shape = tuple(dim_op("+", dim_op("+", d, lo), hi) for d, (lo, hi) in zip(x.shape, widths))
    return TensorType(x.dtype, shape, weak=x.weak)


define("pad", _pad_rule, lambda x, *, widths, value=0: np.pad(x, widths, constant_values=value))


def _index_rule(env, x: TensorType, i: TensorType, *, axis: int):
    if i.dtype not in INTS or i.rank != 0:
        raise ShapeError(f"an index must be an integer scalar, got {fmt(env, i)}")
    return TensorType(x.dtype, x.shape[:axis] + x.shape[axis + 1:], weak=x.weak)


def _index(x, i, *, axis):
    n = x.shape[axis]
    k = int(i)
    if not -n <= k < n:
        raise IndexError(f"index {k} is out of range for axis {axis} of size {n}")
    return np.take(x, k, axis=axis)


define("index", _index_rule, _index)


def _gather_rule(env, x: TensorType, ids: TensorType, *, axis: int):
    if ids.dtype not in INTS:
        raise ShapeError(f"indices must be integers, got {fmt(env, ids)}")
    return TensorType(x.dtype, x.shape[:axis] + ids.shape + x.shape[axis + 1:], weak=x.weak)


def _gather(x, ids, *, axis):
    n = x.shape[axis]
    if ids.size and (ids.min() < -n or ids.max() >= n):
        bad = ids.max() if ids.max() >= n else ids.min()
        raise IndexError(f"index {bad} is out of range for axis {axis} of size {n}")
    return np.take(x, ids, axis=axis)


define("gather", _gather_rule, _gather)


def _dimsize_rule(env, *, dim):
    return TensorType("i64", ())


define("dimsize", _dimsize_rule, lambda *, dim: np.asarray(dim, dtype=np.int64))


# ---------------------------------------------------------------- derivative rules
from .. import ops  # noqa: E402
from ..ops import lift  # noqa: E402
from . import REGISTRY, rules  # noqa: E402

for _name in ("fill", "iota", "dimsize"):
    REGISTRY[_name].differentiable = False
    rules(_name, lambda p, t, out, **_: None, lambda g, out, **_: ())


def _reshape_jvp(primals, tangents, out, *, shape):
    t = tangents[0]
    return None if t is None else t.reshape((t.shape[0],) + out.shape)


rules("reshape", _reshape_jvp, lambda g, out, x, *, shape: (ops.bind("reshape", g, shape=ops.primal(x).shape),))


def _transpose_jvp(primals, tangents, out, *, perm):
    t = tangents[0]
    return None if t is None else t.transpose((0,) + tuple(p + 1 for p in perm))


def _transpose_vjp(g, out, x, *, perm):
    return (ops.bind("transpose", g, perm=tuple(np.argsort(perm))),)


rules("transpose", _transpose_jvp, _transpose_vjp)


def _broadcast_jvp(primals, tangents, out, *, shape):
    t = tangents[0]
    return None if t is None else np.broadcast_to(lift(t, len(shape)), (t.shape[0],) + tuple(shape))


rules("broadcast_to", _broadcast_jvp, lambda g, out, x, *, shape: (ops.unbroadcast(g, ops.primal(x).shape),))


def _concat_jvp(primals, tangents, out, *, axis):
    if all(t is None for t in tangents):
        return None
    b = ops.batch_of(tangents)
    parts = [t if t is not None else np.zeros_like(out, shape=(b,) + p.shape) for p, t in zip(primals, tangents)]
    return np.concatenate(parts, axis=axis + 1)


def _concat_vjp(g, out, *xs, axis):
    grads, start = [], 0
    rank = ops.primal(out).ndim
    for x in xs:
        n = ops.primal(x).shape[axis]
        starts = tuple(start if i == axis else 0 for i in range(rank))
        stops = tuple(start + n if i == axis else d for i, d in enumerate(ops.primal(out).shape))
        grads.append(ops.bind("slice", g, starts=starts, stops=stops, steps=(1,) * rank))
        start += n
    return tuple(grads)


rules("concat", _concat_jvp, _concat_vjp)


def _slice_jvp(primals, tangents, out, *, starts, stops, steps):
    t = tangents[0]
    return None if t is None else t[(slice(None),) + tuple(slice(a, b, s) for a, b, s in zip(starts, stops, steps))]


def _slice_vjp(g, out, x, *, starts, stops, steps):
    return (ops.bind("unslice", g, shape=ops.primal(x).shape, starts=starts, stops=stops, steps=steps),)


rules("slice", _slice_jvp, _slice_vjp)


def _unslice(g, *, shape, starts, stops, steps):
    """The transpose of slice: g placed into zeros of `shape`."""
    out = np.zeros(shape, dtype=g.dtype)
    out[tuple(slice(a, b, s) for a, b, s in zip(starts, stops, steps))] = g
    return out


define("unslice", lambda env, g, *, shape, **_: TensorType(g.dtype, tuple(shape)), _unslice)


def _unslice_jvp(primals, tangents, out, *, shape, starts, stops, steps):
    t = tangents[0]
    if t is None:
        return None
    b = t.shape[0]
    return ops.bind("unslice", t, shape=(b,) + tuple(shape), starts=(0,) + tuple(starts), stops=(b,) + tuple(stops),
                    steps=(1,) + tuple(steps))


rules("unslice", _unslice_jvp,
      lambda g, out, x, *, shape, starts, stops, steps: (ops.bind("slice", g, starts=starts, stops=stops,
                                                                   steps=steps),))


def _pad_jvp(primals, tangents, out, *, widths, value=0):
    t = tangents[0]
    return None if t is None else ops.bind("pad", t, widths=((0, 0),) + tuple(widths))


def _pad_vjp(g, out, x, *, widths, value=0):
    shape = ops.primal(x).shape
    return (ops.bind("slice", g, starts=tuple(lo for lo, _ in widths),
                     stops=tuple(lo + d for (lo, _), d in zip(widths, shape)), steps=(1,) * len(shape)),)


rules("pad", _pad_jvp, _pad_vjp)


def _index_jvp(primals, tangents, out, *, axis):
    t = tangents[0]
    return None if t is None else np.take(t, int(primals[1]), axis=axis + 1)


def _index_vjp(g, out, x, i, *, axis):
    return ops.bind("scatter", g, ops.primal(i), shape=ops.primal(x).shape, axis=axis, scalar=True), None


rules("index", _index_jvp, _index_vjp)


def _gather_jvp(primals, tangents, out, *, axis):
    t = tangents[0]
    return None if t is None else np.take(t, primals[1], axis=axis + 1)


def _gather_vjp(g, out, x, ids, *, axis):
    return ops.bind("scatter", g, ops.primal(ids), shape=ops.primal(x).shape, axis=axis, scalar=False), None


rules("gather", _gather_jvp, _gather_vjp)


def _scatter(g, ids, *, shape, axis, scalar):
    """The transpose of index/gather: rows of g added at ids along axis (repeats accumulate)."""
    out = np.zeros(shape, dtype=g.dtype)
    moved = np.moveaxis(out, axis, 0)
    if scalar:
        moved[int(ids)] += g
    else:
        rows = np.moveaxis(g, tuple(range(axis, axis + ids.ndim)), tuple(range(ids.ndim)))
        np.add.at(moved, ids, rows)
    return out


define("scatter", lambda env, g, ids, *, shape, **_: TensorType(g.dtype, tuple(shape)), _scatter)


def _scatter_jvp(primals, tangents, out, *, shape, axis, scalar):
    t = tangents[0]
    if t is None:
        return None
    return np.stack([ops.bind("scatter", t[k], primals[1], shape=shape, axis=axis, scalar=scalar)
                     for k in range(t.shape[0])])


def _scatter_vjp(g, out, src, ids, *, shape, axis, scalar):
    return ops.bind("index" if scalar else "gather", g, ops.primal(ids), axis=axis), None


rules("scatter", _scatter_jvp, _scatter_vjp)
