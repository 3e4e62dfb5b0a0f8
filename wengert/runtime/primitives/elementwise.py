"""Elementwise primitives: unary math, binary arithmetic, comparisons, logic, where, cast."""
from __future__ import annotations

import numpy as np

from ..types import FLOATS, NUMPY_DTYPE, TensorType
from . import REGISTRY, ShapeError, define
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
    define(_name, _binary_rule(_result), _kernel, broadcasts=True)


def _where_rule(env, c: TensorType, a: TensorType, b: TensorType, **_):
    if c.dtype != "bool":
        raise ShapeError(f"the condition of where must be bool, got {fmt(env, c)}")
    if a.dtype != b.dtype:
        raise ShapeError(f"dtype mismatch between the branches of where: {fmt(env, a)} and {fmt(env, b)}")
    return TensorType(a.dtype, broadcast_shapes(env, c.shape, a.shape, b.shape), weak=a.weak and b.weak)


define("where", _where_rule, np.where, broadcasts=True)


def _cast_rule(env, x: TensorType, *, dtype: str):
    return TensorType(dtype, x.shape)


define("cast", _cast_rule, lambda x, *, dtype: x.astype(NUMPY_DTYPE[dtype], copy=False))


def _const_rule(env, *, value: np.ndarray, weak: bool = False):
    from ..types import DTYPE_OF_NUMPY
    return TensorType(DTYPE_OF_NUMPY[value.dtype], value.shape, weak=weak)


define("const", _const_rule, lambda *, value, weak=False: value)


# ---------------------------------------------------------------- derivative rules
from .. import ops  # noqa: E402
from ..ops import lift  # noqa: E402
from . import rules  # noqa: E402


def _unary(deriv_np, deriv_ops):
    """Rules for y = f(x): the JVP multiplies by f'(x) (NumPy), the VJP by f'(x) (ops)."""
    def jvp(primals, tangents, out, **_):
        (x,), (t,) = primals, tangents
        return None if t is None else t * deriv_np(x, out)

    def vjp(g, out, x, **_):
        return (ops.scale(g, deriv_ops(x, out)),)
    return jvp, vjp


def _half(x):
    return ops.const_like(0.5, x)


def _one(x):
    return ops.const_like(1.0, x)


UNARY_RULES = {
    "exp": (lambda x, y: y, lambda x, y: y),
    "log": (lambda x, y: 1 / x, lambda x, y: ops.div(_one(x), x)),
    "log1p": (lambda x, y: 1 / (1 + x), lambda x, y: ops.div(_one(x), ops.add(_one(x), x))),
    "expm1": (lambda x, y: y + 1, lambda x, y: ops.add(y, _one(x))),
    "sqrt": (lambda x, y: 0.5 / y, lambda x, y: ops.div(_half(x), y)),
    "sin": (lambda x, y: np.cos(x), lambda x, y: ops.bind("cos", x)),
    "cos": (lambda x, y: -np.sin(x), lambda x, y: ops.neg(ops.bind("sin", x))),
    "tanh": (lambda x, y: 1 - y * y, lambda x, y: ops.sub(_one(x), ops.mul(y, y))),
    "logistic": (lambda x, y: y * (1 - y), lambda x, y: ops.mul(y, ops.sub(_one(x), y))),
    "abs": (lambda x, y: np.sign(x), lambda x, y: ops.bind("sign", x)),  # abs'(0) = 0
}
for _name, (_np_rule, _ops_rule) in UNARY_RULES.items():
    rules(_name, *_unary(_np_rule, _ops_rule))

rules("neg", lambda p, t, out: None if t[0] is None else -t[0], lambda g, out, x: (ops.neg(g),))
for _name in ("sign", "floor", "ceil", "round", "not", "lt", "le", "gt", "ge", "eq", "ne", "and", "or"):
    REGISTRY[_name].differentiable = False
    rules(_name, lambda p, t, out, **_: None, lambda g, out, *xs, **_: tuple(None for _ in xs))
REGISTRY["stop_gradient"].differentiable = False
rules("stop_gradient", lambda p, t, out: None, lambda g, out, x: (None,))


def _binary_jvp(da, db):
    """JVP of an elementwise binary op from its partials (NumPy, broadcast to the output)."""
    def jvp(primals, tangents, out, **_):
        a, b = primals
        ta, tb = tangents
        r = out.ndim
        result = None
        if ta is not None:
            result = lift(ta, r) * da(a, b, out)
        if tb is not None:
            term = lift(tb, r) * db(a, b, out)
            result = term if result is None else result + term
        return None if result is None else np.broadcast_to(result, (result.shape[0],) + out.shape)
    return jvp


def _binary_vjp(da, db):
    def vjp(g, out, a, b, **_):
        sa, sb = ops.primal(a).shape, ops.primal(b).shape
        ga = None if da is None else ops.unbroadcast(ops.scale(g, da(a, b, out)), sa)
        gb = None if db is None else ops.unbroadcast(ops.scale(g, db(a, b, out)), sb)
        return ga, gb
    return vjp


