"""Values during lowering: an IR Var (a tensor computed at run time) or a static.

Statics are known while lowering: Python ints, floats, bools and strings, lists, dims
(ints, symbols, derived dims), dtypes, ranges and references to functions. They fold
at lowering time (which is how shapes such as `[dim(x, 0), 64]` are computed) and
become weakly typed constants when they meet a tensor.
"""
from __future__ import annotations

from typing import Any, Union

import attrs

from ..runtime.ir import Var
from ..runtime.types import DimOp, Sym


@attrs.frozen
class DType:
    name: str

    def __str__(self) -> str:
        return self.name


@attrs.frozen
class RangeVal:
    start: Any  # int | Dim | Var
    stop: Any
    reversed: bool = False


@attrs.frozen
class FnRef:
    name: str


@attrs.frozen
class AllVal:
    pass


@attrs.frozen
class CallVal:
    """A call kept as data (an initializer, an optimizer, a data source)."""

    name: str
    args: tuple
    kwargs: tuple[tuple[str, Any], ...]
    span: Any = attrs.field(eq=False, default=None)


Value = Union[Var, int, float, bool, str, list, Sym, DimOp, DType, RangeVal, FnRef, AllVal, CallVal]


def is_dim(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, (Sym, DimOp))


def describe(v: Any) -> str:
    if isinstance(v, Var):
        return f"a tensor {v.type}"
    if isinstance(v, bool):
        return "a bool"
    if isinstance(v, (int, Sym, DimOp)):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, DType):
        return "a dtype"
    if isinstance(v, RangeVal):
        return "a range"
    if isinstance(v, FnRef):
        return f"the function `{v.name}`"
    if isinstance(v, AllVal):
        return "`all`"
    if isinstance(v, CallVal):
        return f"`{v.name}(...)`"
    return type(v).__name__
