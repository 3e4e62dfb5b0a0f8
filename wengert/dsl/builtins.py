"""Built-in functions implemented in Python over primitives (the rest live in stdlib/*.dl).

Each entry is registered with its signature, so that arity and keyword checking (and the
"did you mean" suggestions) are the same for every built-in.
"""
from __future__ import annotations

from typing import Any, Callable

import attrs

from ..runtime.ir import Var
from ..runtime.types import ERROR_TYPE, FLOATS, INTS, dim_op
from .operators import binary, float_operand
from . import limits
from .values import DType, FnRef, describe, is_dim


@attrs.frozen
class Builtin:
    name: str
    names: tuple[str, ...]
    defaults: dict[str, Any]
    impl: Callable[..., Any]


BUILTINS: dict[str, Builtin] = {}
_REQ = object()


def builtin(name: str, *params: str, **defaults: Any):
    def register(fn):
        BUILTINS[name] = Builtin(name, tuple(params) + tuple(defaults), dict(defaults), fn)
        return fn
    return register


def _err(lw, span, msg) -> Var:
    lw.b.error(span, msg)
    return Var(ERROR_TYPE)


def _int(lw, v, span, what: str) -> int | None:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    lw.b.error(span, f"{what} must be an integer known when the program is checked, got {describe(v)}")
    return None


def _axes(lw, axis, rank: int, span) -> tuple[int, ...] | None:
    if axis is None:
        return tuple(range(rank))
    items = axis if isinstance(axis, list) else [axis]
    out = []
    for a in items:
        a = _int(lw, a, span, "axis")
        if a is None:
            return None
        if not -rank <= a < rank:
            lw.b.error(span, f"axis {a} is out of range for a tensor of rank {rank}")
            return None
        out.append(a % rank if rank else 0)
    return tuple(sorted(set(out)))


def _shape(lw, v, span) -> tuple | None:
    if isinstance(v, Var):
        lw.b.error(span, "a shape must be a list of integers known when the program is checked, "
                         "such as [dim(x, 0), 64]")
        return None
    items = v if isinstance(v, list) else [v]
    if not all(is_dim(d) for d in items):
        lw.b.error(span, f"a shape must be a list of integers, got {describe(v)}")
        return None
    for d in items:
        if isinstance(d, int) and d < 0:
            lw.b.error(span, f"negative dimension {d} in a shape")
            return None
    return tuple(items)


def _dtype(lw, v, span, default: str = "f64") -> str | None:
    if v is None:
        return default
    if isinstance(v, DType):
        return v.name
    lw.b.error(span, f"expected a dtype (f32, f64, i32, i64, bool), got {describe(v)}")
    return None


# ---------------------------------------------------------------- elementwise
def _unary_float(prim: str):
    def impl(lw, span, x):
        return lw.b.emit(prim, [float_operand(lw, x, span)], {}, span)
    return impl


for _name, _prim in {"exp": "exp", "log": "log", "log1p": "log1p", "expm1": "expm1", "sqrt": "sqrt",
                     "sin": "sin", "cos": "cos", "tanh": "tanh", "sigmoid": "logistic", "floor": "floor",
                     "ceil": "ceil", "round": "round"}.items():
    builtin(_name, "x")(_unary_float(_prim))


def _unary_number(prim: str):
    def impl(lw, span, x):
        v = lw.tensor(x, span)
        if v.type.dtype == "bool":
            return _err(lw, span, f"arithmetic on bool ({lw.fmt(v.type)}); use cast(x, f32) first")
        return lw.b.emit(prim, [v], {}, span)
    return impl


builtin("abs", "x")(_unary_number("abs"))
builtin("sign", "x")(_unary_number("sign"))
builtin("stop_gradient", "x")(lambda lw, span, x: lw.b.emit("stop_gradient", [lw.tensor(x, span)], {}, span))


@builtin("maximum", "a", "b")
def _maximum(lw, span, a, b):
    x, y = lw.b.promote_all([lw.tensor(a, span), lw.tensor(b, span)], span)
    return lw.b.emit("maximum", [x, y], {}, span)


