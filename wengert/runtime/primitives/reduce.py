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
