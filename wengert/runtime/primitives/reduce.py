"""Reductions over axes: sum, max, min, prod, argmax."""
from __future__ import annotations

import numpy as np

from ..types import TensorType
from . import ShapeError, define
from .common import fmt


def reduced_shape(shape, axes: tuple[int, ...], keepdims: bool):
    return tuple((1 if keepdims else None) if i in axes else d for i, d in enumerate(shape) if keepdims or i not in axes)


def _reduce_rule(kind: str):
    def rule(env, x: TensorType, *, axes: tuple[int, ...], keepdims: bool = False):
        if kind != "arg" and x.dtype == "bool" and kind != "any":
            raise ShapeError(f"arithmetic on bool ({fmt(env, x)}); use cast(x, f32) first")
        for a in axes:
            if not 0 <= a < x.rank:
                raise ShapeError(f"axis {a} is out of range for {fmt(env, x)}")
        dtype = "i64" if kind == "arg" else x.dtype
        return TensorType(dtype, reduced_shape(x.shape, axes, keepdims))
    return rule


def _np_reduce(fn):
    def kernel(x, *, axes, keepdims=False):
        return np.asarray(fn(x, axis=axes, keepdims=keepdims))
    return kernel


for _name, _fn in {"reduce_sum": np.sum, "reduce_max": np.max, "reduce_min": np.min, "reduce_prod": np.prod}.items():
    define(_name, _reduce_rule("number"), _np_reduce(_fn))


def _argmax(x, *, axes, keepdims=False):
    (axis,) = axes
    return np.asarray(np.argmax(x, axis=axis, keepdims=keepdims), dtype=np.int64)


define("argmax", _reduce_rule("arg"), _argmax)


# ---------------------------------------------------------------- derivative rules
from .. import ops  # noqa: E402
from . import REGISTRY, rules  # noqa: E402


def _shifted(axes):
    return tuple(a + 1 for a in axes)


def _sum_jvp(primals, tangents, out, *, axes, keepdims=False):
    t = tangents[0]
    return None if t is None else t.sum(axis=_shifted(axes), keepdims=keepdims)


def _sum_vjp(g, out, x, *, axes, keepdims=False):
    return (ops.keep_reduced(g, ops.primal(x).shape, axes, keepdims),)


rules("reduce_sum", _sum_jvp, _sum_vjp)


def _ties(x, out, axes):
    """Where x attains the max/min of its window, weighted so ties share equally."""
    hit = (x == np.expand_dims(out, axes) if out.ndim < x.ndim else x == out).astype(x.dtype)
    return hit / hit.sum(axis=axes, keepdims=True)


def _extreme_jvp(primals, tangents, out, *, axes, keepdims=False):
    (x,), (t,) = primals, tangents
    if t is None:
        return None
    w = _ties(x, out if keepdims else np.expand_dims(out, axes), axes)
    return (t * w).sum(axis=_shifted(axes), keepdims=keepdims)


def _extreme_vjp(g, out, x, *, axes, keepdims=False):
    px, po = ops.primal(x), ops.primal(out)
    w = _ties(px, po if keepdims else np.expand_dims(po, axes), axes)
    return (ops.mul(ops.keep_reduced(g, px.shape, axes, keepdims), w),)


rules("reduce_max", _extreme_jvp, _extreme_vjp)
rules("reduce_min", _extreme_jvp, _extreme_vjp)


def _prod_of_others(x, *, axes):
    """For each element, the product of the other elements of its reduction group (no division)."""
    keep = [i for i in range(x.ndim) if i not in axes]
    moved = np.transpose(x, keep + list(axes))
    flat = moved.reshape(moved.shape[:len(keep)] + (-1,))
    ones = np.ones(flat.shape[:-1] + (1,), dtype=x.dtype)
    left = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    right = np.cumprod(np.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    others = (left * right).reshape(moved.shape)
    return np.transpose(others, np.argsort(keep + list(axes)))


define("prod_of_others", lambda env, x, **_: x, _prod_of_others)


def _prod_of_others_jvp(primals, tangents, out, *, axes):
    """d others_i = sum over j != i of t_j * (product of the group without i and j); no division."""
    (x,), (t,) = primals, tangents
    if t is None:
        return None
    keep = [i for i in range(x.ndim) if i not in axes]
    perm = keep + list(axes)
    moved = np.transpose(x, perm)
    group = moved.reshape(moved.shape[:len(keep)] + (-1,))
    tg = np.transpose(t, [0] + [p + 1 for p in perm]).reshape((t.shape[0],) + group.shape)
    result = np.zeros_like(tg)
    for j in range(group.shape[-1]):
        without_j = group.copy()
        without_j[..., j] = 1
        others = ops.bind("prod_of_others", without_j, axes=(group.ndim - 1,))
        others[..., j] = 0
        result += tg[..., j:j + 1] * others
    result = result.reshape((t.shape[0],) + moved.shape)
    return np.transpose(result, [0] + [int(i) + 1 for i in np.argsort(perm)])


rules("prod_of_others", _prod_of_others_jvp, None)


def _prod_jvp(primals, tangents, out, *, axes, keepdims=False):
    (x,), (t,) = primals, tangents
    if t is None:
        return None
    return (t * ops.bind("prod_of_others", x, axes=axes)).sum(axis=_shifted(axes), keepdims=keepdims)


def _prod_vjp(g, out, x, *, axes, keepdims=False):
    shape = ops.primal(x).shape
    return (ops.mul(ops.keep_reduced(g, shape, axes, keepdims), ops.bind("prod_of_others", x, axes=axes)),)


rules("reduce_prod", _prod_jvp, _prod_vjp)
REGISTRY["argmax"].differentiable = False
rules("argmax", lambda p, t, out, **_: None, lambda g, out, x, **_: (None,))