@builtin("minimum", "a", "b")
def _minimum(lw, span, a, b):
    x, y = lw.b.promote_all([lw.tensor(a, span), lw.tensor(b, span)], span)
    return lw.b.emit("minimum", [x, y], {}, span)


builtin("pow", "x", "y")(lambda lw, span, x, y: binary(lw, "**", x, y, span))


@builtin("where", "cond", "a", "b")
def _where(lw, span, cond, a, b):
    c = lw.tensor(cond, span)
    if not c.type.is_error and c.type.dtype != "bool":
        return _err(lw, span, f"the condition of where must be bool, got {lw.fmt(c.type)}")
    x, y = lw.b.promote_all([lw.tensor(a, span), lw.tensor(b, span)], span)
    return lw.b.emit("where", [c, x, y], {}, span)


@builtin("cast", "x", "dtype")
def _cast(lw, span, x, dtype):
    d = _dtype(lw, dtype, span)
    if d is None:
        return Var(ERROR_TYPE)
    v = lw.tensor(x, span)
    if v.type.is_error:
        return v
    return v if v.type.dtype == d and not v.type.weak else lw.b.emit("cast", [v], {"dtype": d}, span)


# ---------------------------------------------------------------- reductions
def _reduction(prim: str):
    def impl(lw, span, x, axis=None, keepdims=False):
        v = lw.tensor(x, span)
        if v.type.is_error:
            return v
        if v.type.dtype == "bool":
            return _err(lw, span, f"arithmetic on bool ({lw.fmt(v.type)}); use cast(x, f32) first")
        axes = _axes(lw, axis, v.type.rank, span)
        if axes is None:
            return Var(ERROR_TYPE)
        return lw.b.emit(prim, [v], {"axes": axes, "keepdims": bool(keepdims)}, span)
    return impl


for _name, _prim in {"sum": "reduce_sum", "max": "reduce_max", "min": "reduce_min", "prod": "reduce_prod"}.items():
    builtin(_name, "x", axis=None, keepdims=False)(_reduction(_prim))


def count(lw, v: Var, axes: tuple[int, ...], span) -> Any:
    n: Any = 1
    for a in axes:
        n = dim_op("*", n, lw.dims.resolve(v.type.shape[a]))
    return n


@builtin("mean", "x", axis=None, keepdims=False)
def _mean(lw, span, x, axis=None, keepdims=False):
    v = float_operand(lw, x, span)
    total = _reduction("reduce_sum")(lw, span, v, axis, keepdims)
    if total.type.is_error:
        return total
    axes = _axes(lw, axis, v.type.rank, span)
    n = count(lw, v, axes, span)
    return binary(lw, "/", total, n if isinstance(n, int) else lw.b.cast(lw.tensor(n, span), v.type.dtype, span),
                  span)


@builtin("logsumexp", "x", axis=None, keepdims=False)
def _logsumexp(lw, span, x, axis=None, keepdims=False):
    v = float_operand(lw, x, span)
    if v.type.is_error:
        return v
    m = lw.b.emit("stop_gradient", [_reduction("reduce_max")(lw, span, v, axis, True)], {}, span)
    e = lw.b.emit("exp", [binary(lw, "-", v, m, span)], {}, span)
    s = lw.b.emit("log", [_reduction("reduce_sum")(lw, span, e, axis, True)], {}, span)
    out = binary(lw, "+", s, m, span)
    if keepdims or out.type.is_error:
        return out
    axes = _axes(lw, axis, v.type.rank, span)
    return lw.b.emit("reshape", [out], {"shape": tuple(d for i, d in enumerate(out.type.shape) if i not in axes)},
                     span)


@builtin("norm", "x", axis=None, keepdims=False)
def _norm(lw, span, x, axis=None, keepdims=False):
    v = float_operand(lw, x, span)
    return lw.b.emit("sqrt", [_reduction("reduce_sum")(lw, span, binary(lw, "*", v, v, span), axis, keepdims)],
                     {}, span)


