"""Derivatives of the built-ins of LANGUAGE.md §8, in forward and reverse mode, against
numerical differentiation (check_grads), against each other, and against hand-derived numbers.

Every case of the big table is a program `z = sum(sin(<expr>))` (a scalar with non-trivial,
position-dependent cotangents) over inputs drawn from a seeded rng in a safe domain: positive
for log/sqrt, away from the kinks of abs/relu/maximum/clip/hinge, and without ties for
max/min/maxpool (GRID draws a shuffled grid of distinct values, 0.2 apart, never 0).
"""
from __future__ import annotations

import textwrap
import zlib

import numpy as np
import pytest

import wengert
import wengert.dsl.lower
from wengert import GradCheckError, check_grads




F64, F32 = "f64", "f32"
NP = {F64: np.float64, F32: np.float32}


# ---------------------------------------------------------------- input generators
class Gen:
    """An input: its declared shape, its dtype kind ("float" follows the case's dtype) and a draw."""

    def __init__(self, shape, draw, kind="float"):
        self.shape, self.draw, self.kind = tuple(shape), draw, kind

    def decl(self, dtype: str) -> str:
        t = dtype if self.kind == "float" else self.kind
        return f"{t}[{', '.join(map(str, self.shape))}]" if self.shape else t

    def value(self, rng, dtype: str):
        v = np.asarray(self.draw(rng))
        assert v.shape == self.shape, (v.shape, self.shape)
        if self.kind in NP:
            return v.astype(NP[self.kind])
        return v.astype(NP[dtype]) if self.kind == "float" else v.astype(np.int64)

    @property
    def is_float(self) -> bool:
        return self.kind == "float" or self.kind in NP


def N(*shape, scale=1.0):
    """Standard normal draws."""
    return Gen(shape, lambda r: scale * r.standard_normal(shape))


def U(lo, hi, *shape):
    """Uniform draws in [lo, hi]."""
    return Gen(shape, lambda r: r.uniform(lo, hi, shape))


def SIGNED(lo, hi, *shape):
    """Magnitudes in [lo, hi] with random signs (away from zero)."""
    return Gen(shape, lambda r: r.uniform(lo, hi, shape) * r.choice([-1.0, 1.0], shape))


