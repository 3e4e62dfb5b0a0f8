"""Primitives: the single extension point.

Each primitive is defined once, in the module of its family, with its shape/dtype rule
and its NumPy kernel next to each other (derivative rules are registered beside them by
the autodiff module). Everything else in the language is composed from these.
"""
from __future__ import annotations

from typing import Any, Callable

import attrs


class ShapeError(Exception):
    """A shape or dtype rule rejected its operands; the message is for the user."""


@attrs.define
class Primitive:
    name: str
    shape_rule: Callable[..., Any]  # (env, *types, **params) -> TensorType | tuple[TensorType, ...]
    impl: Callable[..., Any] | None = None  # NumPy kernel: (*arrays, **params) -> array(s)
    needs_context: bool = False  # impl takes the evaluation context first (random streams, training)
    # Forward mode: (primals, batched tangents or None, out, **params) -> batched tangent or None.
    jvp: Callable[..., Any] | None = None
    # Reverse mode: (cotangent, out, *operands, **params) -> one cotangent (or None) per operand,
    # written with runtime.ops helpers so that dual numbers flow through (Hessian-vector products).
    vjp: Callable[..., Any] | None = None
    differentiable: bool = True  # False: outputs carry no derivative (comparisons, argmax, random)
    broadcasts: bool = False  # elementwise over NumPy-broadcast operands (the checker warns on outer broadcasts)


REGISTRY: dict[str, Primitive] = {}


def rules(name: str, jvp: Callable | None = None, vjp: Callable | None = None) -> None:
    """Register the derivative rules of a primitive beside its definition."""
    REGISTRY[name].jvp, REGISTRY[name].vjp = jvp, vjp


def define(name: str, shape_rule: Callable, impl: Callable | None = None, **kw: Any) -> Primitive:
    if name in REGISTRY:
        raise ValueError(f"primitive {name} defined twice")
    prim = Primitive(name, shape_rule, impl, **kw)
    REGISTRY[name] = prim
    return prim


def get(name: str) -> Primitive:
    return REGISTRY[name]


from . import elementwise, linalg, neural, random, reduce, shape  # noqa: E402,F401  (they register)