@builtin("argmax", "x", axis=None, keepdims=False)
def _argmax(lw, span, x, axis=None, keepdims=False):
    v = lw.tensor(x, span)
    if v.type.is_error:
        return v
    if axis is None:  # over all elements, as numpy.argmax of the flattened tensor
        rank = v.type.rank
        flat = lw.b.emit("reshape", [v], {"shape": (-1,)}, span)
        out = lw.b.emit("argmax", [flat], {"axes": (0,), "keepdims": False}, span)
        return lw.b.emit("reshape", [out], {"shape": (1,) * rank}, span) if keepdims else out
    axes = _axes(lw, axis, v.type.rank, span)
    if axes is None:
        return Var(ERROR_TYPE)
    return lw.b.emit("argmax", [v], {"axes": axes, "keepdims": bool(keepdims)}, span)


# ---------------------------------------------------------------- shapes
@builtin("dim", "x", "axis")
def _dim(lw, span, x, axis):
    v = lw.tensor(x, span)
    if v.type.is_error:
        return Var(ERROR_TYPE)
    axes = _axes(lw, axis, v.type.rank, span)
    if axes is None or len(axes) != 1:
        return Var(ERROR_TYPE)
    return lw.dims.resolve(v.type.shape[axes[0]])


@builtin("shape", "x")
def _shape_of(lw, span, x):
    v = lw.tensor(x, span)
    return [lw.dims.resolve(d) for d in v.type.shape] if not v.type.is_error else Var(ERROR_TYPE)


@builtin("rank", "x")
def _rank(lw, span, x):
    v = lw.tensor(x, span)
    return v.type.rank if not v.type.is_error else Var(ERROR_TYPE)


@builtin("dtype", "x")
def _dtype_of(lw, span, x):
    v = lw.tensor(x, span)
    return DType(v.type.dtype if not v.type.weak or v.type.dtype not in ("i64",) else "f64") \
        if not v.type.is_error else DType("f64")


@builtin("reshape", "x", "shape")
def _reshape(lw, span, x, shape):
    v, s = lw.tensor(x, span), _shape_or_minus(lw, shape, span)
    return Var(ERROR_TYPE) if s is None else lw.b.emit("reshape", [v], {"shape": s}, span)


def _shape_or_minus(lw, shape, span):
    items = shape if isinstance(shape, list) else [shape]
    if all(is_dim(d) for d in items) and all(d >= -1 for d in items if isinstance(d, int)):
        return tuple(items)
    lw.b.error(span, f"a shape must be a list of integers (one may be -1), got {describe(shape)}")
    return None


@builtin("flatten", "x")
def _flatten(lw, span, x):
    return lw.b.emit("reshape", [lw.tensor(x, span)], {"shape": (-1,)}, span)


@builtin("transpose", "x", perm=None)
def _transpose(lw, span, x, perm=None):
    v = lw.tensor(x, span)
    if v.type.is_error:
        return v
    p = tuple(reversed(range(v.type.rank))) if perm is None else perm
    if not isinstance(p, (list, tuple)) or not all(isinstance(i, int) for i in p):
        return _err(lw, span, f"perm must be a list of axes, got {describe(perm)}")
    rank = v.type.rank
    if any(not -rank <= i < rank for i in p) or len(p) != rank:
        return _err(lw, span, f"transpose: {list(p)} is not a permutation of the {rank} axes of {lw.fmt(v.type)}")
    return lw.b.emit("transpose", [v], {"perm": tuple(i % max(v.type.rank, 1) for i in p)}, span)


@builtin("concat", "xs", axis=0)
def _concat(lw, span, xs, axis=0):
    if not isinstance(xs, list) or not xs:
        return _err(lw, span, f"concat needs a list of tensors, got {describe(xs)}")
    parts = lw.b.promote_all([lw.tensor(x, span) for x in xs], span)
    if any(p.type.is_error for p in parts):
        return Var(ERROR_TYPE)
    axes = _axes(lw, axis, parts[0].type.rank, span)
    return Var(ERROR_TYPE) if axes is None else lw.b.emit("concat", parts, {"axis": axes[0]}, span)