def GRID(*shape, offset=0.1, step=0.2):
    """A shuffled grid of distinct values `step` apart, none closer than min(offset, step-offset) to 0."""
    n = int(np.prod(shape, dtype=int))
    return Gen(shape, lambda r: ((r.permutation(n) - n // 2) * step + offset).reshape(shape))


def CONST(values, kind="float"):
    arr = np.asarray(values)
    return Gen(arr.shape, lambda r: arr, kind)


def IDS(values):
    return CONST(values, "i64")


def ONEHOT_ROWS(rows, classes):
    """Soft labels: non-negative rows (the losses treat y as a constant weight)."""
    return Gen((rows, classes), lambda r: r.dirichlet(np.ones(classes), rows))


# ---------------------------------------------------------------- cases
class Case:
    def __init__(self, id, body, wrt=None, marks=(), fwd_marks=(), **inputs):
        self.id, self.body, self.wrt, self.inputs = id, textwrap.dedent(body).strip(), wrt, inputs
        self.marks, self.fwd_marks = marks, fwd_marks

    def source(self, dtype: str) -> str:
        decls = "".join(f"input {n}: {g.decl(dtype)}\n" for n, g in self.inputs.items())
        body = self.body.replace("{T}", dtype)
        if "z =" not in body:
            body = f"z = sum(sin({body}))"
        return decls + body + "\n"

    def build(self, dtype: str = F64):
        rng = np.random.default_rng(zlib.crc32(self.id.encode()))
        values = {n: g.value(rng, dtype) for n, g in self.inputs.items()}
        wrt = self.wrt if self.wrt is not None else [n for n, g in self.inputs.items() if g.is_float]
        return wengert.compile(self.source(dtype)), values, wrt

    def param(self, which="check"):
        return pytest.param(self, id=self.id, marks=list(self.marks) + (list(self.fwd_marks) if which == "fwd" else []))


X = {"x": N(3, 4)}
POS = {"x": U(0.5, 2.0, 3, 4)}

UNARY = [
    Case("exp", "exp(x)", **X),
    Case("log", "log(x)", **POS),
    Case("log1p", "log1p(x)", x=U(-0.5, 2.0, 3, 4)),
    Case("expm1", "expm1(x)", **X),
    Case("sqrt", "sqrt(x)", **POS),
    Case("abs", "abs(x) * x", x=GRID(3, 4)),
    Case("sign", "sign(x) * x * x + x", x=GRID(3, 4)),
    Case("sin", "2 * x", **X),
    Case("cos", "cos(x)", **X),
    Case("tanh", "tanh(x)", **X),
    Case("sigmoid", "3 * sigmoid(x)", x=N(3, 4, scale=2)),
    Case("hard_sigmoid", "3 * hard_sigmoid(x)", x=GRID(3, 4, step=0.4, offset=0.1)),   # kinks at +-2.5
    Case("ultra_fast_sigmoid", "3 * ultra_fast_sigmoid(x)",
         x=CONST([[-7.0, -5.0, -2.9, -0.7], [0.3, 1.2, 2.5, 3.1], [3.9, 4.8, 5.5, 7.5]])),  # kinks at 0, 3.4, 6
    Case("softplus", "softplus(x)", x=GRID(3, 4, step=0.7)),
    Case("relu", "relu(x) * x", x=GRID(3, 4)),
    Case("leaky_relu", "leaky_relu(x) * x", x=GRID(3, 4)),
    Case("leaky_relu_alpha", "leaky_relu(x, alpha=0.3) * x", x=GRID(3, 4)),
    Case("elu", "elu(x)", x=GRID(3, 4)),
    Case("elu_alpha", "elu(x, alpha=0.5) * x", x=GRID(3, 4)),
    Case("clip", "clip(x, -0.6, 0.4) * x", x=GRID(3, 4)),  # grid values are 0.1 + 0.2k: never -0.6 or 0.4
    Case("pow_const", "pow(x, 3)", **X),
    Case("pow_op_const", "x ** 2.5", **POS),
    Case("pow_inputs", "pow(x, y)", x=U(0.5, 2.0, 3, 4), y=N(3, 4)),
    Case("pow_neg_base_int_exponent", "x ** 2 + x ** 3", **X),
    Case("floor", "x * floor(x)", x=GRID(3, 4, offset=0.15, step=0.5)),  # fractional parts .15 and .65
    Case("ceil", "x * ceil(x)", x=GRID(3, 4, offset=0.15, step=0.5)),
    Case("round", "x * round(x)", x=GRID(3, 4, offset=0.2, step=1.0)),  # never at .5
    Case("cast_f32_to_f64", "cast(x, f64) * y", x=Gen((3, 4), lambda r: r.standard_normal((3, 4)), F32),
         y=CONST(np.linspace(-2, 2, 12).reshape(3, 4), F64), wrt=["x"]),
    Case("cast_to_same", "cast(x, {T}) * x", x=N(3, 4)),
    Case("cast_bool_mask", "cast(x > 0, {T}) * x + x", x=GRID(3, 4)),
    Case("where", "where(x > 0, x * y, y - x)", x=GRID(3, 4), y=N(3, 4)),
    Case("where_scalar_branch", "where(x > 0, x * x, 0.5)", x=GRID(3, 4)),
    Case("neg", "-x * 2", **X),
    Case("mod", "x % y", x=CONST([[0.3, 1.7, 2.5, -0.8], [4.4, -2.2, 0.9, 3.3], [1.1, -0.2, 5.0, 2.9]]),
         y=CONST([[1.3, 1.3, 1.3, 1.3], [1.5, 1.5, 1.5, 1.5], [1.7, 1.7, 1.7, 1.7]])),
]

# Binary elementwise ops over broadcasting shape groups: (a, b) shapes.
SHAPE_GROUPS = [((), (3, 4)), ((3, 4), ()), ((3, 4), (3, 1)), ((3, 1), (1, 4))]


def _gid(shapes):
    return "x".join("[" + ",".join(map(str, s)) + "]" for s in shapes)


BINARY = []
for _sa, _sb in SHAPE_GROUPS:
    g = _gid((_sa, _sb))
    BINARY += [
        Case(f"add-{g}", "a + b * 2", a=N(*_sa), b=N(*_sb)),
        Case(f"sub-{g}", "a - b * 2", a=N(*_sa), b=N(*_sb)),
        Case(f"mul-{g}", "a * b", a=N(*_sa), b=N(*_sb)),
        Case(f"div-{g}", "a / b", a=N(*_sa), b=SIGNED(0.5, 2.0, *_sb)),
        Case(f"pow-{g}", "a ** b", a=U(0.5, 2.0, *_sa), b=N(*_sb)),
        Case(f"maximum-{g}", "maximum(a, b) * (a + b)", a=GRID(*_sa, offset=0.05), b=GRID(*_sb, offset=0.15)),
        Case(f"minimum-{g}", "minimum(a, b) * (a + b)", a=GRID(*_sa, offset=0.05), b=GRID(*_sb, offset=0.15)),
        Case(f"where-{g}", "where(a > b, a * b, a - b)", a=GRID(*_sa, offset=0.05), b=GRID(*_sb, offset=0.15)),
        Case(f"clip_bounds-{g}", "clip(x, a, b) * x", x=GRID(3, 4, offset=0.0, step=0.2),
             a=GRID(*_sa, offset=-0.9, step=0.01) if _sa else CONST(-0.3),
             b=GRID(*_sb, offset=0.7, step=0.01) if _sb else CONST(0.5)),
    ]
BINARY.append(Case("where-cond-broadcast", "where(c > 0, a, b)", c=GRID(3, 1), a=N(1, 4), b=N(3, 4)))

R3 = {"x": GRID(2, 3, 4, offset=0.05, step=0.1)}
REDUCTIONS = []
for _name, _gen in [("sum", N(2, 3, 4)), ("mean", N(2, 3, 4)), ("max", GRID(2, 3, 4, offset=0.05, step=0.1)),
                    ("min", GRID(2, 3, 4, offset=0.05, step=0.1)), ("prod", SIGNED(0.6, 1.4, 2, 3, 4)),
                    ("logsumexp", N(2, 3, 4, scale=2)), ("norm", N(2, 3, 4))]:
    REDUCTIONS += [
        Case(f"{_name}-all", f"x * {_name}(x)", x=_gen),
        Case(f"{_name}-axis0", f"{_name}(x, axis=0)", x=_gen),
        Case(f"{_name}-axis-1", f"{_name}(x, axis=-1)", x=_gen),
        Case(f"{_name}-axes02", f"{_name}(x, axis=[0, 2])", x=_gen),
        Case(f"{_name}-axis1-keepdims", f"x * {_name}(x, axis=1, keepdims=true)", x=_gen),
        Case(f"{_name}-all-keepdims", f"x * {_name}(x, keepdims=true)", x=_gen),
    ]

SHAPES = [
    Case("reshape", "reshape(x, [4, 3]) * w", x=N(3, 4), w=N(4, 3)),
    Case("reshape_minus1", "reshape(x, [2, -1]) * w", x=N(3, 4), w=N(2, 6)),
    Case("transpose", "transpose(x) * w", x=N(3, 4), w=N(4, 3)),
    Case("transpose_perm", "transpose(x, [2, 0, 1]) * w", x=N(2, 3, 4), w=N(4, 2, 3)),
    Case("flatten", "flatten(x) * w", x=N(3, 4), w=N(12)),
    Case("concat_axis0", "concat([x, 2 * x, y], axis=0) * w", x=N(3, 4), y=N(2, 4), w=N(8, 4)),
    Case("concat_axis1", "concat([x, y], axis=1) * w", x=N(3, 4), y=N(3, 2), w=N(3, 6)),
    Case("concat_axis_neg", "concat([y, x], axis=-1) * w", x=N(3, 4), y=N(3, 2), w=N(3, 6)),
    Case("stack", "stack([x, y * y]) * w", x=N(3, 4), y=N(3, 4), w=N(2, 3, 4)),
    Case("stack_axis1", "stack([x, y], axis=1) * w", x=N(3, 4), y=N(3, 4), w=N(3, 2, 4)),
    Case("list_literal_stack", "[x, 2 * y, x * y] * w", x=N(4), y=N(4), w=N(3, 4)),
    Case("expand_dims", "expand_dims(x, 1) * w", x=N(3, 4), w=N(3, 2, 4)),
    Case("expand_dims_neg", "expand_dims(x, -1) * w", x=N(3, 4), w=N(3, 4, 2)),
    Case("squeeze", "squeeze(x) * w", x=N(3, 1, 4, 1), w=N(3, 4)),
    Case("squeeze_axis", "squeeze(x, axis=1) * w", x=N(3, 1, 4, 1), w=N(3, 4, 1)),
    Case("broadcast_to_row", "broadcast_to(x, [3, 4]) * w", x=N(4), w=N(3, 4)),
    Case("broadcast_to_col", "broadcast_to(x, [2, 3, 4]) * w", x=N(3, 1), w=N(2, 3, 4)),
    Case("pad", "pad(x, [[1, 0], [0, 2]]) * w", x=N(3, 4), w=N(4, 6)),
    Case("pad_int", "pad(x, 1) * w", x=N(3, 4), w=N(5, 6)),
]

SLICES = [
    Case("index_last", "x[-1] * w", x=N(3, 4), w=N(4)),
    Case("index_first", "x[0] * x[2]", x=N(3, 4)),
    Case("index_two_axes", "x[1, -2] * x", x=N(3, 4)),
    Case("slice_cols", "x[:, 1:3] * w", x=N(3, 4), w=N(3, 2)),
    Case("slice_negative_bounds", "x[-3:-1, -2:] * w", x=N(4, 5), w=N(2, 2)),
    Case("slice_step", "x[::2, 1::2] * w", x=N(5, 5), w=N(3, 2)),
    Case("slice_step_neg_start", "x[-4::3] * w", x=N(7, 2), w=N(2, 2)),
    Case("column_index", "x[:, -1] * x[:, 0]", x=N(3, 4)),
    Case("runtime_index", "x[i] * w", x=N(3, 4), w=N(4), i=IDS(1)),
    Case("runtime_index_negative", "x[i] * x[0]", x=N(3, 4), i=IDS(-1)),
    Case("gather_repeated", "E[ids] * w", E=N(5, 3), w=N(6, 3), ids=IDS([2, 0, 2, 4, 2, 0])),
    Case("gather_2d_ids", "E[ids] * w", E=N(5, 3), w=N(2, 3, 3), ids=IDS([[1, 1, 3], [0, 4, 1]])),
    Case("gather_axis1", "x[:, ids] * w", x=N(3, 4), w=N(3, 5), ids=IDS([3, 3, 0, 1, 3])),
    Case("overlapping_slices", "x[1:] * x[:-1]", x=N(5, 3)),
]

LINALG = [
    Case("matmul_2d", "a @ b", a=N(3, 4), b=N(4, 2)),
    Case("matmul_fn", "matmul(a, b)", a=N(3, 4), b=N(4, 2)),
    Case("matmul_vec_mat", "a @ b", a=N(4), b=N(4, 2)),
    Case("matmul_mat_vec", "a @ b", a=N(3, 4), b=N(4)),
    Case("matmul_vec_vec", "a @ b", a=N(4), b=N(4)),
    Case("matmul_batch_same_rank", "a @ b", a=N(5, 3, 4), b=N(5, 4, 2)),
    Case("matmul_batch_broadcast_1", "a @ b", a=N(1, 3, 4), b=N(5, 4, 2)),
    Case("matmul_batch_broadcast_4d", "a @ b", a=N(2, 1, 3, 4), b=N(1, 5, 4, 2)),
    # Differing batch ranks (the direction axis of forward mode must stay in front).
    Case("matmul_batch_x_mat", "a @ b", a=N(5, 3, 4), b=N(4, 2)),
    Case("matmul_mat_x_batch", "a @ b", a=N(3, 4), b=N(5, 4, 2)),
    Case("matmul_vec_x_batch", "a @ b", a=N(4), b=N(5, 4, 2)),
    Case("matmul_batch_x_vec", "a @ b", a=N(5, 3, 4), b=N(4)),
    Case("matmul_chain", "tanh(a @ b) @ c", a=N(3, 4), b=N(4, 5), c=N(5, 2)),
    Case("dot_vectors", "z = sin(dot(a, b))", a=N(4), b=N(4)),
    Case("dot_matrices", "dot(a, b)", a=N(3, 4), b=N(4, 2)),
    Case("dot_scalar", "dot(s, b)", s=N(), b=N(4)),
    Case("outer", "outer(a, b)", a=N(3), b=N(4)),
    Case("outer_matrices", "outer(a, b)", a=N(2, 2), b=N(3)),
]

CONV_X = N(2, 5, 5, 2)
CONV_W = N(3, 3, 2, 3, scale=0.5)
NEURAL = [
    Case("softmax", "3 * softmax(x)", x=N(3, 4, scale=2)),
    Case("softmax_axis0", "3 * softmax(x, axis=0)", x=N(3, 4, scale=2)),
    Case("log_softmax", "log_softmax(x)", x=N(3, 4, scale=2)),
    Case("log_softmax_axis0", "log_softmax(x, axis=0)", x=N(3, 4, scale=2)),
    Case("conv2d_valid_s1", "conv2d(x, W)", x=CONV_X, W=CONV_W),
    Case("conv2d_valid_s2", "conv2d(x, W, stride=2)", x=CONV_X, W=CONV_W),
    Case("conv2d_same_s1", 'conv2d(x, W, padding="same")', x=CONV_X, W=CONV_W),
    Case("conv2d_same_s2", 'conv2d(x, W, stride=2, padding="same")', x=CONV_X, W=CONV_W),
    Case("conv2d_same_s2_even", 'conv2d(x, W, stride=2, padding="same")', x=N(1, 6, 6, 2), W=N(2, 2, 2, 3)),
    Case("conv2d_valid_s12", 'conv2d(x, W, stride=[1, 2])', x=N(1, 6, 7, 2), W=N(3, 2, 2, 2)),
    Case("conv2d_same_s21_rect", 'conv2d(x, W, stride=[2, 1], padding="same")', x=N(1, 7, 4, 1), W=N(2, 3, 1, 2)),
    Case("maxpool2d", "maxpool2d(x, 2)", x=GRID(2, 4, 4, 2, offset=0.05, step=0.1)),
    Case("maxpool2d_stride1", "maxpool2d(x, 2, stride=1)", x=GRID(1, 5, 5, 2, offset=0.05, step=0.1)),
    Case("maxpool2d_rect", "maxpool2d(x, [2, 3])", x=GRID(1, 5, 7, 1, offset=0.05, step=0.1)),
    Case("avgpool2d", "avgpool2d(x, 2)", x=N(2, 4, 4, 2)),
    Case("avgpool2d_s1", "avgpool2d(x, 3, stride=1)", x=N(1, 5, 5, 2)),
    Case("avgpool2d_rect", "avgpool2d(x, [2, 3], stride=[2, 1])", x=N(1, 5, 6, 1)),
    Case("l2pool2d", "l2pool2d(x, 2)", x=SIGNED(0.3, 1.5, 2, 4, 4, 2)),
    Case("l2pool2d_s1", "l2pool2d(x, 2, stride=1)", x=SIGNED(0.3, 1.5, 1, 4, 5, 1)),
    Case("embedding", "embedding(ids, E) * w", E=N(6, 3), w=N(5, 3), ids=IDS([1, 5, 1, 0, 1])),
    Case("embedding_2d", "embedding(ids, E)", E=N(6, 3), ids=IDS([[1, 5, 1], [0, 1, 2]])),
    Case("conv_pool_pipeline", "x |> conv2d(W) |> relu |> maxpool2d(2)", x=N(1, 6, 6, 2), W=N(3, 3, 2, 2),
         wrt=["W"]),
]

LOSSES = [
    Case("binary_crossentropy", "binary_crossentropy(p, y)", p=U(0.1, 0.9, 6), y=U(0, 1, 6)),
    Case("binary_crossentropy_sigmoid", "z = mean(binary_crossentropy(sigmoid(x @ w), y))",
         x=N(5, 3), w=N(3), y=U(0, 1, 5)),
    Case("categorical_crossentropy", "categorical_crossentropy(softmax(l), y)", l=N(4, 3), y=ONEHOT_ROWS(4, 3)),
    Case("categorical_crossentropy_p", "categorical_crossentropy(p, y)", p=U(0.1, 0.9, 4, 3), y=ONEHOT_ROWS(4, 3)),
    Case("squared_error", "squared_error(p, y)", p=N(3, 4), y=N(3, 4)),
    Case("hinge", "hinge(x, y)", x=CONST([0.3, -1.5, 2.0, 0.5, -0.2, 1.7]),
         y=CONST([1.0, -1.0, -1.0, 1.0, 1.0, 1.0]), wrt=["x"]),
    Case("hinge_both", "hinge(x, y)", x=CONST([0.3, -1.5, 2.0, 0.5, -0.2, 1.7]),
         y=CONST([1.0, -0.4, -1.0, 1.3, 0.8, 0.2])),  # 1 - x*y in {0.7, 0.4, 3, 0.35, 1.16, 0.66}
    Case("bce_with_logits", "bce_with_logits(x, y)", x=GRID(3, 4, step=0.9), y=U(0, 1, 3, 4)),
    Case("softmax_crossentropy", "softmax_crossentropy(l, y)", l=N(4, 3, scale=2), y=ONEHOT_ROWS(4, 3)),
    Case("softmax_crossentropy_mean", "z = mean(softmax_crossentropy(x @ W, y))", x=N(5, 3), W=N(3, 4),
         y=ONEHOT_ROWS(5, 4)),
    Case("l1", "z = sin(l1(x))", x=GRID(3, 4)),
    Case("l2", "z = sin(l2(x))", x=N(3, 4)),
    Case("stop_gradient_constant_operand", "x * stop_gradient(y)", x=N(3, 4), y=N(3, 4), wrt=["x"]),
    Case("stop_gradient_of_constant_path", "x + stop_gradient(y * y)", x=N(3, 4), y=N(3, 4), wrt=["x"]),
]

CONTROL = [
    Case("if_then", "z = if sum(x) > 0 then sum(sin(x * y)) else sum(cos(x))",
         x=U(0.1, 1.0, 3, 4), y=N(3, 4)),
    Case("if_else", "z = if sum(x) > 0 then sum(sin(x * y)) else sum(cos(x))",
         x=U(-1.0, -0.1, 3, 4), y=N(3, 4)),
    Case("if_nested_in_expression", "z = sum(sin(x * (if s > 0 then s * s else -s)))", x=N(3, 4), s=CONST(0.7)),
    Case("for_rnn", """
        h = zeros([2, 5])
        for t in 0..dim(xs, 1) {
          h = tanh(xs[:, t] @ U + h @ W + b)
        }
        z = sum(sin(h))
        """, xs=N(2, 4, 3), U=N(3, 5, scale=0.5), W=N(5, 5, scale=0.5), b=N(5)),
    Case("for_reversed", """
        acc = x[0]
        for i in reversed(1..dim(x, 0)) {
          acc = acc * cos(x[i]) + x[i]
        }
        z = sum(sin(acc))
        """, x=N(4, 3)),
    Case("for_runtime_bound", """
        r = a
        for i in 1..k {
          r = r * a + sin(r)
        }
        z = sum(r)
        """, a=U(0.5, 1.0, 3), k=IDS(4)),
    Case("scan", """
        fn step(h, x_t) = tanh(h * w + x_t)
        hs = scan(step, zeros([2]), xs, axis=1)
        z = sum(sin(hs * v))
        """, xs=N(2, 5), w=N(2), v=N(2, 5)),
    Case("scan_axis0", """
        fn step(h, x_t) = sin(h) * x_t + x_t
        hs = scan(step, zeros([3]), xs, axis=0)
        z = sum(hs * hs)
        """, xs=N(4, 3)),
    Case("fn_and_pipe", """
        fn layer(t, M) = tanh(t @ M)
        z = sum(x |> layer(A) |> layer(B) |> sin)
        """, x=N(2, 3), A=N(3, 4), B=N(4, 2)),
]

ALL = UNARY + BINARY + REDUCTIONS + SHAPES + SLICES + LINALG + NEURAL + LOSSES + CONTROL
BY_ID = {c.id: c for c in ALL}
assert len(BY_ID) == len(ALL), "duplicate case ids"

F32_SUBSET = ["exp", "log", "tanh", "sigmoid", "relu", "softplus", "pow_inputs", "mul-[3,4]x[3,1]",
              "div-[3,1]x[1,4]", "maximum-[]x[3,4]", "where-[3,4]x[3,1]", "sum-axis1-keepdims", "mean-all",
              "max-axis-1", "logsumexp-axis0", "norm-all", "transpose_perm", "concat_axis1", "slice_step",
              "gather_repeated", "matmul_2d", "matmul_batch_same_rank", "softmax", "log_softmax",
              "conv2d_same_s2", "maxpool2d", "avgpool2d", "l2pool2d", "embedding", "softmax_crossentropy",
              "bce_with_logits", "binary_crossentropy_sigmoid", "for_rnn", "scan"]


# ---------------------------------------------------------------- 1. check_grads on every built-in
@pytest.mark.parametrize("case", [c.param() for c in ALL])
def test_check_grads_f64(case):
    prog, inputs, wrt = case.build(F64)
    check_grads(prog, "z", wrt=wrt, modes=("forward", "reverse"), order=1, **inputs)


@pytest.mark.parametrize("case", [BY_ID[i].param() for i in F32_SUBSET])
def test_check_grads_f32(case):
    prog, inputs, wrt = case.build(F32)
    assert all(inputs[n].dtype == np.float32 for n in wrt)
    check_grads(prog, "z", wrt=wrt, modes=("forward", "reverse"), order=1, **inputs)
    grads = prog.grad("z", wrt=wrt, **inputs)
    assert all(grads[n].dtype == np.float32 for n in wrt)


def test_check_grads_detects_a_wrong_derivative():
    """The harness itself: a mismatch is reported (stop_gradient makes the derivative 'wrong')."""
    prog = wengert.compile("input x: f64[3]\nz = sum(x * stop_gradient(x))\n")
    with pytest.raises(GradCheckError):
        check_grads(prog, "z", wrt=["x"], order=1, x=np.array([0.5, -1.0, 2.0]))


# ---------------------------------------------------------------- 2. forward and reverse agree
def _assert_modes_agree(prog, wrt, inputs, rtol=1e-10, atol=1e-10):
    fwd = prog.grad("z", wrt=wrt, mode="forward", **inputs)
    rev = prog.grad("z", wrt=wrt, mode="reverse", **inputs)
    assert set(fwd) == set(rev) == set(wrt)
    for n in wrt:
        assert fwd[n].shape == rev[n].shape == np.shape(inputs[n])
        assert np.all(np.isfinite(rev[n])), n
        np.testing.assert_allclose(fwd[n], rev[n], rtol=rtol, atol=atol, err_msg=n)
    return rev


@pytest.mark.parametrize("case", [c.param("fwd") for c in ALL])
def test_forward_full_gradient_matches_reverse(case):
    prog, inputs, wrt = case.build(F64)
    f32 = any(np.asarray(v).dtype == np.float32 for v in inputs.values())
    _assert_modes_agree(prog, wrt, inputs, **({"rtol": 1e-6, "atol": 1e-6} if f32 else {}))


MULTI = {
    "mlp": ("""
        input x: f64[4, 3]
        input y: f64[4, 2]
        input W1: f64[3, 5]
        input b1: f64[5]
        input W2: f64[5, 2]
        input b2: f64[2]
        h = tanh(x @ W1 + b1)
        z = mean(softmax_crossentropy(h @ W2 + b2, y)) + 0.01 * l2(W1)
        """, {"x": (4, 3), "y": (4, 2), "W1": (3, 5), "b1": (5,), "W2": (5, 2), "b2": (2,)}),
    "cnn": ("""
        input x: f64[2, 6, 6, 1]
        input K: f64[3, 3, 1, 2]
        input V: f64[8, 3]
        h = conv2d(x, K, padding="same") |> tanh |> avgpool2d(2) |> reshape([2, 18])
        z = sum(sin(h[:, 0:8] @ V))
        """, {"x": (2, 6, 6, 1), "K": (3, 3, 1, 2), "V": (8, 3)}),
    "rnn_scan": ("""
        input xs: f64[2, 4, 3]
        input U: f64[3, 3]
        input h0: f64[2, 3]
        fn cell(h, x_t) = tanh(x_t + h @ U)
        hs = scan(cell, h0, xs, axis=1)
        z = sum(sin(hs)) + norm(hs[:, -1])
        """, {"xs": (2, 4, 3), "U": (3, 3), "h0": (2, 3)}),
    "mixed": ("""
        input a: f64[3]
        input b: f64[3, 3]
        input s: f64
        u = exp(-a * s) * (b @ a) + outer(a, a) @ sigmoid(a)
        z = logsumexp(u) + prod(cos(a)) * s ** 2
        """, {"a": (3,), "b": (3, 3), "s": ()}),
}


@pytest.mark.parametrize("name", sorted(MULTI))
def test_forward_and_reverse_agree_on_programs_with_several_inputs(name):
    src, shapes = MULTI[name]
    rng = np.random.default_rng(7)
    inputs = {n: 0.7 * rng.standard_normal(s) for n, s in shapes.items()}
    if "y" in inputs:
        inputs["y"] = rng.dirichlet(np.ones(shapes["y"][1]), shapes["y"][0])
    prog = wengert.compile(textwrap.dedent(src))
    rev = _assert_modes_agree(prog, list(shapes), inputs)
    assert all(np.any(rev[n] != 0) for n in shapes)
    # a subset of inputs gives the same partials
    some = list(shapes)[1::2]
    part = prog.grad("z", wrt=some, mode="forward", **inputs)
    for n in some:
        np.testing.assert_allclose(part[n], rev[n], rtol=1e-10, atol=1e-12)


def test_params_are_differentiated_by_default():
    prog = wengert.compile("input x: f64[3]\nparam w: f64[3] = [1, 2, 3]\nparam c: f64 = 0.5\n"
                           "z = sum(sin(x * w + c))\n")
    x = np.array([0.1, -0.3, 0.8])
    w = np.array([1.0, 2.0, 3.0])
    for mode in ("forward", "reverse"):
        g = prog.grad("z", mode=mode, x=x)
        assert set(g) == {"w", "c"}
        np.testing.assert_allclose(g["w"], np.cos(x * w + 0.5) * x, rtol=1e-12)
        np.testing.assert_allclose(g["c"], np.sum(np.cos(x * w + 0.5)), rtol=1e-12)
    check_grads(prog, "z", order=2, x=x)


def test_jvp_and_vjp_agree_with_the_full_gradient():
    prog = wengert.compile("input a: f64[3, 4]\ninput b: f64[4]\ny = tanh(a @ b)\nz = sum(sin(y))\n")
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    ta, tb = rng.standard_normal((3, 4)), rng.standard_normal(4)
    g = prog.grad("z", wrt=["a", "b"], a=a, b=b)
    value, tangent = prog.jvp("z", tangents={"a": ta, "b": tb}, a=a, b=b)
    np.testing.assert_allclose(value, np.sum(np.sin(np.tanh(a @ b))), rtol=1e-14)
    np.testing.assert_allclose(tangent, np.vdot(g["a"], ta) + np.vdot(g["b"], tb), rtol=1e-12)
    # vector-valued output: vjp with a cotangent is the transpose of the jvp
    c = rng.standard_normal(3)
    v = prog.vjp("y", c, wrt=["a", "b"], a=a, b=b)
    _, ty = prog.jvp("y", tangents={"a": ta, "b": tb}, a=a, b=b)
    np.testing.assert_allclose(np.vdot(v["a"], ta) + np.vdot(v["b"], tb), np.vdot(ty, c), rtol=1e-12)
    d = 1 - np.tanh(a @ b) ** 2
    np.testing.assert_allclose(v["b"], a.T @ (c * d), rtol=1e-12)
    np.testing.assert_allclose(v["a"], np.outer(c * d, b), rtol=1e-12)


# ---------------------------------------------------------------- 3. second order
def _fd_hvp(prog, wrt, vector, inputs, eps=1e-5):
    plus = {n: inputs[n] + eps * vector.get(n, 0) for n in wrt}
    minus = {n: inputs[n] - eps * vector.get(n, 0) for n in wrt}
    gp = prog.grad("z", wrt=wrt, **{**inputs, **plus})
    gm = prog.grad("z", wrt=wrt, **{**inputs, **minus})
    return {n: (gp[n] - gm[n]) / (2 * eps) for n in wrt}


def _logistic():
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((6, 3)), (rng.random(6) > 0.5).astype(float)
    w, b = rng.standard_normal(3), np.array(0.3)
    p = 1 / (1 + np.exp(-(x @ w + b)))
    s = p * (1 - p) / 6  # mean over 6 examples
    xb = np.hstack([x, np.ones((6, 1))])
    H = xb.T @ (s[:, None] * xb)  # Hessian over (w, b)
    vw, vb = rng.standard_normal(3), np.array(-0.7)
    hv = H @ np.append(vw, vb)
    src = "input x: f64[6, 3]\ninput y: f64[6]\ninput w: f64[3]\ninput b: f64\n" \
          "z = mean(binary_crossentropy(sigmoid(x @ w + b), y))\n"
    return (src, {"x": x, "y": y, "w": w, "b": b}, ["w", "b"], {"w": vw, "b": vb}, {"w": hv[:3], "b": hv[3]})


def _cube():
    rng = np.random.default_rng(12)
    x, v = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    return "input x: f64[3, 4]\nz = sum(x ** 3)\n", {"x": x}, ["x"], {"x": v}, {"x": 6 * x * v}


def _tanh_layer():
    rng = np.random.default_rng(13)
    x, W, V = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    t = np.tanh(x @ W)
    return ("input x: f64[4, 3]\ninput W: f64[3, 2]\nz = sum(tanh(x @ W))\n", {"x": x, "W": W}, ["W"], {"W": V},
            {"W": x.T @ (-2 * t * (1 - t ** 2) * (x @ V))})


def _softmax_ce():
    rng = np.random.default_rng(14)
    x, W, V = rng.standard_normal((5, 3)), rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    y = rng.dirichlet(np.ones(4), 5) * rng.uniform(0.5, 2.0, (5, 1))  # rows need not sum to 1
    logits = x @ W
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    s = y.sum(1, keepdims=True)
    u = x @ V
    hu = s * (p * u - p * np.sum(p * u, axis=1, keepdims=True))
    src = "input x: f64[5, 3]\ninput y: f64[5, 4]\ninput W: f64[3, 4]\nz = sum(softmax_crossentropy(x @ W, y))\n"
    return (src, {"x": x, "y": y, "W": W}, ["W"], {"W": V}, {"W": x.T @ hu})


HESSIANS = {"cube": _cube, "logistic_regression": _logistic, "tanh_layer": _tanh_layer,
            "softmax_crossentropy": _softmax_ce}


@pytest.mark.parametrize("name", sorted(HESSIANS))
def test_hvp_against_hand_derived_hessian(name):
    src, inputs, wrt, vector, want = HESSIANS[name]()
    prog = wengert.compile(src)
    got = prog.hvp("z", wrt=wrt, vector=vector, **inputs)
    for n in wrt:
        np.testing.assert_allclose(got[n], want[n], rtol=1e-10, atol=1e-12, err_msg=n)


@pytest.mark.parametrize("name", sorted(HESSIANS))
def test_hvp_against_finite_differences_of_grad(name):
    src, inputs, wrt, vector, _ = HESSIANS[name]()
    prog = wengert.compile(src)
    got = prog.hvp("z", wrt=wrt, vector=vector, **inputs)
    fd = _fd_hvp(prog, wrt, vector, inputs)
    for n in wrt:
        np.testing.assert_allclose(got[n], fd[n], rtol=1e-6, atol=1e-7, err_msg=n)


def test_hvp_is_linear_in_the_vector_and_symmetric():
    src, inputs, wrt, _, _ = _logistic()
    prog = wengert.compile(src)
    rng = np.random.default_rng(5)
    u = {"w": rng.standard_normal(3), "b": rng.standard_normal(())}
    v = {"w": rng.standard_normal(3), "b": rng.standard_normal(())}
    hu = prog.hvp("z", wrt=wrt, vector=u, **inputs)
    hv = prog.hvp("z", wrt=wrt, vector=v, **inputs)
    huv = prog.hvp("z", wrt=wrt, vector={n: 2 * u[n] - v[n] for n in wrt}, **inputs)
    for n in wrt:
        np.testing.assert_allclose(huv[n], 2 * hu[n] - hv[n], rtol=1e-10, atol=1e-12)
    # <v, H u> == <u, H v>
    assert np.isclose(sum(np.vdot(v[n], hu[n]) for n in wrt), sum(np.vdot(u[n], hv[n]) for n in wrt), rtol=1e-10)


SECOND_ORDER = ["cube_poly", "exp", "log", "tanh", "sigmoid", "pow_inputs", "div-[3,4]x[3,1]", "mul-[3,1]x[1,4]",
                "logsumexp-axis0", "norm-all", "prod-axis1-keepdims", "max-axis0", "softmax", "log_softmax",
                "matmul_batch_broadcast_1", "matmul_vec_mat", "conv2d_same_s2", "avgpool2d", "maxpool2d", "l2pool2d",
                "gather_repeated", "slice_step", "concat_axis1", "pad", "softmax_crossentropy_mean",
                "binary_crossentropy_sigmoid", "where", "for_rnn", "scan", "if_then", "runtime_index"]
BY_ID["cube_poly"] = Case("cube_poly", "z = sum(x ** 3) + sum(x * y)", x=N(3, 4), y=N(3, 4))


@pytest.mark.parametrize("case", [BY_ID[i].param() for i in SECOND_ORDER])
def test_check_grads_second_order(case):
    prog, inputs, wrt = case.build(F64)
    check_grads(prog, "z", wrt=wrt, modes=("forward", "reverse"), order=2, **inputs)


def test_second_order_f32():
    prog, inputs, wrt = BY_ID["softmax_crossentropy_mean"].build(F32)
    check_grads(prog, "z", wrt=wrt, order=2, **inputs)


# ---------------------------------------------------------------- 4. derivative conventions (§8)
MODES = ["forward", "reverse"]


def grad1(src, mode, of="z", **inputs):
    prog = wengert.compile(textwrap.dedent(src))
    (name,) = [n for n in inputs if np.asarray(inputs[n]).dtype.kind == "f"][:1]
    return prog.grad(of, wrt=[name], mode=mode, **inputs)[name]


@pytest.mark.parametrize("mode", MODES)
def test_relu_derivative_at_zero_is_zero(mode):
    g = grad1("input x: f64[4]\nz = sum(relu(x))\n", mode, x=np.array([-1.0, 0.0, 2.0, 0.5]))
    np.testing.assert_array_equal(g, [0.0, 0.0, 1.0, 1.0])


@pytest.mark.parametrize("mode", MODES)
def test_abs_derivative_at_zero_is_zero(mode):
    g = grad1("input x: f64[3]\nz = sum(abs(x)) + l1(x)\n", mode, x=np.array([-2.0, 0.0, 3.0]))
    np.testing.assert_array_equal(g, [-2.0, 0.0, 2.0])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", ["max", "min"])
def test_reduction_ties_share_equally(mode, op):
    x = np.array([1.0, 3.0, 3.0]) if op == "max" else np.array([3.0, 1.0, 1.0])
    g = grad1(f"input x: f64[3]\nz = {op}(x)\n", mode, x=x)
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5])
    m = np.array([[2.0, 2.0, 2.0], [5.0, 1.0, 5.0]]) if op == "max" else np.array([[2.0, 2.0, 2.0], [1.0, 5.0, 1.0]])
    g = grad1(f"input x: f64[2, 3]\nz = sum({op}(x, axis=1) * [1, 6])\n", mode, x=m)
    np.testing.assert_allclose(g, [[1 / 3, 1 / 3, 1 / 3], [3.0, 0.0, 3.0]], rtol=1e-15)
    g = grad1(f"input x: f64[2, 3]\nz = sum({op}(x, axis=0, keepdims=true))\n", mode, x=m)
    col = (m == (m.max(0) if op == "max" else m.min(0))).astype(float)
    np.testing.assert_allclose(g, col / col.sum(0), rtol=1e-15)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_elementwise_ties_share_equally(mode, op):
    prog = wengert.compile(f"input x: f64[3]\ninput y: f64[3]\nz = sum({op}(x, y))\nw = sum({op}(x, x))\n")
    x = np.array([1.0, 2.0, -3.0])
    y = np.array([1.0, 0.0, -3.0])
    g = prog.grad("z", wrt=["x", "y"], mode=mode, x=x, y=y)
    bigger = [0.5, 1.0, 0.5] if op == "maximum" else [0.5, 0.0, 0.5]
    np.testing.assert_array_equal(g["x"], bigger)
    np.testing.assert_array_equal(g["y"], 1 - np.array(bigger))
    np.testing.assert_array_equal(prog.grad("w", wrt=["x"], mode=mode, x=x)["x"], [1.0, 1.0, 1.0])


@pytest.mark.parametrize("mode", MODES)
def test_maxpool_ties_share_equally(mode):
    x = np.array([[1.0, 4.0], [4.0, 2.0]]).reshape(1, 2, 2, 1)
    g = grad1("input x: f64[1, 2, 2, 1]\nz = sum(maxpool2d(x, 2))\n", mode, x=x)
    np.testing.assert_array_equal(g.reshape(2, 2), [[0.0, 0.5], [0.5, 0.0]])


ZERO_DERIVATIVE = {
    "floor": "sum(floor(x))",
    "ceil": "sum(ceil(x))",
    "round": "sum(round(x))",
    "sign": "sum(sign(x))",
    "argmax": "sum(cast(argmax(x, axis=1), f64))",
    "argmax_all": "cast(argmax(x), f64)",
    "comparison": "sum(cast(x > 0.3, f64)) + sum(cast(x <= x * x, f64))",
    "equality": "sum(cast(x == x, f64)) + sum(cast(x != 0, f64))",
    "cast_to_int": "sum(cast(cast(x * 10, i64), f64))",
    "onehot_of_argmax": "sum(onehot(argmax(x, axis=1), 4))",
    "stop_gradient": "sum(stop_gradient(x * x))",
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(ZERO_DERIVATIVE))
def test_zero_derivative_ops(name, mode):
    x = np.array([[0.25, -1.3, 2.6, 0.7], [1.1, 0.35, -0.45, 3.2]])
    prog = wengert.compile(f"input x: f64[2, 4]\nz = {ZERO_DERIVATIVE[name]}\n")
    g = prog.grad("z", wrt=["x"], mode=mode, x=x)["x"]
    np.testing.assert_array_equal(g, np.zeros_like(x))
    # with a differentiable term added, only that term's derivative remains
    prog = wengert.compile(f"input x: f64[2, 4]\nz = {ZERO_DERIVATIVE[name]} + sum(sin(x))\n")
    np.testing.assert_allclose(prog.grad("z", wrt=["x"], mode=mode, x=x)["x"], np.cos(x), rtol=1e-14)


@pytest.mark.parametrize("mode", MODES)
def test_stop_gradient_blocks(mode):
    prog = wengert.compile("input x: f64[3]\ninput y: f64[3]\n"
                           "z = sum(x * stop_gradient(x))\n"
                           "u = sum(stop_gradient(x * y) * y + x)\n"
                           "v = sum(sin(stop_gradient(exp(x)) * exp(x)))\n")
    x, y = np.array([0.5, -1.0, 2.0]), np.array([3.0, 0.25, -1.5])
    np.testing.assert_allclose(prog.grad("z", wrt=["x"], mode=mode, x=x)["x"], x, rtol=1e-15)
    gu = prog.grad("u", wrt=["x", "y"], mode=mode, x=x, y=y)
    np.testing.assert_allclose(gu["x"], np.ones(3), rtol=1e-15)
    np.testing.assert_allclose(gu["y"], x * y, rtol=1e-15)
    e = np.exp(x)
    np.testing.assert_allclose(prog.grad("v", wrt=["x"], mode=mode, x=x)["x"], np.cos(e * e) * e * e, rtol=1e-13)


def test_stop_gradient_blocks_second_order():
    prog = wengert.compile("input x: f64[3]\nz = sum(x * x * stop_gradient(x))\n")
    x, v = np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, -1.0])
    # gradient 2 x sg(x): the Hessian sees only the x*x factor
    np.testing.assert_allclose(prog.hvp("z", wrt=["x"], vector={"x": v}, x=x)["x"], 2 * x * v, rtol=1e-14)




