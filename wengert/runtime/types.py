"""Tensor types: dtypes, symbolic dims, promotion, and the unification of dims."""
from __future__ import annotations

from typing import Union

import attrs
import numpy as np

DTYPES = ("bool", "i32", "i64", "f32", "f64")
FLOATS = ("f32", "f64")
INTS = ("i32", "i64")
NUMPY_DTYPE = {"bool": np.bool_, "i32": np.int32, "i64": np.int64, "f32": np.float32, "f64": np.float64}
DTYPE_OF_NUMPY = {np.dtype(v): k for k, v in NUMPY_DTYPE.items()}
ITEMSIZE = {"bool": 1, "i32": 4, "i64": 8, "f32": 4, "f64": 8}
ERROR = "?"  # the dtype of a value whose type could not be computed (already reported)


@attrs.frozen
class Sym:
    """A symbolic dim such as `batch`, bound when a value is fed."""

    name: str

    def __str__(self) -> str:
        return self.name


@attrs.frozen
class DimOp:
    """A dim computed from others (`dim(x, 1) - 1`), evaluated once the symbols are known."""

    op: str  # + - * //
    a: "Dim"
    b: "Dim"

    def __str__(self) -> str:
        return f"({self.a}{self.op}{self.b})"


Dim = Union[int, Sym, DimOp]

_DIM_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
            "//": lambda a, b: a // b, "%": lambda a, b: a % b}


def _factors(d: Dim) -> list[Dim]:
    if isinstance(d, DimOp) and d.op == "*":
        return _factors(d.a) + _factors(d.b)
    return [d]


def _product(factors: list[Dim]) -> Dim:
    """A canonical product: the integer part folded and first, symbols in order."""
    const = 1
    rest: list[Dim] = []
    for f in factors:
        if isinstance(f, int):
            const *= f
        else:
            rest.append(f)
    out: Dim = const
    for f in sorted(rest, key=str):
        out = f if out == 1 else DimOp("*", out, f)
    return out