@builtin("stack", "xs", axis=0)
def _stack(lw, span, xs, axis=0):
    if not isinstance(xs, list) or not xs:
        return _err(lw, span, f"stack needs a list of tensors, got {describe(xs)}")
    parts = lw.b.promote_all([lw.tensor(x, span) for x in xs], span)
    a = _int(lw, axis, span, "axis")
    return Var(ERROR_TYPE) if a is None else lw.stack(parts, a, span)


@builtin("expand_dims", "x", "axis")
def _expand_dims(lw, span, x, axis):
    v = lw.tensor(x, span)
    a = _int(lw, axis, span, "axis")
    if v.type.is_error or a is None:
        return Var(ERROR_TYPE)
    if not -(v.type.rank + 1) <= a <= v.type.rank:
        return _err(lw, span, f"axis {a} is out of range for expand_dims of rank {v.type.rank}")
    a %= v.type.rank + 1
    return lw.b.emit("reshape", [v], {"shape": v.type.shape[:a] + (1,) + v.type.shape[a:]}, span)


@builtin("squeeze", "x", axis=None)
def _squeeze(lw, span, x, axis=None):
    v = lw.tensor(x, span)
    if v.type.is_error:
        return v
    shape = lw.dims.resolve_shape(v.type.shape)
    axes = tuple(i for i, d in enumerate(shape) if d == 1) if axis is None else _axes(lw, axis, v.type.rank, span)
    if axes is None:
        return Var(ERROR_TYPE)
    for a in axes:
        if shape[a] != 1:
            return _err(lw, span, f"cannot squeeze axis {a} of {lw.fmt(v.type)}: its size is not 1")
    return lw.b.emit("reshape", [v], {"shape": tuple(d for i, d in enumerate(shape) if i not in axes)}, span)


@builtin("broadcast_to", "x", "shape")
def _broadcast_to(lw, span, x, shape):
    s = _shape(lw, shape, span)
    return Var(ERROR_TYPE) if s is None else lw.b.emit("broadcast_to", [lw.tensor(x, span)], {"shape": s}, span)


@builtin("pad", "x", "widths", value=0)
def _pad(lw, span, x, widths, value=0):
    v = lw.tensor(x, span)
    if v.type.is_error:
        return v
    if v.type.rank == 0:
        return _err(lw, span, "pad needs a tensor with at least one axis, got a scalar")
    if isinstance(widths, int):
        widths = [[widths, widths]] * v.type.rank
    ok = isinstance(widths, list) and all(isinstance(w, list) and len(w) == 2 and all(
        isinstance(i, int) and i >= 0 for i in w) for w in widths)
    if not ok:
        return _err(lw, span, "pad widths must be a list of [before, after] pairs of non-negative integers")
    return lw.b.emit("pad", [v], {"widths": tuple(tuple(w) for w in widths), "value": value}, span)


def _fill(value):
    def impl(lw, span, shape, dtype=None):
        s, d = _shape(lw, shape, span), _dtype(lw, dtype, span)
        if s is None or d is None:
            return Var(ERROR_TYPE)
        return lw.b.emit("fill", [], {"shape": s, "value": value, "dtype": d, "weak": dtype is None}, span)
    return impl


builtin("zeros", "shape", dtype=None)(_fill(0))
builtin("ones", "shape", dtype=None)(_fill(1))


@builtin("eye", "n", dtype=None)
def _eye(lw, span, n, dtype=None):
    d = _dtype(lw, dtype, span)
    if not is_dim(n) or d is None:
        return _err(lw, span, f"eye needs an integer size, got {describe(n)}")
    rows = lw.b.emit("iota", [], {"shape": (n, n), "axis": 0, "dtype": "i64"}, span)
    cols = lw.b.emit("iota", [], {"shape": (n, n), "axis": 1, "dtype": "i64"}, span)
    return lw.b.emit("cast", [lw.b.emit("eq", [rows, cols], {}, span)], {"dtype": d}, span)