@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_where_does_not_leak_nan_from_sqrt(mode):
    x = np.array([-1.0, 4.0])
    prog = wengert.compile("input x: f64[2]\nz = sum(where(x > 0, sqrt(x), 0))\n")
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(prog.run("z", x=x), 2.0)
        g = prog.grad("z", wrt=["x"], mode=mode, x=x)["x"]
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [0.0, 0.25], rtol=1e-15)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_where_does_not_leak_nan_from_log(mode):
    x = np.array([0.0, -1.0, 2.0])
    prog = wengert.compile("input x: f64[3]\nz = sum(where(x > 0, log(x), x))\n")
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(prog.run("z", x=x), np.log(2.0) - 1.0)
        g = prog.grad("z", wrt=["x"], mode=mode, x=x)["x"]
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [1.0, 1.0, 0.5], rtol=1e-15)


def test_where_does_not_leak_nan_in_hvp():
    prog = wengert.compile("input x: f64[2]\nz = sum(where(x > 0, sqrt(x), 0))\n")
    with np.errstate(all="ignore"):
        hv = prog.hvp("z", wrt=["x"], vector={"x": np.ones(2)}, x=np.array([-1.0, 4.0]))["x"]
    np.testing.assert_allclose(hv, [0.0, -1 / 32], rtol=1e-14)


