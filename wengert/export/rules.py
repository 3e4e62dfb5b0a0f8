"""The ONNX lowering rules, one per primitive: `rule(low, eqn, *operand_names, **params)` emits
nodes through `low` (lowering.Lowering) and returns the name of the result. A primitive without
a rule (the derivative-only transposes, random draws at run time) cannot be exported; control
flow (`if`, `for`, `training`) is in CONTROL, decided while exporting."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..runtime.ir import Eqn
from .lowering import Lowering, numpy_dtype, onnx_dtype

Rule = Callable[..., str]
RULES: dict[str, Rule] = {}
INT64_MAX = np.iinfo(np.int64).max


def rule(*names: str):
    def register(fn: Rule) -> Rule:
        for n in names:
            RULES[n] = fn
        return fn
    return register


# ---------------------------------------------------------------- elementwise
UNARY = {"abs": "Abs", "ceil": "Ceil", "cos": "Cos", "exp": "Exp", "floor": "Floor", "log": "Log", "neg": "Neg",
         "not": "Not", "round": "Round", "sign": "Sign", "sin": "Sin", "sqrt": "Sqrt", "tanh": "Tanh",
         "logistic": "Sigmoid", "stop_gradient": "Identity"}
BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max",
          "minimum": "Min", "and": "And", "or": "Or", "eq": "Equal", "lt": "Less", "le": "LessOrEqual",
          "gt": "Greater", "ge": "GreaterOrEqual"}


def _unary(op: str) -> Rule:
    return lambda low, e, x, **_: low.node(op, [x], e.prim)


def _binary(op: str) -> Rule:
    return lambda low, e, a, b, **_: low.node(op, [a, b], e.prim)


for _prim, _op in UNARY.items():
    RULES[_prim] = _unary(_op)
for _prim, _op in BINARY.items():
    RULES[_prim] = _binary(_op)


def _one(low: Lowering, e: Eqn) -> str:
    return low.const(np.ones((), numpy_dtype(e.outputs[0].type.dtype)))


@rule("ne")
def _ne(low, e, a, b, **_):
    return low.node("Not", [low.node("Equal", [a, b], "eq")], "ne")


@rule("expm1")
def _expm1(low, e, x, **_):
    return low.node("Sub", [low.node("Exp", [x], "exp"), _one(low, e)], "expm1")


@rule("log1p")
def _log1p(low, e, x, **_):
    return low.node("Log", [low.node("Add", [x, _one(low, e)], "add")], "log1p")


@rule("mod")
def _mod(low, e, a, b, **_):
    """NumPy's mod takes the divisor's sign: ONNX Mod for integers, a - floor(a / b) * b for floats."""
    if e.outputs[0].type.dtype in ("f32", "f64"):
        floor = low.node("Floor", [low.node("Div", [a, b], "div")], "floor")
        return low.node("Sub", [a, low.node("Mul", [floor, b], "mul")], "mod")
    return low.node("Mod", [a, b], "mod", fmod=0)


@rule("where")
def _where(low, e, c, a, b, **_):
    return low.node("Where", [c, a, b], "where")


@rule("cast")
def _cast(low, e, x, *, dtype, **_):
    return low.node("Cast", [x], "cast", to=onnx_dtype(dtype))


# ---------------------------------------------------------------- linear algebra and neural
@rule("matmul")
def _matmul(low, e, a, b, **_):
    ta, tb = e.inputs[0].type, e.inputs[1].type
    if ta.rank == 2 and tb.rank == 2:
        return low.node("Gemm", [a, b], "gemm")
    return low.node("MatMul", [a, b], "matmul")


NHWC_TO_NCHW, NCHW_TO_NHWC, HWIO_TO_OIHW = [0, 3, 1, 2], [0, 2, 3, 1], [3, 2, 0, 1]


def _nchw(low, x: str) -> str:
    return low.node("Transpose", [x], "nchw", perm=NHWC_TO_NCHW)


def _nhwc(low, x: str) -> str:
    return low.node("Transpose", [x], "nhwc", perm=NCHW_TO_NHWC)


@rule("conv2d")
def _conv2d(low, e, x, w, *, stride, padding, **_):
    """The program's NHWC images and HWIO filters, transposed to ONNX's NCHW and OIHW around Conv."""
    kh, kw = (low.concrete(d) for d in e.inputs[1].type.shape[:2])
    pads = {"auto_pad": "SAME_UPPER"} if padding == "same" else {"pads": [0, 0, 0, 0]}
    filters = low.node("Transpose", [w], "oihw", perm=HWIO_TO_OIHW)
    y = low.node("Conv", [_nchw(low, x), filters], "conv", kernel_shape=[kh, kw], strides=list(stride), **pads)
    return _nhwc(low, y)


def _pool(op: str) -> Rule:
    def lower(low, e, x, *, size, stride, **_):
        return _nhwc(low, low.node(op, [_nchw(low, x)], op.lower(), kernel_shape=list(size), strides=list(stride)))
    return lower


RULES["maxpool2d"] = _pool("MaxPool")
RULES["avgpool2d"] = _pool("AveragePool")


# ---------------------------------------------------------------- reductions
REDUCTIONS = {"reduce_sum": "ReduceSum", "reduce_max": "ReduceMax", "reduce_min": "ReduceMin",
              "reduce_prod": "ReduceProd"}


def _reduce(op: str) -> Rule:
    def lower(low, e, x, *, axes, keepdims=False, **_):
        return low.node(op, [x, low.ints(axes)], op.lower(), keepdims=int(bool(keepdims)),
                        noop_with_empty_axes=int(not axes))
    return lower


for _prim, _op in REDUCTIONS.items():
    RULES[_prim] = _reduce(_op)


@rule("argmax")
def _argmax(low, e, x, *, axes, keepdims=False, **_):
    (axis,) = axes
    return low.node("ArgMax", [x], "argmax", axis=axis, keepdims=int(bool(keepdims)))


# ---------------------------------------------------------------- shapes
@rule("reshape")
def _reshape(low, e, x, *, shape, **_):
    return low.node("Reshape", [x, low.shape(shape)], "reshape")


@rule("transpose")
def _transpose(low, e, x, *, perm, **_):
    return low.node("Transpose", [x], "transpose", perm=list(perm))


@rule("broadcast_to")
def _broadcast_to(low, e, x, *, shape, **_):
    return low.node("Expand", [x, low.shape(shape)], "expand")


@rule("concat")
def _concat(low, e, *xs, axis, **_):
    return low.node("Concat", list(xs), "concat", axis=axis)


@rule("slice")
def _slice(low, e, x, *, starts, stops, steps, **_):
    """Slice's bounds, a stop at the end of a symbolic axis as INT64_MAX (no Shape needed)."""
    shape = e.inputs[0].type.shape
    dims = low.module.dims

    def bound(d, axis, step):
        if d is None:
            return low.ints([INT64_MAX if step > 0 else -INT64_MAX])
        if dims.resolve(d) == dims.resolve(shape[axis]) and low.concrete(d) is None:
            return low.ints([INT64_MAX])
        return low.dim(d)
    axes = list(range(len(starts)))
    begin = low.node("Concat", [bound(a, k, 1) if a is not None else low.ints([0]) for k, a in enumerate(starts)],
                     "starts", axis=0)
    end = low.node("Concat", [bound(b, k, s) for k, (b, s) in enumerate(zip(stops, steps))], "stops", axis=0)
    return low.node("Slice", [x, begin, end, low.ints(axes), low.ints(steps)], "slice")