@builtin("arange", "start", stop=None, step=1, dtype=None)
def _arange(lw, span, start, stop=None, step=1, dtype=None):
    if stop is None:
        start, stop = 0, start
    if not (is_dim(start) and is_dim(stop) and isinstance(step, int) and step != 0):
        return _err(lw, span, "arange needs integer bounds known when the program is checked")
    n = dim_op("//", dim_op("+", dim_op("-", stop, start), step - 1 if step > 0 else step + 1), step)
    if isinstance(n, int) and n < 0:
        n = 0
    d = _dtype(lw, dtype, span, "i64")
    if d is None:
        return Var(ERROR_TYPE)
    v = lw.b.emit("iota", [], {"shape": (n,), "axis": 0, "dtype": d}, span)
    if step != 1:
        v = binary(lw, "*", v, step, span)
    return binary(lw, "+", v, start, span) if start != 0 else v


@builtin("onehot", "y", "classes", dtype=None)
def _onehot(lw, span, y, classes, dtype=None):
    v = lw.tensor(y, span)
    d = _dtype(lw, dtype, span)
    if v.type.is_error or d is None or _int(lw, classes, span, "classes") is None:
        return Var(ERROR_TYPE)
    if v.type.dtype not in INTS:
        v = lw.b.emit("cast", [v], {"dtype": "i64"}, span)
    ids = lw.b.emit("reshape", [v], {"shape": v.type.shape + (1,)}, span)
    cls = lw.b.emit("iota", [], {"shape": (classes,), "axis": 0, "dtype": v.type.dtype}, span)
    return lw.b.emit("cast", [lw.b.emit("eq", [ids, cls], {}, span)], {"dtype": d}, span)


# ---------------------------------------------------------------- linear algebra
def matmul(lw, a: Var, b: Var, span) -> Var:
    x, y = lw.b.promote_all([a, b], span)
    return lw.b.emit("matmul", [x, y], {}, span)


builtin("matmul", "a", "b")(lambda lw, span, a, b: matmul(lw, lw.tensor(a, span), lw.tensor(b, span), span))


@builtin("dot", "a", "b")
def _dot(lw, span, a, b):
    x, y = lw.tensor(a, span), lw.tensor(b, span)
    if x.type.is_error or y.type.is_error:
        return Var(ERROR_TYPE)
    if x.type.rank == 0 or y.type.rank == 0:
        return binary(lw, "*", x, y, span)
    if y.type.rank <= 2:
        return matmul(lw, x, y, span)
    # numpy.dot: contract the last axis of x with the second-to-last of y.
    r = y.type.rank
    yt = lw.b.emit("transpose", [y], {"perm": (r - 2,) + tuple(i for i in range(r) if i != r - 2)}, span)
    k = y.type.shape[-2]
    y2 = lw.b.emit("reshape", [yt], {"shape": (k, -1)}, span)
    x2 = lw.b.emit("reshape", [x], {"shape": (-1, x.type.shape[-1])}, span)
    out = matmul(lw, x2, y2, span)
    shape = x.type.shape[:-1] + tuple(d for i, d in enumerate(y.type.shape) if i != r - 2)
    return lw.b.emit("reshape", [out], {"shape": shape}, span)


@builtin("outer", "a", "b")
def _outer(lw, span, a, b):
    x = lw.b.emit("reshape", [lw.tensor(a, span)], {"shape": (-1, 1)}, span)
    y = lw.b.emit("reshape", [lw.tensor(b, span)], {"shape": (1, -1)}, span)
    return binary(lw, "*", x, y, span)


def _floats(lw, span, *vs) -> list[Var] | None:
    out = [float_operand(lw, v, span) for v in vs]
    if any(v.type.is_error for v in out):
        return None
    return lw.b.promote_all(out, span)


def _matrix_fn(prim: str):
    def impl(lw, span, a):
        ops_ = _floats(lw, span, a)
        return Var(ERROR_TYPE) if ops_ is None else lw.b.emit(prim, ops_, {}, span)
    return impl


def _rhs_fn(prim: str):
    def impl(lw, span, a, b):
        ops_ = _floats(lw, span, a, b)
        return Var(ERROR_TYPE) if ops_ is None else lw.b.emit(prim, ops_, {}, span)
    return impl


for _name in ("inv", "det", "cholesky"):
    builtin(_name, "a")(_matrix_fn(_name))
for _name in ("solve", "lstsq"):
    builtin(_name, "a", "b")(_rhs_fn(_name))