@pytest.mark.parametrize("mode", MODES)
def test_where_with_finite_branches_routes_the_gradient(mode):
    # both branches finite everywhere: the untaken branch gets exactly zero
    prog = wengert.compile("input x: f64[4]\nz = sum(where(x > 0, x * x, 3 * x))\n")
    x = np.array([-2.0, 1.5, 0.0, 3.0])
    np.testing.assert_array_equal(prog.grad("z", wrt=["x"], mode=mode, x=x)["x"], [3.0, 3.0, 3.0, 6.0])


@pytest.mark.parametrize("mode", MODES)
def test_elu_and_softplus_stay_finite_for_large_inputs(mode):
    prog = wengert.compile("input x: f64[4]\nz = sum(elu(x)) + sum(softplus(x)) + sum(bce_with_logits(x, 0.5 * "
                           "ones([4])))\n")
    x = np.array([-800.0, -30.0, 40.0, 900.0])
    g = prog.grad("z", wrt=["x"], mode=mode, x=x)["x"]
    assert np.all(np.isfinite(g))
    sig = 1 / (1 + np.exp(-np.clip(x, -500, 500)))
    want = np.where(x > 0, 1.0, np.exp(np.minimum(x, 0))) + sig + (sig - 0.5)
    np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("mode", MODES)