def dim_op(op: str, a: Dim, b: Dim) -> Dim:
    """Arithmetic on dims, folded when both sides are known (and products simplified)."""
    if isinstance(a, int) and isinstance(b, int):
        return _DIM_OPS[op](a, b)
    if op == "*":
        return _product(_factors(a) + _factors(b))
    if op == "//":
        num, den = _factors(a), _factors(b)
        for f in [f for f in den if not isinstance(f, int)]:
            if f in num:
                num.remove(f)
                den.remove(f)
        n, d = _product(num), _product(den)
        if d == 1:
            return n
        if isinstance(n, int) and isinstance(d, int):
            return n // d
        if isinstance(d, int) and isinstance(n, DimOp) and n.op == "*" and isinstance(n.a, int) and n.a % d == 0:
            return _product([n.a // d] + _factors(n.b))
        return DimOp("//", n, d)
    if op in "+-" and b == 0:
        return a
    if op == "-" and a == b:
        return 0
    return DimOp(op, a, b)


def eval_dim(d: Dim, bindings: dict[str, int]) -> int:
    """The integer value of a dim given the fed sizes of the symbols."""
    if isinstance(d, int):
        return d
    if isinstance(d, Sym):
        return bindings[d.name]
    return _DIM_OPS[d.op](eval_dim(d.a, bindings), eval_dim(d.b, bindings))


@attrs.frozen
class TensorType:
    dtype: str
    shape: tuple[Dim, ...] = ()
    weak: bool = False  # a Python-style literal: takes the dtype of what it meets

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_error(self) -> bool:
        return self.dtype == ERROR

    def __str__(self) -> str:
        return format_type(self.dtype, self.shape)


def format_type(dtype: str, shape) -> str:
    return f"{dtype}[{', '.join(str(d) for d in shape)}]"


ERROR_TYPE = TensorType(ERROR, ())


def kind(dtype: str) -> int:
    return {"bool": 0, "i32": 1, "i64": 1, "f32": 2, "f64": 2}[dtype]


def promote(a: TensorType, b: TensorType) -> tuple[str, bool]:
    """The dtype (and weakness) of a binary operation's result, per docs/language.md §3."""
    if a.weak and b.weak:
        d = a.dtype if kind(a.dtype) >= kind(b.dtype) else b.dtype
        return d, True
    if a.weak or b.weak:
        weak, strong = (a, b) if a.weak else (b, a)
        if kind(weak.dtype) > kind(strong.dtype):
            return weak.dtype, False  # i64 * 0.5 -> f64
        return strong.dtype, False
    if a.dtype == b.dtype:
        return a.dtype, False
    if kind(a.dtype) != kind(b.dtype):
        return (a.dtype if kind(a.dtype) > kind(b.dtype) else b.dtype), False
    return (a.dtype if ITEMSIZE[a.dtype] >= ITEMSIZE[b.dtype] else b.dtype), False


class DimConflict(Exception):
    pass


@attrs.define
class DimEnv:
    """Union-find over symbolic dims; a class may be bound to an integer.

    Records where each symbol was first declared and where it was bound, so that a
    conflict can name both places.
    """

    parent: dict[str, str] = attrs.Factory(dict)
    value: dict[str, int] = attrs.Factory(dict)
    bound_at: dict[str, object] = attrs.Factory(dict)  # root -> span of the binding
    declared_at: dict[str, object] = attrs.Factory(dict)
    current_span: object = None  # the span of the expression being checked (set by the builder)

    def declare(self, name: str, span=None) -> Sym:
        if name not in self.parent:
            self.parent[name] = name
            self.declared_at[name] = span
        return Sym(name)

    def find(self, name: str) -> str:
        self.declare(name)
        while self.parent[name] != name:
            self.parent[name] = self.parent[self.parent[name]]
            name = self.parent[name]
        return name

    def resolve(self, d: Dim) -> Dim:
        if isinstance(d, int):
            return d
        if isinstance(d, Sym):
            root = self.find(d.name)
            return self.value.get(root, Sym(root))
        return dim_op(d.op, self.resolve(d.a), self.resolve(d.b))

    def resolve_shape(self, shape) -> tuple[Dim, ...]:
        return tuple(self.resolve(d) for d in shape)

    def unify(self, a: Dim, b: Dim, span=None) -> Dim:
        """Make a and b the same dim; raises DimConflict when they cannot be."""
        a, b = self.resolve(a), self.resolve(b)
        if a == b:
            return a
        if isinstance(a, int) and isinstance(b, int):
            raise DimConflict(f"{a} != {b}")
        if isinstance(a, Sym) or isinstance(b, Sym):
            sym, other = (a, b) if isinstance(a, Sym) else (b, a)
            if isinstance(other, Sym):
                self.parent[other.name] = sym.name
                return sym
            if isinstance(other, int):
                self.value[sym.name] = other
                self.bound_at[sym.name] = span if span is not None else self.current_span
                return other
            return other  # a derived dim: cannot decide statically, checked at run time
        return a  # two derived dims: checked at run time

    def same(self, a: Dim, b: Dim) -> bool | None:
        """True/False when decidable without binding anything, else None."""
        a, b = self.resolve(a), self.resolve(b)
        if a == b:
            return True
        if isinstance(a, int) and isinstance(b, int):
            return False
        return None

    def explain(self, dims) -> str:
        """' (`n` is 3 since line 4)' for the symbols among dims that are bound to numbers."""
        parts = []
        for d in dims:
            if isinstance(d, Sym):
                root = self.find(d.name)
                if root in self.value:
                    where = self.bound_at.get(root)
                    line = f" since line {where.line}" if where is not None and hasattr(where, "line") else ""
                    parts.append(f"`{d.name}` is {self.value[root]}{line}")
        return f" ({'; '.join(parts)})" if parts else ""

    def symbols_of(self, root: str) -> list[str]:
        return sorted(n for n in self.parent if self.find(n) == root)
