"""The language's operators: folded when both sides are static, else primitives with promotion."""
from __future__ import annotations

import operator
from typing import Any

from ..diagnostics import Span
from ..runtime.ir import Var
from ..runtime.types import ERROR_TYPE, FLOATS, DimOp, Sym, dim_op
from .values import describe, is_dim

BINARY_PRIMS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "**": "pow",
                "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne", "and": "and", "or": "or"}
_STATIC = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "%": operator.mod,
           "**": operator.pow, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
           "==": operator.eq, "!=": operator.ne}
INT_BITS = 63  # static integers are dims and counts: they must fit an i64
_DIM_OPS = {"+": "+", "-": "-", "*": "*", "/": "//", "%": "%"}


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def binary(lw, op: str, a: Any, b: Any, span: Span) -> Any:
    if isinstance(a, Var) and a.type.is_error or isinstance(b, Var) and b.type.is_error:
        return Var(ERROR_TYPE)
    # Static folding: numbers, bools and dims.
    if isinstance(a, str) and isinstance(b, str) and op in ("==", "!="):
        return (a == b) if op == "==" else (a != b)  # static options such as padding == "same"
    if op in ("and", "or") and isinstance(a, bool) and isinstance(b, bool):
        return (a and b) if op == "and" else (a or b)
    if _number(a) and _number(b) and op in _STATIC:
        if op == "**" and isinstance(a, int) and isinstance(b, int) and abs(a) > 1 and b > 0 \
                and a.bit_length() * b > 2 * INT_BITS:
            lw.b.error(span, f"integer result too large (more than {INT_BITS} bits)")
            return Var(ERROR_TYPE)
        try:
            result = _STATIC[op](a, b)
            if isinstance(result, complex):
                lw.b.error(span, f"({a!r}) {op} {b!r} is not a real number (a negative base with a "
                                 "fractional exponent)")
                return Var(ERROR_TYPE)
            if isinstance(result, int) and not isinstance(result, bool) and abs(result) >= 1 << INT_BITS:
                lw.b.error(span, f"integer result too large (more than {INT_BITS} bits)")
                return Var(ERROR_TYPE)
            return result
        except ZeroDivisionError:
            lw.b.error(span, "division by zero")
            return Var(ERROR_TYPE)
        except OverflowError:
            lw.b.error(span, "number too large")
            return Var(ERROR_TYPE)
    if (isinstance(a, (Sym, DimOp)) or isinstance(b, (Sym, DimOp))) and is_dim(a) and is_dim(b):
        if op in _DIM_OPS:
            return dim_op(_DIM_OPS[op], a, b)
        if op in ("==", "!="):
            same = lw.dims.same(a, b)
            if same is not None:
                return same if op == "==" else not same
    for v in (a, b):
        if isinstance(v, bool) and op not in ("and", "or", "==", "!="):
            lw.b.error(span, f"arithmetic on bool (`{op}` on {describe(v)}); use cast(x, f32) first")
            return Var(ERROR_TYPE)
        if not (isinstance(v, (Var, bool, int, float, list)) or is_dim(v)):
            lw.b.error(span, f"`{op}` cannot be applied to {describe(v)}")
            return Var(ERROR_TYPE)
    if op == "@":
        from .builtins import matmul
        return matmul(lw, lw.tensor(a, span), lw.tensor(b, span), span)
    x, y = lw.tensor(a, span), lw.tensor(b, span)
    if x.type.is_error or y.type.is_error:
        return Var(ERROR_TYPE)
    if op in ("and", "or"):
        for v in (x, y):
            if v.type.dtype != "bool":
                lw.b.error(span, f"`{op}` needs bool operands, got {lw.fmt(v.type)}")
                return Var(ERROR_TYPE)
    elif "bool" in (x.type.dtype, y.type.dtype) and op not in ("==", "!="):
        shown = x if x.type.dtype == "bool" else y
        lw.b.error(span, f"arithmetic on bool (`{op}` on {lw.fmt(shown.type)}); use cast(x, f32) first")
        return Var(ERROR_TYPE)
    x, y = lw.b.promote_all([x, y], span, allow_bool=op in ("==", "!="))
    if op == "/":
        x, y = lw.b.to_float(x, span), lw.b.to_float(y, span)
        if x.type.dtype != y.type.dtype:
            x, y = lw.b.promote_all([x, y], span)
    return lw.b.emit(BINARY_PRIMS[op], [x, y], {}, span)


def unary(lw, op: str, a: Any, span: Span) -> Any:
    if op == "not":
        if isinstance(a, bool):
            return not a
        x = lw.tensor(a, span)
        if x.type.is_error:
            return x
        if x.type.dtype != "bool":
            lw.b.error(span, f"`not` needs a bool operand, got {lw.fmt(x.type)}")
            return Var(ERROR_TYPE)
        return lw.b.emit("not", [x], {}, span)
    if _number(a):
        return -a
    if isinstance(a, (Sym, DimOp)):
        return dim_op("*", -1, a)
    x = lw.tensor(a, span)
    if x.type.is_error:
        return x
    if x.type.dtype == "bool":
        lw.b.error(span, f"arithmetic on bool (unary `-` on {lw.fmt(x.type)}); use cast(x, f32) first")
        return Var(ERROR_TYPE)
    return lw.b.emit("neg", [x], {}, span)


def float_operand(lw, v: Any, span: Span) -> Var:
    x = lw.tensor(v, span)
    if x.type.is_error or x.type.dtype in FLOATS:
        return x
    return lw.b.to_float(x, span)