@builtin("slogdet", "a")
def _slogdet(lw, span, a):
    """numpy.linalg.slogdet: [sign, log |det a|] (bind both with `s, l = slogdet(a)`)."""
    ops_ = _floats(lw, span, a)
    if ops_ is None:
        return [Var(ERROR_TYPE), Var(ERROR_TYPE)]
    return [lw.b.emit("detsign", ops_, {}, span), lw.b.emit("logabsdet", ops_, {}, span)]


@builtin("triangular_solve", "a", "b", lower=True, transpose=False)
def _triangular_solve(lw, span, a, b, lower=True, transpose=False):
    """x with T x = b (T x = b with transpose=true meaning Tᵀ x = b), T the lower (or upper) triangle of a."""
    if not isinstance(lower, bool) or not isinstance(transpose, bool):
        return _err(lw, span, "triangular_solve: `lower` and `transpose` must be true or false")
    ops_ = _floats(lw, span, a, b)
    return Var(ERROR_TYPE) if ops_ is None else lw.b.emit("triangular_solve", ops_,
                                                          {"lower": lower, "transpose": transpose}, span)


def _triangle(prim: str):
    def impl(lw, span, x, k=0):
        v = lw.tensor(x, span)
        if v.type.is_error or _int(lw, k, span, "k") is None:
            return Var(ERROR_TYPE)
        if v.type.rank < 2:
            return _err(lw, span, f"{prim} needs a matrix (rank >= 2), got {lw.fmt(v.type)}")
        return lw.b.emit(prim, [v], {"k": k}, span)
    return impl


builtin("tril", "x", k=0)(_triangle("tril"))
builtin("triu", "x", k=0)(_triangle("triu"))


# ---------------------------------------------------------------- neural
def _pair(lw, v, span, what) -> tuple[int, int] | None:
    items = v if isinstance(v, list) else [v, v]
    if len(items) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in items):
        lw.b.error(span, f"{what} must be a positive integer or a pair of them, got {describe(v)}")
        return None
    return tuple(items)


@builtin("conv2d", "x", "W", stride=1, padding="valid")
def _conv2d(lw, span, x, W, stride=1, padding="valid"):
    s = _pair(lw, stride, span, "stride")
    if s is None:
        return Var(ERROR_TYPE)
    if padding not in ("valid", "same"):
        return _err(lw, span, f'padding must be "valid" or "same", got {padding!r}')
    a, w = lw.b.promote_all([float_operand(lw, x, span), float_operand(lw, W, span)], span)
    return lw.b.emit("conv2d", [a, w], {"stride": s, "padding": padding}, span)


def _pool(prim: str):
    def impl(lw, span, x, size, stride=None):
        k = _pair(lw, size, span, "size")
        s = _pair(lw, stride if stride is not None else size, span, "stride")
        if k is None or s is None:
            return Var(ERROR_TYPE)
        return lw.b.emit(prim, [float_operand(lw, x, span)], {"size": k, "stride": s}, span)
    return impl


builtin("maxpool2d", "x", "size", stride=None)(_pool("maxpool2d"))
builtin("avgpool2d", "x", "size", stride=None)(_pool("avgpool2d"))


@builtin("l2pool2d", "x", "size", stride=None)
def _l2pool(lw, span, x, size, stride=None):
    v = float_operand(lw, x, span)
    k = _pair(lw, size, span, "size")
    if k is None:
        return Var(ERROR_TYPE)
    avg = _pool("avgpool2d")(lw, span, binary(lw, "*", v, v, span), size, stride)
    return lw.b.emit("sqrt", [binary(lw, "*", avg, k[0] * k[1], span)], {}, span)


@builtin("embedding", "ids", "E")
def _embedding(lw, span, ids, E):
    return lw.b.emit("gather", [lw.tensor(E, span), lw.tensor(ids, span)], {"axis": 0}, span)


# ---------------------------------------------------------------- random and training
def _draw(prim: str, names: tuple[str, ...]):
    def impl(lw, span, shape, dtype=None, **params):
        s, d = _shape(lw, shape, span), _dtype(lw, dtype, span)
        if s is None or d is None:
            return Var(ERROR_TYPE)
        operands = [lw.b.cast(float_operand(lw, params[n], span), d, span) for n in names]
        v = lw.b.emit(prim, operands, {"shape": s, "dtype": d}, span)
        if dtype is None and not v.type.is_error:
            v.type = attrs.evolve(v.type, weak=True)
        return v
    return impl