@rule("pad")
def _pad(low, e, x, *, widths, value=0, **_):
    pads = [lo for lo, _ in widths] + [hi for _, hi in widths]
    fill = low.const(np.asarray(value, numpy_dtype(e.inputs[0].type.dtype)))
    return low.node("Pad", [x, low.ints(pads), fill], "pad", mode="constant")


@rule("index")
def _index(low, e, x, i, **params):
    return low.node("Gather", [x, i], "index", axis=params["axis"])


@rule("gather")
def _gather(low, e, x, ids, *, axis, **_):
    """An Embedding's lookup."""
    return low.node("Gather", [x, ids], "gather", axis=axis)


@rule("fill")
def _fill(low, e, *, shape, value, dtype, **_):
    tensor = low.onnx.numpy_helper.from_array(np.asarray([value], numpy_dtype(dtype)), "value")
    return low.node("ConstantOfShape", [low.shape(shape)], "fill", value=tensor)


@rule("iota")
def _iota(low, e, *, shape, axis, dtype, **_):
    n = low.node("Squeeze", [low.dim(shape[axis])], "n")
    zero, one = (low.const(np.asarray(k, np.int64)) for k in (0, 1))
    arange = low.node("Range", [zero, n, one], "range")
    view = [1] * len(shape)
    view[axis] = -1
    counted = low.node("Expand", [low.node("Reshape", [arange, low.ints(view)], "view"), low.shape(shape)], "iota")
    return low.node("Cast", [counted], "iota", to=onnx_dtype(dtype))


