"""Applying primitives: `bind` runs a primitive's kernel, or its JVP rule on dual numbers.

Forward mode carries a `Dual` (primal ndarray, batched tangent) through `bind`: the
tangent has one extra leading axis, one row per direction, so a full gradient in
forward mode is one pass with an identity batch of directions. Derivative rules (in the
primitive family modules) are written with the helpers below, which go through `bind`;
so when a reverse pass runs over dual values, the tangents flow through it too —
that is forward-over-reverse, which gives Hessian-vector products.
"""
from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from . import primitives


@attrs.define(eq=False)
class Dual:
    """A value with tangents: `tangent` is (directions, *primal.shape), or None for zero."""

    primal: np.ndarray
    tangent: np.ndarray | None


def primal(v: Any) -> np.ndarray:
    return v.primal if isinstance(v, Dual) else v


def tangent(v: Any) -> np.ndarray | None:
    return v.tangent if isinstance(v, Dual) else None


# NumPy's ufuncs as primitives: what array types that are not ndarrays (device arrays, the IR
# values of `grad` while checking) run when NumPy code such as a derivative rule calls them.
UFUNCS: dict[Any, str] = {
    np.add: "add", np.subtract: "sub", np.multiply: "mul", np.true_divide: "div", np.power: "pow",
    np.mod: "mod", np.remainder: "mod", np.maximum: "maximum", np.minimum: "minimum", np.less: "lt",
    np.less_equal: "le", np.greater: "gt", np.greater_equal: "ge", np.equal: "eq", np.not_equal: "ne",
    np.logical_and: "and", np.logical_or: "or", np.negative: "neg", np.abs: "abs", np.absolute: "abs",
    np.sign: "sign", np.exp: "exp", np.log: "log", np.log1p: "log1p", np.expm1: "expm1", np.sqrt: "sqrt",
    np.sin: "sin", np.cos: "cos", np.tanh: "tanh", np.floor: "floor", np.ceil: "ceil", np.rint: "round",
    np.logical_not: "not", np.matmul: "matmul",
}

# Array types of other backends (wengert.opencl adds DeviceArray): a primitive with an operand
# of such a type runs that backend's kernel (`operand.backend.bound(prim)`) instead of NumPy's.
DEVICE_TYPES: set[type] = set()


def _impl(p: primitives.Primitive, primals: list[Any]):
    if DEVICE_TYPES:
        for a in primals:
            if type(a) in DEVICE_TYPES:
                return a.backend.bound(p.name)
    return p.impl


def bind(prim: str, *args: Any, **params: Any) -> Any:
    p = primitives.REGISTRY[prim]
    if not any(isinstance(a, Dual) and a.tangent is not None for a in args):
        primals = [primal(a) for a in args]
        return _impl(p, primals)(*primals, **params)
    primals = [primal(a) for a in args]
    out = _impl(p, primals)(*primals, **params)
    if p.jvp is None:
        raise NotImplementedError(f"forward mode is not defined for `{prim}`")
    t = p.jvp(primals, [tangent(a) for a in args], out, **params)
    return Dual(out, t) if t is not None else out


def batch_of(tangents: list[np.ndarray | None]) -> int:
    return next(t.shape[0] for t in tangents if t is not None)


def lift(t: np.ndarray, rank: int) -> np.ndarray:
    """A batched tangent reshaped to broadcast against values of `rank` (right-aligned)."""
    missing = rank - (t.ndim - 1)
    return t.reshape((t.shape[0],) + (1,) * missing + t.shape[1:]) if missing > 0 else t


def sum_to_shape(x: np.ndarray, shape: tuple[int, ...], batched: bool = False) -> np.ndarray:
    """Sum a (broadcast) array back to `shape` (autograd's unbroadcast); plain NumPy."""
    lead = 1 if batched else 0
    extra = x.ndim - lead - len(shape)
    if extra > 0:
        x = x.sum(axis=tuple(range(lead, lead + extra)))
    axes = tuple(lead + i for i, d in enumerate(shape) if d == 1 and x.shape[lead + i] != 1)
    if axes:
        x = x.sum(axis=axes, keepdims=True)
    return x


# ---- helpers for VJP rules: every one goes through bind, so duals flow through them ----
def add(a, b):
    return bind("add", a, b)


def sub(a, b):
    return bind("sub", a, b)


def mul(a, b):
    return bind("mul", a, b)


def div(a, b):
    return bind("div", a, b)


def neg(a):
    return bind("neg", a)


def scale(g, d):
    """g * d, but exactly 0 where g is 0, even where d is inf or NaN.

    A zero cotangent means "this value was not used" (the branch `where` did not take);
    multiplying it by the derivative of sqrt(-1) must not turn it into NaN (jax#1052).
    """
    product = mul(g, d)
    pd = primal(d)
    if type(pd) not in DEVICE_TYPES and np.all(np.isfinite(pd)):  # on a device: always the where (no sync)
        return product
    used = primal(g) != 0
    return bind("where", used, product, np.zeros((), dtype=primal(product).dtype))


def const_like(value: float, like) -> np.ndarray:
    return np.asarray(value, dtype=primal(like).dtype)


def unbroadcast(g, shape: tuple[int, ...]):
    """Reduce a cotangent to an operand's shape, through bind (so duals follow)."""
    gs = primal(g).shape
    if gs == tuple(shape):
        return g
    extra = len(gs) - len(shape)
    axes = tuple(range(extra)) + tuple(extra + i for i, d in enumerate(shape) if d == 1 and gs[extra + i] != 1)
    if axes:
        g = bind("reduce_sum", g, axes=axes, keepdims=False)
    return bind("reshape", g, shape=tuple(shape))


def keep_reduced(g, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool):
    """A reduction's cotangent broadcast back to the reduced operand's shape."""
    if not keepdims:
        g = bind("reshape", g, shape=tuple(1 if i in axes else d for i, d in enumerate(shape)))
    return bind("broadcast_to", g, shape=tuple(shape))