def test_prod_derivative_with_a_zero_entry(mode):
    prog = wengert.compile("input x: f64[4]\nz = prod(x)\n")
    with np.errstate(all="ignore"):
        g = prog.grad("z", wrt=["x"], mode=mode, x=np.array([1.0, 2.0, 0.0, 3.0]))["x"]
    np.testing.assert_allclose(g, [0.0, 0.0, 6.0, 0.0])


@pytest.mark.parametrize("mode", MODES)
def test_cast_between_floats_passes_the_derivative_in_the_operand_dtype(mode):
    prog = wengert.compile("input x: f64[3]\ninput h: f32[3]\nz = sum(sin(cast(x, f32) * h))\n"
                           "w = cast(sum(cast(h, f64) ** 2), f32)\n")
    x, h = np.array([0.3, -1.2, 2.0]), np.array([1.5, 0.5, -2.0], np.float32)
    g = prog.grad("z", wrt=["x", "h"], mode=mode, x=x, h=h)
    np.testing.assert_allclose(g["x"], np.cos(x * h) * h, rtol=1e-6)
    np.testing.assert_allclose(g["h"], np.cos(x * h) * x, rtol=1e-6)
    gw = prog.grad("w", wrt=["h"], mode=mode, h=h)["h"]
    np.testing.assert_allclose(gw, 2 * h, rtol=1e-6)