@rule("dimsize")
def _dimsize(low, e, *, dim, **_):
    return low.node("Squeeze", [low.dim(dim)], "dimsize")


# ---------------------------------------------------------------- control, decided while exporting
def _training(low: Lowering, e: Eqn) -> None:
    low.known(e.outputs[0], False)  # an exported model is the inference graph


def _if(low: Lowering, e: Eqn) -> None:
    cond = e.inputs[0]
    if cond.id not in low.static:
        raise low.error("this `if` decides on a value known only at run time; only conditions known while "
                        "exporting (such as training()) can be exported")
    region = e.regions[0] if bool(low.static[cond.id]) else e.regions[1]
    low.block(region)
    low.eqn = e
    low.alias(e.outputs[0], region.results[0])


def _for(low: Lowering, e: Eqn) -> None:
    """Unrolled: the body once per step, the stacked results concatenated."""
    n_carried = e.params["n_carried"]
    carried = list(e.inputs[:n_carried])
    bounds = [e.params["start"], e.params["stop"]]
    if any(b is None or low.concrete(b) is None for b in bounds):
        raise low.error("this loop's number of steps is known only at run time; only loops over a fixed "
                        "range can be exported (they are unrolled)")
    start, stop = (low.concrete(b) for b in bounds)
    body = e.regions[0]
    index_var, arg_vars = body.args[0], body.args[1:]
    for a, c in zip(arg_vars, carried):
        low.alias(a, c)
    steps = range(start, stop)
    stacked: list[list[str]] = [[] for _ in e.params["stacked"]]
    for t in (reversed(steps) if e.params["reversed"] else steps):
        low.known(index_var, np.asarray(t, dtype=np.int64))
        low.block(body)
        low.eqn = e
        for k, axis in enumerate(e.params["stacked"]):
            step = low.name(body.results[n_carried + k])
            stacked[k].append(low.node("Unsqueeze", [step, low.ints([axis])], "step"))
        for a, r in zip(arg_vars, body.results[:n_carried]):
            low.alias(a, r)
    for out, a, c in zip(e.outputs, arg_vars, carried):
        low.alias(out, a if steps else c)
    for k, axis in enumerate(e.params["stacked"]):
        out = e.outputs[n_carried + k]
        if not stacked[k]:
            raise low.error("a loop with no steps cannot be exported")
        low.env[out.id] = low.node("Concat", stacked[k], "stacked", axis=axis)
        low.static.pop(out.id, None)


CONTROL: dict[str, Callable[[Lowering, Eqn], None]] = {"training": _training, "if": _if, "for": _for}
NO_ONNX_FORM: dict[str, str] = {  # why a primitive has no rule, for the message
    "random_normal": "it draws random numbers", "random_uniform": "it draws random numbers",
    "random_bernoulli": "it draws random numbers",
}


def why_not(prim: str) -> str:
    return NO_ONNX_FORM.get(prim, "")

