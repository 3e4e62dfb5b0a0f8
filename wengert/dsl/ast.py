"""The AST: what the user wrote, one attrs class per construct, each with its span."""
from __future__ import annotations

from typing import Union

import attrs

from ..diagnostics import Span


@attrs.frozen
class Node:
    span: Span = attrs.field(kw_only=True, eq=False, repr=False)


# ---- expressions ----
@attrs.frozen
class Name(Node):
    id: str


@attrs.frozen
class Literal(Node):
    """int, float, bool or str; weakly typed when used as a tensor."""

    value: int | float | bool | str


@attrs.frozen
class All(Node):
    """The word `all` (only meaningful as `batch = all`)."""


@attrs.frozen
class ListLit(Node):
    items: tuple["Expr", ...]


@attrs.frozen
class NumberList(Node):
    """A long list of plain numbers (one token): its values, known when parsed."""

    values: tuple[int | float, ...]


@attrs.frozen
class Keyword(Node):
    name: str
    value: "Expr"


@attrs.frozen
class Call(Node):
    func: "Expr"
    args: tuple["Expr", ...]
    kwargs: tuple[Keyword, ...]
    piped: bool = False  # written as a pipe stage: layers are then numbered (Dense_1)


@attrs.frozen
class Slice(Node):
    start: "Expr | None"
    stop: "Expr | None"
    step: "Expr | None"


@attrs.frozen
class Index(Node):
    base: "Expr"
    items: tuple["Expr | Slice", ...]


@attrs.frozen
class Attr(Node):
    base: "Expr"
    name: str


@attrs.frozen
class BinOp(Node):
    op: str  # + - * / @ % ** < <= > >= == != and or
    left: "Expr"
    right: "Expr"


@attrs.frozen
class Unary(Node):
    op: str  # - not
    operand: "Expr"


@attrs.frozen
class IfElse(Node):
    cond: "Expr"
    then: "Expr"
    orelse: "Expr"


@attrs.frozen
class Range(Node):
    start: "Expr"
    stop: "Expr"


Expr = Union[Name, Literal, All, ListLit, NumberList, Call, Index, Attr, BinOp, Unary, IfElse, Range]


# ---- statements ----
@attrs.frozen
class TypeExpr(Node):
    """`f64[batch, 100]`; `dtype` may be a call such as `dtype(x)` inside layers."""

    dtype: Name | Call
    dims: tuple[Expr, ...] | None  # None: a bare dtype (a scalar)


@attrs.frozen
class Seed(Node):
    value: Expr


@attrs.frozen
class Input(Node):
    name: str
    type: TypeExpr


@attrs.frozen
class ParamDecl(Node):
    kind: str  # "param" or "state"
    name: str
    type: TypeExpr
    init: Expr


@attrs.frozen
class Assign(Node):
    name: str
    value: Expr


@attrs.frozen
class AssignMany(Node):
    """`gw, gb = grad(loss, [w, b])`: one name per element of a list."""

    names: tuple[str, ...]
    value: Expr


@attrs.frozen
class FnParam(Node):
    name: str
    default: Expr | None


@attrs.frozen
class FnDef(Node):
    kind: str  # "fn" or "layer"
    name: str
    params: tuple[FnParam, ...]
    body: Expr | "Block"


@attrs.frozen
class Update(Node):
    target: str
    value: Expr


@attrs.frozen
class DataDef(Node):
    names: tuple[str, ...]
    pipeline: Expr


@attrs.frozen
class TrainDef(Node):
    name: str | None
    entries: tuple[Keyword, ...]


@attrs.frozen
class Import(Node):
    path: str


@attrs.frozen
class Return(Node):
    value: Expr


@attrs.frozen
class For(Node):
    var: str
    iter: Expr  # a Range, or reversed(Range)
    body: "Block"


@attrs.frozen
class Block(Node):
    stmts: tuple["Stmt", ...]


Stmt = Union[Seed, Input, ParamDecl, Assign, FnDef, Update, DataDef, TrainDef, Import, Return, For]


@attrs.frozen
class Module(Node):
    stmts: tuple[Stmt, ...]