@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_gradient_has_the_dtype_of_the_input(mode):
    prog = wengert.compile("input x: f64[3]\ninput h: f32[3]\nz = sum(sin(cast(x, f32) * h))\n"
                           "w = sum(cast(h, f64) ** 2)\n")
    x, h = np.array([0.3, -1.2, 2.0]), np.array([1.5, 0.5, -2.0], np.float32)
    g = prog.grad("z", wrt=["x", "h"], mode=mode, x=x, h=h)
    assert (g["x"].dtype, g["h"].dtype) == (np.float64, np.float32)
    assert prog.grad("w", wrt=["h"], mode=mode, h=h)["h"].dtype == np.float32


@pytest.mark.parametrize("mode", MODES)
def test_integer_inputs_and_gather_ids_carry_no_derivative(mode):
    prog = wengert.compile("input E: f64[4, 2]\ninput ids: i64[5]\nz = sum(E[ids] * expand_dims(cast(ids, f64), 1))\n")
    E = np.arange(8.0).reshape(4, 2)
    ids = np.array([3, 1, 3, 0, 3])
    g = prog.grad("z", wrt=["E"], mode=mode, E=E, ids=ids)["E"]
    np.testing.assert_array_equal(g, [[0, 0], [1, 1], [0, 0], [9, 9]])


