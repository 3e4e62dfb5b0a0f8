"""Elementwise primitives: unary math, binary arithmetic, comparisons, logic, where, cast."""
from __future__ import annotations

import numpy as np

from ..types import FLOATS, NUMPY_DTYPE, TensorType
from . import ShapeError, define
from .common import broadcast_shapes, fmt


def _unary_rule(allowed: str):
    def rule(env, x: TensorType, **_):
        if allowed == "float" and x.dtype not in FLOATS:
            raise ShapeError(f"needs a floating-point operand, got {fmt(env, x)}")
        if allowed == "number" and x.dtype == "bool":
            raise ShapeError(f"arithmetic on bool ({fmt(env, x)}); use cast(x, f32) first")
        if allowed == "bool" and x.dtype != "bool":
            raise ShapeError(f"needs a bool operand, got {fmt(env, x)}")
        return x
    return rule


def _logistic(x):
    return 0.5 * np.tanh(0.5 * x) + 0.5


def _round(x):
    return np.round(x)  # half to even, like NumPy and Theano


UNARY = {
    # name: (operand kind, NumPy kernel)
    "neg": ("number", np.negative), "abs": ("number", np.abs), "sign": ("number", np.sign),
    "exp": ("float", np.exp), "log": ("float", np.log), "log1p": ("float", np.log1p),
    "expm1": ("float", np.expm1), "sqrt": ("float", np.sqrt), "sin": ("float", np.sin),
    "cos": ("float", np.cos), "tanh": ("float", np.tanh), "logistic": ("float", _logistic),
    "floor": ("float", np.floor), "ceil": ("float", np.ceil), "round": ("float", _round),
    "not": ("bool", np.logical_not), "stop_gradient": ("any", lambda x: x),
}
for _name, (_allowed, _kernel) in UNARY.items():
    define(_name, _unary_rule(_allowed), _kernel)


def _binary_rule(result: str):
    def rule(env, a: TensorType, b: TensorType, **_):
        if result in ("number", "compare") and "bool" in (a.dtype, b.dtype) and result == "number":
            raise ShapeError(f"arithmetic on bool ({fmt(env, a)} and {fmt(env, b)}); use cast(x, f32) first")
        if result == "bool" and (a.dtype != "bool" or b.dtype != "bool"):
            raise ShapeError(f"`and`/`or` need bool operands, got {fmt(env, a)} and {fmt(env, b)}")
        if a.dtype != b.dtype:
            raise ShapeError(f"dtype mismatch: {fmt(env, a)} and {fmt(env, b)}")
        shape = broadcast_shapes(env, a.shape, b.shape)
        dtype = "bool" if result in ("compare", "bool") else a.dtype
        return TensorType(dtype, shape, weak=a.weak and b.weak and dtype != "bool")
    return rule


def _div(a, b):
    if a.dtype.kind in "iu":
        return np.floor_divide(a, b)
    return np.true_divide(a, b)


BINARY = {
    "add": ("number", np.add), "sub": ("number", np.subtract), "mul": ("number", np.multiply),
    "div": ("number", _div), "pow": ("number", np.power), "mod": ("number", np.mod),
    "maximum": ("number", np.maximum), "minimum": ("number", np.minimum),
    "lt": ("compare", np.less), "le": ("compare", np.less_equal), "gt": ("compare", np.greater),
    "ge": ("compare", np.greater_equal), "eq": ("compare", np.equal), "ne": ("compare", np.not_equal),
    "and": ("bool", np.logical_and), "or": ("bool", np.logical_or),
}
for _name, (_result, _kernel) in BINARY.items():
    define(_name, _binary_rule(_result), _kernel)


def _where_rule(env, c: TensorType, a: TensorType, b: TensorType, **_):
    if c.dtype != "bool":
        raise ShapeError(f"the condition of where must be bool, got {fmt(env, c)}")
    if a.dtype != b.dtype:
        raise ShapeError(f"dtype mismatch between the branches of where: {fmt(env, a)} and {fmt(env, b)}")
    return TensorType(a.dtype, broadcast_shapes(env, c.shape, a.shape, b.shape), weak=a.weak and b.weak)


define("where", _where_rule, np.where)


def _cast_rule(env, x: TensorType, *, dtype: str):
    return TensorType(dtype, x.shape)


define("cast", _cast_rule, lambda x, *, dtype: x.astype(NUMPY_DTYPE[dtype], copy=False))


def _const_rule(env, *, value: np.ndarray, weak: bool = False):
    from ..types import DTYPE_OF_NUMPY
    return TensorType(DTYPE_OF_NUMPY[value.dtype], value.shape, weak=weak)


define("const", _const_rule, lambda *, value, weak=False: value)