def _ones(a, b, out):
    return np.ones((), dtype=out.dtype)


def _tie(x, y, greater):
    """d max(x, y)/dx with ties shared equally (docs/language.md §8): 1, 0.5 or 0 (wheres, so
    that it runs unchanged on device arrays)."""
    dt = np.result_type(x, y)
    one, half, zero = (np.asarray(v, dtype=dt) for v in (1.0, 0.5, 0.0))
    return np.where(greater(x, y), one, np.where(x == y, half, zero))


rules("add", _binary_jvp(_ones, _ones),
      _binary_vjp(lambda a, b, o: ops.const_like(1.0, o), lambda a, b, o: ops.const_like(1.0, o)))
rules("sub", _binary_jvp(_ones, lambda a, b, o: -np.ones((), o.dtype)),
      _binary_vjp(lambda a, b, o: ops.const_like(1.0, o), lambda a, b, o: ops.const_like(-1.0, o)))
rules("mul", _binary_jvp(lambda a, b, o: b, lambda a, b, o: a), _binary_vjp(lambda a, b, o: b, lambda a, b, o: a))
rules("div", _binary_jvp(lambda a, b, o: 1 / b, lambda a, b, o: -o / b),
      _binary_vjp(lambda a, b, o: ops.div(ops.const_like(1.0, o), b), lambda a, b, o: ops.neg(ops.div(o, b))))


def _pow_db(a, b, o):
    return np.where(a > 0, np.log(np.where(a > 0, a, 1)), 0) * o


def _pow_db_ops(a, b, o):
    pa = ops.primal(a)
    safe = ops.bind("where", pa > 0, a, ops.const_like(1.0, pa))
    return ops.mul(ops.bind("where", pa > 0, ops.bind("log", safe), ops.const_like(0.0, pa)), o)


rules("pow", _binary_jvp(lambda a, b, o: b * a ** (b - 1), _pow_db),
      _binary_vjp(lambda a, b, o: ops.mul(b, ops.bind("pow", a, ops.sub(b, ops.const_like(1.0, b)))), _pow_db_ops))
rules("mod", _binary_jvp(_ones, lambda a, b, o: -np.floor(a / b)),
      _binary_vjp(lambda a, b, o: ops.const_like(1.0, o),
                  lambda a, b, o: ops.neg(ops.bind("floor", ops.div(ops.primal(a), ops.primal(b))))))
rules("maximum", _binary_jvp(lambda a, b, o: _tie(a, b, np.greater), lambda a, b, o: _tie(b, a, np.greater)),
      _binary_vjp(lambda a, b, o: _tie(ops.primal(a), ops.primal(b), np.greater),
                  lambda a, b, o: _tie(ops.primal(b), ops.primal(a), np.greater)))
rules("minimum", _binary_jvp(lambda a, b, o: _tie(a, b, np.less), lambda a, b, o: _tie(b, a, np.less)),
      _binary_vjp(lambda a, b, o: _tie(ops.primal(a), ops.primal(b), np.less),
                  lambda a, b, o: _tie(ops.primal(b), ops.primal(a), np.less)))


def _where_jvp(primals, tangents, out):
    c, a, b = primals
    _, ta, tb = tangents
    r = out.ndim
    t = tangents[1] if tangents[1] is not None else tangents[2]
    zero = np.zeros((), dtype=out.dtype)
    ta = zero if ta is None else lift(ta, r)
    tb = zero if tb is None else lift(tb, r)
    res = np.where(c, ta, tb)
    return np.broadcast_to(res, (t.shape[0],) + out.shape)


def _where_vjp(g, out, c, a, b):
    zero = ops.const_like(0.0, out)
    pc = ops.primal(c)
    # The branch not taken gets an exact zero cotangent, never 0 * inf.
    ga = ops.unbroadcast(ops.bind("where", pc, g, zero), ops.primal(a).shape)
    gb = ops.unbroadcast(ops.bind("where", pc, zero, g), ops.primal(b).shape)
    return None, ga, gb


rules("where", _where_jvp, _where_vjp)


def _float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def _cast_jvp(primals, tangents, out, *, dtype):
    (x,), (t,) = primals, tangents
    if t is None or not (_float(x.dtype) and _float(out.dtype)):
        return None
    return t.astype(out.dtype)


def _cast_vjp(g, out, x, *, dtype):
    px = ops.primal(x)
    if not (_float(px.dtype) and _float(ops.primal(out).dtype)):
        return (None,)
    return (ops.bind("cast", g, dtype=DTYPE_NAME[px.dtype]),)


rules("cast", _cast_jvp, _cast_vjp)
rules("const", lambda p, t, out, **_: None, lambda g, out, **_: ())


from ..types import DTYPE_OF_NUMPY as DTYPE_NAME  # noqa: E402