# ---------------------------------------------------------------- 5. hand-derived numbers
@pytest.mark.parametrize("mode", MODES)
def test_listing_9_1_euclidean_norm(mode):
    prog = wengert.compile("input x1: f64\ninput x2: f64\nf = sqrt(x1 ** 2 + x2 ** 2)\n")
    np.testing.assert_allclose(prog.run("f", x1=1.0, x2=2.0), 2.236068, atol=1e-6)
    g = prog.grad("f", wrt=["x1", "x2"], mode=mode, x1=1.0, x2=2.0)
    np.testing.assert_allclose(g["x1"], 0.447214, atol=1e-6)
    np.testing.assert_allclose(g["x2"], 0.894427, atol=1e-6)
    np.testing.assert_allclose([g["x1"], g["x2"]], np.array([1.0, 2.0]) / np.sqrt(5), rtol=1e-14)
    assert g["x1"].shape == () and g["x2"].shape == ()
    check_grads(prog, "f", wrt=["x1", "x2"], order=2, x1=1.0, x2=2.0)


@pytest.mark.parametrize("mode", MODES)
def test_polynomial_sum(mode):
    prog = wengert.compile("input x: f64[1, 3]\ninput y: f64[1, 3]\nz = sum((x * x + y) * x)\n")
    x, y = np.array([[1.0, 2.0, 3.0]]), np.array([[4.0, 5.0, 6.0]])
    assert prog.run("z", x=x, y=y) == 68.0
    g = prog.grad("z", wrt=["x", "y"], mode=mode, x=x, y=y)
    np.testing.assert_array_equal(g["x"], [[7.0, 17.0, 33.0]])
    np.testing.assert_array_equal(g["y"], [[1.0, 2.0, 3.0]])
    h = prog.hvp("z", wrt=["x"], vector={"x": np.ones((1, 3))}, x=x, y=y)["x"]
    np.testing.assert_array_equal(h, 6 * x)