builtin("normal", "shape", mean=0.0, std=1.0, dtype=None)(_draw("random_normal", ("mean", "std")))
builtin("uniform", "shape", low=0.0, high=1.0, dtype=None)(_draw("random_uniform", ("low", "high")))
builtin("bernoulli", "shape", p=0.5, dtype=None)(_draw("random_bernoulli", ("p",)))
builtin("training")(lambda lw, span: lw.b.emit("training", [], {}, span))


# ---------------------------------------------------------------- metrics
@builtin("accuracy", "pred", "y")
def _accuracy(lw, span, pred, y):
    p, t = lw.tensor(pred, span), lw.tensor(y, span)
    if p.type.is_error or t.type.is_error:
        return Var(ERROR_TYPE)
    if p.type.rank >= 2 and lw.dims.resolve(p.type.shape[-1]) == 1:
        # one column is a binary prediction (Keras's binary_accuracy), not an argmax over one class
        p = lw.b.emit("reshape", [p], {"shape": p.type.shape[:-1]}, span)
        if t.type.rank == p.type.rank + 1 and lw.dims.resolve(t.type.shape[-1]) == 1:
            t = lw.b.emit("reshape", [t], {"shape": t.type.shape[:-1]}, span)
        pc, tc = _as_label(lw, p, span), _as_label(lw, t, span)
    elif p.type.rank >= 2:
        pc = _argmax(lw, span, p, -1)
        tc = _argmax(lw, span, t, -1) if t.type.rank == p.type.rank else lw.b.cast(t, "i64", span)
    else:
        pc, tc = _as_label(lw, p, span), _as_label(lw, t, span)
    hits = lw.b.emit("eq", lw.b.promote_all([pc, tc], span), {}, span)
    return _mean(lw, span, lw.b.emit("cast", [hits], {"dtype": "f64"}, span))


def _as_label(lw, v: Var, span) -> Var:
    if v.type.dtype in FLOATS:
        return lw.b.emit("cast", [binary(lw, ">", v, 0.5, span)], {"dtype": "i64"}, span)
    return lw.b.cast(v, "i64", span)


# ---------------------------------------------------------------- derivatives in the language
def _differentiable(lw, span, v, what: str) -> Var | None:
    v = lw.tensor(v, span)
    if v.type.is_error:
        return None
    if v.type.dtype not in FLOATS:
        lw.b.error(span, f"{what} must be floating-point, got {lw.fmt(v.type)}")
        return None
    return v


def _scalar(lw, span, f, what: str) -> Var | None:
    v = _differentiable(lw, span, f, what)
    if v is not None and any(lw.dims.resolve(d) != 1 for d in v.type.shape):
        lw.b.error(span, f"{what} must be a scalar, got {lw.fmt(v.type)} (reduce it with sum or mean)")
        return None
    return v


@builtin("grad", "f", "wrt")
def _grad(lw, span, f, wrt):
    """Theano's T.grad: the gradient of a scalar with respect to a value, or a list of gradients."""
    from .grads import grad_of
    many = isinstance(wrt, list)
    fv = _scalar(lw, span, f, "the first argument of grad")
    xs = [_differentiable(lw, span, x, "what grad differentiates with respect to") for x in (wrt if many else [wrt])]
    if fv is None or any(x is None for x in xs) or not xs:
        return [Var(ERROR_TYPE) for _ in xs] if many else Var(ERROR_TYPE)
    gs = grad_of(lw.b, fv, xs, span)
    return gs if many else gs[0]