@pytest.mark.parametrize("mode", MODES)
def test_power_by_repeated_multiplication(mode):
    """models/ch04/listing_4_14.dl: a**k by a loop, d/da = k a**(k-1) = 80 at a=2, k=5."""
    prog = wengert.compile("input a: f64\ninput k: i32\nr = a\nfor i in 1..k {\n  r = r * a\n}\nz = r\n")
    assert prog.run("z", a=2.0, k=5) == 32.0
    assert prog.grad("z", wrt=["a"], mode=mode, a=2.0, k=5)["a"] == 80.0
    assert prog.hvp("z", wrt=["a"], vector={"a": 1.0}, a=2.0, k=5)["a"] == 160.0


@pytest.mark.parametrize("mode", MODES)
def test_if_differentiates_only_the_taken_branch(mode):
    prog = wengert.compile("input x: f64\ninput y: f64\nz = if x > 0 then x * y else y * y\n")
    g = prog.grad("z", wrt=["x", "y"], mode=mode, x=2.0, y=3.0)
    assert (g["x"], g["y"]) == (3.0, 2.0)
    g = prog.grad("z", wrt=["x", "y"], mode=mode, x=-2.0, y=3.0)
    assert (g["x"], g["y"]) == (0.0, 6.0)


@pytest.mark.parametrize("mode", MODES)
def test_softmax_crossentropy_gradient_is_p_minus_y(mode):
    prog = wengert.compile("input l: f64[2, 3]\ninput y: f64[2, 3]\nz = sum(softmax_crossentropy(l, y))\n")
    l = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    y = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    p = np.exp(l - l.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = prog.grad("z", wrt=["l"], mode=mode, l=l, y=y)["l"]
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, p - y, rtol=1e-12, atol=1e-15)