@builtin("jacobian", "y", "x")
def _jacobian(lw, span, y, x):
    """d y_i / d x, stacked: [dim(y, 0), *shape(x)] (y a vector of a size known when checking)."""
    import numpy as np

    from .grads import grad_of
    yv, xv = _differentiable(lw, span, y, "jacobian's y"), _differentiable(lw, span, x, "jacobian's x")
    if yv is None or xv is None:
        return Var(ERROR_TYPE)
    if yv.type.rank == 0:
        return grad_of(lw.b, yv, [xv], span)[0]
    m = lw.dims.resolve(yv.type.shape[0])
    if yv.type.rank != 1 or not isinstance(m, int):
        return _err(lw, span, f"jacobian needs a vector y whose size is known when the program is checked, "
                              f"got {lw.fmt(yv.type)}")
    rows = []
    for i in range(m):
        seed = lw.b.const(np.eye(m, dtype=np.float64)[i], span, dtype=yv.type.dtype, weak=False)
        rows.append(grad_of(lw.b, yv, [xv], span, seed=seed)[0])
    return lw.stack(rows, 0, span)


@builtin("hvp", "f", "x", "v")
def _hvp(lw, span, f, x, v):
    """The Hessian of the scalar f at x times v: grad(sum(grad(f, x) * v), x)."""
    from .grads import grad_of
    fv, xv = _scalar(lw, span, f, "the first argument of hvp"), _differentiable(lw, span, x, "hvp's x")
    if fv is None or xv is None:
        return Var(ERROR_TYPE)
    (g,) = grad_of(lw.b, fv, [xv], span)
    product = binary(lw, "*", g, v, span)
    if product.type.is_error:
        return product
    inner = lw.b.emit("reduce_sum", [product], {"axes": tuple(range(product.type.rank)), "keepdims": False}, span)
    return grad_of(lw.b, inner, [xv], span)[0]


# ---------------------------------------------------------------- functional loops
@builtin("scan", "f", "init", "xs", axis=1, args=None)
def _scan(lw, span, f, init, xs, axis=1, args=None):
    from .loops import lower_scan
    if not isinstance(f, FnRef):
        return _err(lw, span, f"scan needs a function as its first argument, got {describe(f)}")
    return lower_scan(lw, f.name, init, xs, axis, span, args)


# ---------------------------------------------------------------- static helpers for the layers
@builtin("pair", "x")
def _pair_of(lw, span, x):
    """An int k as [k, k]; a pair [a, b] as it is (Keras's kernel_size/strides convention)."""
    p = _pair(lw, x, span, "a size")
    return Var(ERROR_TYPE) if p is None else list(p)


@builtin("one_of", "value", "options")
def _one_of(lw, span, value, options):
    """The position of a static value (a string option such as feedback="output") in a list of options."""
    from ..diagnostics import did_you_mean
    if not isinstance(options, list):
        return _err(lw, span, f"one_of needs a list of options, got {describe(options)}")
    for k, o in enumerate(options):
        if type(o) is type(value) and o == value:
            return k
    shown = ", ".join(f'"{o}"' if isinstance(o, str) else describe(o) for o in options)
    got = f'"{value}"' if isinstance(value, str) else describe(value)
    hint = did_you_mean(value, [o for o in options if isinstance(o, str)]) if isinstance(value, str) else ""
    return _err(lw, span, f"{got} is not one of {shown}{hint}")


@builtin("unit_forget_bias", "units", gates=4, forget=1)
def _unit_forget_bias(lw, span, units, gates=4, forget=1):
    """Keras's unit_forget_bias: a static list of gates * units zeros with a block of ones for the forget
    gate (gate number `forget`); usable as a param's initial value."""
    u, g, k = (_int(lw, v, span, what) for v, what in ((units, "units"), (gates, "gates"), (forget, "forget")))
    if u is None or g is None or k is None:
        return Var(ERROR_TYPE)
    if u <= 0 or not 0 <= k < g:
        return _err(lw, span, f"unit_forget_bias: need units > 0 and 0 <= forget < gates, got {u}, {k}, {g}")
    if g * u > limits.MAX_STATIC_ITEMS:
        return _err(lw, span, f"unit_forget_bias: {g} gates of {u:,} units make {g * u:,} numbers, more than "
                              f"the {limits.MAX_STATIC_ITEMS:,} a static list may hold")
    return [0.0] * (k * u) + [1.0] * u + [0.0] * ((g - k - 1) * u)

