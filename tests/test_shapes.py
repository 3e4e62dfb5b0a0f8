"""Static shape and dtype inference for the built-ins of LANGUAGE.md §8, symbolic dims, promotion (§3)."""
from __future__ import annotations

import pytest

from conftest import errors, lower, typ, where

# Declarations shared by the table-driven tests below.
DECLS = """
input a: f64[3, 1]
input b: f64[1, 4]
input x: f32[batch, 5, 6]
input m: f32[3, 4]
input r: f32[4]
input v: f64[6]
input w: f64[6, 2]
input v3: f64[3]
input v4: f64[4]
input bt: f64[7, 1, 3, 4]
input bu: f64[5, 4, 2]
input xi: i64[3, 4]
input i: i64[4]
input c: bool[3, 4]
input s: f64
input im: f32[n, 28, 28, 1]
input odd: f32[n, 7, 9, 1]
input k3: f32[3, 3, 1, 8]
input k5: f32[5, 5, 1, 8]
input p: f32[batch, 10]
input y: f32[batch, 10]
input pb: f64[batch]
input yb: f64[batch]
input lab: i64[batch]
input ids: i64[batch, 7]
input E: f32[100, 16]
"""
N_DECLS = DECLS.strip().count("\n") + 1


def infer(expression: str) -> str:
    m = lower(DECLS + f"out = {expression}\n")
    return typ(m, "out")


def fail(expression: str):
    """The single error of `out = <expression>`: (column, message); the expression starts at column 7."""
    (e,) = errors(DECLS + f"out = {expression}\n")
    assert e.span.line == N_DECLS + 1
    return e.span.column, e.message


def cases(*rows):
    return pytest.mark.parametrize("expression, expected", rows, ids=[r[0] for r in rows])


# ---------------------------------------------------------------- elementwise
@cases(
    ("a + b", "f64[3, 4]"),
    ("b + a", "f64[3, 4]"),
    ("m * r", "f32[3, 4]"),
    ("x - x[0]", "f32[batch, 5, 6]"),
    ("a / b", "f64[3, 4]"),
    ("xi % 3", "i64[3, 4]"),
    ("m ** 2", "f32[3, 4]"),
    ("xi ** 2", "i64[3, 4]"),
    ("xi / 2", "f64[3, 4]"),
    ("-xi", "i64[3, 4]"),
    ("m > r", "bool[3, 4]"),
    ("xi == 1", "bool[3, 4]"),
    ("c and m > 0", "bool[3, 4]"),
    ("c or c", "bool[3, 4]"),
    ("not c", "bool[3, 4]"),
    ("c == c", "bool[3, 4]"),
)
def test_arithmetic_and_broadcasting(expression, expected):
    assert infer(expression) == expected


@cases(
    ("exp(m)", "f32[3, 4]"), ("log(xi)", "f64[3, 4]"), ("log1p(m)", "f32[3, 4]"), ("expm1(m)", "f32[3, 4]"),
    ("sqrt(xi)", "f64[3, 4]"), ("abs(xi)", "i64[3, 4]"), ("abs(m)", "f32[3, 4]"), ("sign(m)", "f32[3, 4]"),
    ("sin(m)", "f32[3, 4]"), ("cos(m)", "f32[3, 4]"), ("tanh(m)", "f32[3, 4]"), ("sigmoid(m)", "f32[3, 4]"),
    ("hard_sigmoid(m)", "f32[3, 4]"), ("ultra_fast_sigmoid(m)", "f32[3, 4]"), ("softplus(m)", "f32[3, 4]"),
    ("relu(m)", "f32[3, 4]"), ("relu(xi)", "i64[3, 4]"), ("leaky_relu(m, alpha=0.2)", "f32[3, 4]"),
    ("leaky_relu(m)", "f32[3, 4]"), ("elu(m)", "f32[3, 4]"), ("elu(x, alpha=0.5)", "f32[batch, 5, 6]"),
    ("maximum(m, r)", "f32[3, 4]"), ("minimum(xi, 2.5)", "f64[3, 4]"), ("maximum(xi, xi)", "i64[3, 4]"),
    ("maximum(a, b)", "f64[3, 4]"),
    ("clip(m, 0, 1)", "f32[3, 4]"), ("clip(xi, 0, 1)", "i64[3, 4]"),
    ("pow(m, 2)", "f32[3, 4]"), ("pow(a, b)", "f64[3, 4]"),
    ("floor(m)", "f32[3, 4]"), ("ceil(xi)", "f64[3, 4]"), ("round(m)", "f32[3, 4]"),
    ("sigmoid(x)", "f32[batch, 5, 6]"),
)
def test_elementwise_functions_and_activations(expression, expected):
    assert infer(expression) == expected


@cases(
    ("where(c, m, 0)", "f32[3, 4]"),
    ("where(m > 0, m, xi)", "f32[3, 4]"),
    ("where(c, 1, 2)", "i64[3, 4]"),
    ("where(a > 0, a, b)", "f64[3, 4]"),
    ("cast(m, i32)", "i32[3, 4]"),
    ("cast(c, f32)", "f32[3, 4]"),
    ("cast(xi, f64)", "f64[3, 4]"),
    ("cast(m > 0.5, f32)", "f32[3, 4]"),
    ("cast(1, f32)", "f32[]"),
    ("stop_gradient(m)", "f32[3, 4]"),
    ("stop_gradient(x)", "f32[batch, 5, 6]"),
)
def test_where_cast_stop_gradient(expression, expected):
    assert infer(expression) == expected


# ---------------------------------------------------------------- reductions
@cases(
    ("sum(x)", "f32[]"),
    ("sum(x, axis=1)", "f32[batch, 6]"),
    ("sum(x, axis=[1, 2], keepdims=true)", "f32[batch, 1, 1]"),
    ("sum(x, keepdims=true)", "f32[1, 1, 1]"),
    ("sum(xi)", "i64[]"),
    ("mean(x, axis=-1)", "f32[batch, 5]"),
    ("mean(x)", "f32[]"),
    ("mean(xi)", "f64[]"),
    ("mean(xi, axis=0)", "f64[4]"),
    ("mean(x, axis=0, keepdims=true)", "f32[1, 5, 6]"),
    ("max(x, axis=0)", "f32[5, 6]"),
    ("max(xi, axis=1)", "i64[3]"),
    ("min(x, axis=2, keepdims=true)", "f32[batch, 5, 1]"),
    ("min(m)", "f32[]"),
    ("prod(x, axis=1)", "f32[batch, 6]"),
    ("logsumexp(x, axis=1)", "f32[batch, 6]"),
    ("logsumexp(x, axis=2, keepdims=true)", "f32[batch, 5, 1]"),
    ("logsumexp(m)", "f32[]"),
    ("argmax(x, axis=-1)", "i64[batch, 5]"),
    ("argmax(m, axis=0, keepdims=true)", "i64[1, 4]"),
    ("argmax(x)", "i64[]"),
    ("norm(x)", "f32[]"),
    ("norm(x, axis=1)", "f32[batch, 6]"),
    ("norm(w, axis=0, keepdims=true)", "f64[1, 2]"),
)
def test_reductions(expression, expected):
    assert infer(expression) == expected


def test_argmax_keepdims_without_axis_keeps_the_rank():
    assert infer("argmax(m, keepdims=true)") == "i64[1, 1]"


def test_reduction_errors():
    assert fail("sum(m, axis=2)") == (7, "axis 2 is out of range for a tensor of rank 2")
    assert fail("sum(c)") == (7, "arithmetic on bool (bool[3, 4]); use cast(x, f32) first")
    assert fail("mean(m, axsi=0)") == (15, "`mean` has no argument `axsi` (did you mean `axis`?)")


# ---------------------------------------------------------------- shapes
@cases(
    ("reshape(m, [-1])", "f32[12]"),
    ("reshape(m, [2, -1])", "f32[2, 6]"),
    ("reshape(m, [4, 3])", "f32[4, 3]"),
    ("reshape(a, [1, 3])", "f64[1, 3]"),
    ("reshape(x, [dim(x, 0), -1])", "f32[batch, 30]"),
    ("reshape(x, [-1, 6])", "f32[(5*batch), 6]"),
    ("transpose(m)", "f32[4, 3]"),
    ("transpose(x)", "f32[6, 5, batch]"),
    ("transpose(x, perm=[0, 2, 1])", "f32[batch, 6, 5]"),
    ("flatten(m)", "f32[12]"),
    ("flatten(x)", "f32[(30*batch)]"),
    ("concat([x, x], axis=1)", "f32[batch, 10, 6]"),
    ("concat([a, a, a])", "f64[9, 1]"),
    ("concat([m, m], axis=-1)", "f32[3, 8]"),
    ("concat([m, xi])", "f32[6, 4]"),
    ("stack([v, v, v])", "f64[3, 6]"),
    ("stack([v, v], axis=1)", "f64[6, 2]"),
    ("stack([m, m], axis=-1)", "f32[3, 4, 2]"),
    ("expand_dims(v, 0)", "f64[1, 6]"),
    ("expand_dims(x, -1)", "f32[batch, 5, 6, 1]"),
    ("expand_dims(m, 1)", "f32[3, 1, 4]"),
    ("squeeze(a)", "f64[3]"),
    ("squeeze(b, axis=0)", "f64[4]"),
    ("squeeze(expand_dims(m, 1), axis=-2)", "f32[3, 4]"),
    ("broadcast_to(a, [2, 3, 5])", "f64[2, 3, 5]"),
    ("broadcast_to(r, [dim(x, 0), 3, 4])", "f32[batch, 3, 4]"),
    ("pad(a, [[1, 2], [0, 3]])", "f64[6, 4]"),
    ("pad(m, 1)", "f32[5, 6]"),
    ("pad(m, [[0, 0], [2, 2]], value=-1)", "f32[3, 8]"),
    ("onehot(i, 10)", "f64[4, 10]"),
    ("onehot(i, 10, dtype=f32)", "f32[4, 10]"),
    ("onehot(lab, 3)", "f64[batch, 3]"),
    ("onehot(xi, 5, dtype=i64)", "i64[3, 4, 5]"),
    ("dim(x, 1)", "i64[]"),
    ("dim(x, 0)", "i64[]"),
    ("zeros([2, 3])", "f64[2, 3]"),
    ("zeros([2, 3], dtype=i32)", "i32[2, 3]"),
    ("ones([dim(x, 0), 4], dtype=f32)", "f32[batch, 4]"),
    ("ones([])", "f64[]"),
    ("eye(3)", "f64[3, 3]"),
    ("eye(4, dtype=f32)", "f32[4, 4]"),
    ("eye(dim(x, 1))", "f64[5, 5]"),
    ("arange(5)", "i64[5]"),
    ("arange(2, 10, step=3)", "i64[3]"),
    ("arange(1, 4, dtype=f64)", "f64[3]"),
    ("arange(10, 0, step=-2)", "i64[5]"),
    ("arange(5, 0)", "i64[0]"),
    ("arange(dim(x, 0))", "i64[batch]"),
)
def test_shape_functions(expression, expected):
    assert infer(expression) == expected


def test_dim_is_a_static_integer():
    m = lower("input x: f32[batch, 5, 6]\nn = dim(x, 1) * 2 + 1\nz = zeros([dim(x, 1) - 1, n])")
    assert typ(m, "n") == "i64[]"
    assert typ(m, "z") == "f64[4, 11]"


def test_transpose_rejects_out_of_range_axes():
    col, msg = fail("transpose(m, perm=[2, 1])")
    assert "out of range" in msg or "not a permutation" in msg


@pytest.mark.parametrize("expression, column, message", [
    ("reshape(m, [5, 2])", 7, "cannot reshape f32[3, 4] (12 elements) into [5, 2] (10 elements)"),
    ("reshape(m, [-1, 5])", 7, "cannot reshape f32[3, 4] into [-1, 5]"),
    ("reshape(m, [-1, -1])", 7, "reshape: at most one dimension may be -1"),
    ("concat([m, transpose(m)], axis=0)", 7, "concat: shapes f32[3, 4] and f32[4, 3] differ on axis 1"),
    ("concat([m, v])", 7, "concat: operands have different ranks: f64[3, 4] and f64[6]"),
    ("squeeze(m, axis=0)", 7, "cannot squeeze axis 0 of f32[3, 4]: its size is not 1"),
    ("broadcast_to(m, [4, 3, 2])", 7, "shapes [3, 4] and [4, 3, 2] cannot be broadcast together "
                                      "(axis -1: 4 vs 2)"),
    ("transpose(m, perm=[0, 0])", 7, "transpose: [0, 0] is not a permutation of the 2 axes of f32[3, 4]"),
    ("expand_dims(m, 3)", 7, "axis 3 is out of range for expand_dims of rank 2"),
    ("dim(m, 2)", 7, "axis 2 is out of range for a tensor of rank 2"),
    ("m + v4[0:3]", 7, "shapes [3, 4] and [3] cannot be broadcast together (axis -1: 4 vs 3)"),
    ("zeros([2, -1])", 7, "negative dimension -1 in a shape"),
    ("m[5]", 9, "index 5 is out of range for axis 0 of size 3"),
])
def test_shape_errors(expression, column, message):
    assert fail(expression) == (column, message)


# ---------------------------------------------------------------- indexing
@cases(
    ("x[0]", "f32[5, 6]"),
    ("x[:, 1:3]", "f32[batch, 2, 6]"),
    ("x[-1]", "f32[5, 6]"),
    ("x[:, :, ::2]", "f32[batch, 5, 3]"),
    ("x[:, 1:, -2:]", "f32[batch, 4, 2]"),
    ("x[0, 0, 0]", "f32[]"),
    ("x[:, 4:1]", "f32[batch, 0, 6]"),
    ("x[:, dim(x, 1) - 1]", "f32[batch, 6]"),
    ("x[:, ids]", "f32[batch, batch, 7, 6]"),
    ("E[ids]", "f32[batch, 7, 16]"),
    ("E[lab]", "f32[batch, 16]"),
    ("m[:, i]", "f32[3, 4]"),
)
def test_indexing_and_gather(expression, expected):
    assert infer(expression) == expected


def test_index_by_a_runtime_integer():
    m = lower("input x: f32[batch, 5, 6]\ninput t: i64\nout = x[:, t]")
    assert typ(m, "out") == "f32[batch, 6]"
    assert [e.prim for e in m.main.eqns] == ["index"]


# ---------------------------------------------------------------- linear algebra (numpy.matmul rules)
@cases(
    ("v @ w", "f64[2]"),                 # 1-D @ 2-D: the prepended axis is removed
    ("w @ v[0:2]", "f64[6]"),            # 2-D @ 1-D: the appended axis is removed
    ("v @ v", "f64[]"),                  # 1-D @ 1-D: inner product
    ("m @ transpose(m)", "f32[3, 3]"),
    ("bt @ bu", "f64[7, 5, 3, 2]"),      # batch dims broadcast: [7, 1] with [5]
    ("bt @ v4", "f64[7, 1, 3]"),
    ("v3 @ bt", "f64[7, 1, 4]"),
    ("x @ v", "f64[batch, 5]"),          # f32 @ f64 promotes to f64
    ("x @ ones([6, 2], dtype=f32)", "f32[batch, 5, 2]"),
    ("matmul(w, ones([2, 3]))", "f64[6, 3]"),
    ("xi @ transpose(m)", "f32[3, 3]"),
    ("dot(v, v)", "f64[]"),
    ("dot(v, w)", "f64[2]"),
    ("dot(w, 2.0)", "f64[6, 2]"),
    ("dot(s, v)", "f64[6]"),
    ("outer(v, i)", "f64[6, 4]"),
    ("outer(v3, v4)", "f64[3, 4]"),
    ("outer(m, r)", "f32[12, 4]"),
)
def test_linear_algebra(expression, expected):
    assert infer(expression) == expected


@pytest.mark.parametrize("expression, message", [
    ("w @ v", "inner dimensions do not match: f64[6, 2] @ f64[6] (2 vs 6)"),
    ("m @ 2", "`@` needs operands of rank >= 1, got f32[3, 4] @ f32[] (use `*` for scalars)"),
    ("m @ ones([3, 4], dtype=f32)", "inner dimensions do not match: f32[3, 4] @ f32[3, 4] (4 vs 3)"),
])
def test_matmul_errors(expression, message):
    assert fail(expression) == (7, message)


def test_dot_follows_numpy_dot_for_nd():
    m = lower("input a: f64[2, 3]\ninput b: f64[5, 3, 4]\nout = dot(a, b)")
    assert typ(m, "out") == "f64[2, 5, 4]"


# ---------------------------------------------------------------- neural
@cases(
    ("softmax(x)", "f32[batch, 5, 6]"),
    ("softmax(x, axis=1)", "f32[batch, 5, 6]"),
    ("softmax(xi)", "f64[3, 4]"),
    ("log_softmax(x, axis=1)", "f32[batch, 5, 6]"),
    ("log_softmax(p)", "f32[batch, 10]"),
    ('conv2d(im, k3, stride=2, padding="same")', "f32[n, 14, 14, 8]"),
    ("conv2d(im, k3, stride=2)", "f32[n, 13, 13, 8]"),
    ('conv2d(im, k3, stride=2, padding="valid")', "f32[n, 13, 13, 8]"),
    ("conv2d(im, k3)", "f32[n, 26, 26, 8]"),
    ('conv2d(im, k3, padding="same")', "f32[n, 28, 28, 8]"),
    ('conv2d(odd, k5, stride=2, padding="same")', "f32[n, 4, 5, 8]"),   # ceil(7/2), ceil(9/2)
    ("conv2d(odd, k5, stride=2)", "f32[n, 2, 3, 8]"),                    # (7-5)//2+1, (9-5)//2+1
    ("conv2d(odd, k3, stride=[1, 2])", "f32[n, 5, 4, 8]"),
    ('conv2d(odd, k3, stride=3, padding="same")', "f32[n, 3, 3, 8]"),
    ("conv2d(im, ones([3, 3, 1, 2]))", "f32[n, 26, 26, 2]"),  # a default-dtype fill is weak
    ("conv2d(im, ones([3, 3, 1, 2], dtype=f64))", "f64[n, 26, 26, 2]"),
    ("maxpool2d(im, 2)", "f32[n, 14, 14, 1]"),
    ("maxpool2d(odd, 3, stride=2)", "f32[n, 3, 4, 1]"),
    ("maxpool2d(odd, [2, 3])", "f32[n, 3, 3, 1]"),
    ("avgpool2d(im, 3)", "f32[n, 9, 9, 1]"),
    ("avgpool2d(odd, 2, stride=[1, 3])", "f32[n, 6, 3, 1]"),
    ("l2pool2d(odd, 2)", "f32[n, 3, 4, 1]"),
    ("l2pool2d(odd, 2, stride=1)", "f32[n, 6, 8, 1]"),
    ("dropout(x, 0.5)", "f32[batch, 5, 6]"),
    ("embedding(ids, E)", "f32[batch, 7, 16]"),
    ("embedding(lab, E)", "f32[batch, 16]"),
    ("embedding(3, E)", "f32[16]"),
)
def test_neural(expression, expected):
    assert infer(expression) == expected


@pytest.mark.parametrize("expression, message", [
    ("conv2d(im, ones([3, 3, 2, 4], dtype=f32))",
     "conv2d: input channels 1 of f32[n, 28, 28, 1] do not match the kernel's 2 (f32[3, 3, 2, 4])"),
    ("conv2d(m, k3)", "conv2d needs an NHWC input of rank 4, got f32[3, 4]"),
    ('conv2d(im, k3, padding="full")', "padding must be \"valid\" or \"same\", got 'full'"),
    ("conv2d(odd, ones([9, 9, 1, 1], dtype=f32))", "conv2d: kernel 9x9 is larger than the input f32[n, 7, 9, 1]"),
    ("maxpool2d(odd, 8)", "pool size 8x8 is larger than the input f32[n, 7, 9, 1]"),
    ("embedding(m, E)", "indices must be integers, got f32[3, 4]"),
])
def test_neural_errors(expression, message):
    assert fail(expression) == (7, message)


# ---------------------------------------------------------------- losses, regularizers, metrics
@cases(
    ("binary_crossentropy(p, y)", "f32[batch, 10]"),
    ("binary_crossentropy(pb, yb)", "f64[batch]"),
    ("categorical_crossentropy(p, y)", "f32[batch]"),
    ("squared_error(pb, yb)", "f64[batch]"),
    ("squared_error(p, y)", "f32[batch, 10]"),
    ("hinge(pb, yb)", "f64[batch]"),
    ("hinge(p, y)", "f32[batch, 10]"),
    ("bce_with_logits(p, y)", "f32[batch, 10]"),
    ("softmax_crossentropy(p, y)", "f32[batch]"),
    ("mean(categorical_crossentropy(softmax(p), y))", "f32[]"),
    ("l1(m)", "f32[]"),
    ("l2(p)", "f32[]"),
    ("l2(xi)", "i64[]"),
    ("l1(x)", "f32[]"),
    ("accuracy(p, y)", "f64[]"),
    ("accuracy(p, lab)", "f64[]"),
    ("accuracy(pb, yb)", "f64[]"),
    ("accuracy(pb > 0.5, yb)", "f64[]"),
    ("accuracy(lab, lab)", "f64[]"),
)
def test_losses_regularizers_metrics(expression, expected):
    assert infer(expression) == expected


def test_pool_size_must_be_positive():
    errs = errors(DECLS + "out = maxpool2d(im, 0)\n")
    assert [(where(e), e.message) for e in errs] == [
        ((N_DECLS + 1, 7), "size must be a positive integer or a pair of them, got an integer"),
        ((N_DECLS + 1, 7), "stride must be a positive integer or a pair of them, got an integer")]


def test_loss_shape_mismatch_points_at_the_call():
    errs = errors("input m: f32[3, 4]\ninput r: f32[4]\nout = binary_crossentropy(m, r[0:3])")
    assert {(where(e), e.message) for e in errs} == {
        ((3, 7), "in `binary_crossentropy`: shapes [3] and [3, 4] cannot be broadcast together (axis -1: 3 vs 4)")}


def test_loss_shape_mismatch_is_reported_once():
    errs = errors("input m: f32[3, 4]\ninput r: f32[4]\nout = binary_crossentropy(m, r[0:3])")
    assert len(errs) == 1


# ---------------------------------------------------------------- random
@cases(
    ("normal([2, 3])", "f64[2, 3]"),
    ("normal([4], mean=1, std=2, dtype=f32)", "f32[4]"),
    ("normal([dim(x, 0), 5])", "f64[batch, 5]"),
    ("uniform([dim(p, 0), 3], low=-1, high=1)", "f64[batch, 3]"),
    ("uniform([2], dtype=f32)", "f32[2]"),
    ("bernoulli([5], 0.3)", "f64[5]"),
    ("bernoulli([5], p=0.3, dtype=f32)", "f32[5]"),
    ("bernoulli(shape(m), 0.5, dtype=dtype(m))", "f32[3, 4]"),
    ("normal([3, 4]) * m", "f32[3, 4]"),        # a default-dtype draw is weak, like a literal
    ("normal([3, 4], dtype=f64) * m", "f64[3, 4]"),
)
def test_random(expression, expected):
    assert infer(expression) == expected


def test_random_draws_are_floats():
    assert fail("normal([2], dtype=i64)") == (7, "random draws are floats, not i64")


# ---------------------------------------------------------------- symbolic dims
def test_symbolic_dim_unified_with_a_number_through_matmul():
    m = lower("""
        input x: f64[batch, n]
        param W: f64[10, 3] = zeros
        h = x @ W
        xx = x
        y = reshape(x, [-1])
    """)
    assert typ(m, "h") == "f64[batch, 3]"
    assert typ(m, "xx") == "f64[batch, 10]"  # n is now known to be 10
    assert str(m.type_of(m.inputs["x"].var)) == "f64[batch, 10]"
    assert typ(m, "y") == "f64[(10*batch)]"


def test_two_inputs_sharing_batch():
    m = lower("""
        input x: f64[batch, 4]
        input y: f64[batch]
        z = x + expand_dims(y, 1)
        s = sum(x, axis=1) - y
    """)
    assert typ(m, "z") == "f64[batch, 4]"
    assert typ(m, "s") == "f64[batch]"


def test_two_symbols_unified_become_one():
    m = lower("input x: f64[batch, 4]\ninput y: f64[n, 4]\nz = x + y\nw = y")
    assert typ(m, "z") == "f64[batch, 4]"
    assert typ(m, "w") == "f64[batch, 4]"


def test_broadcasting_never_binds_a_symbol_to_a_number():
    (e,) = errors("input x: f64[batch, 4]\ninput y: f64[5, 4]\nz = x + y\nw = x")
    assert where(e) == (3, 5)
    assert e.message.startswith("cannot broadcast f64[batch, 4] and f64[5, 4]: axis -2 pairs the symbolic dim "
                                "`batch` with 5")


def test_symbolic_mismatch_names_both_places():
    (e,) = errors("""
        input x: f64[n]
        input y: f64[n]
        param A: f64[3, 5] = zeros
        param B: f64[4, 5] = zeros
        a = x @ A
        c = y @ B
    """)
    assert where(e) == (6, 5)
    assert e.message == "inner dimensions do not match: f64[3] @ f64[4, 5] (3 vs 4) (`n` is 3 since line 5)"


def test_symbolic_broadcast_mismatch_names_the_binding_line():
    (e,) = errors("""
        input x: f64[4, batch]
        param W: f64[5, 3] = zeros
        input z: f64[batch, 4]
        a = x @ W
        b = z + ones([6, 4])
    """)
    assert where(e) == (5, 5)
    assert e.message == ("shapes [batch, 4] and [6, 4] cannot be broadcast together (axis -2: 5 vs 6) "
                         "(`batch` is 5 since line 4)")


def test_broadcast_mismatch_of_a_concrete_axis():
    (e,) = errors("input x: f64[batch, 4]\ninput y: f64[batch, 3]\nz = x + y")
    assert where(e) == (3, 5)
    assert e.message == "shapes [batch, 4] and [batch, 3] cannot be broadcast together (axis -1: 4 vs 3)"


def test_layer_stack_shapes_with_symbolic_batch():
    m = lower("""
        input x: f32[batch, 28, 28, 1]
        c1 = Conv2D(x, 8, 3, stride=2, padding="same")
        c2 = Conv2D(c1, 16, 3)
        p = MaxPooling2D(c2, 2)
        f = Flatten(p)
        d = Dense(f, 10)
    """)
    assert [typ(m, n) for n in ("c1", "c2", "p", "f", "d")] == [
        "f32[batch, 14, 14, 8]", "f32[batch, 12, 12, 16]", "f32[batch, 6, 6, 16]", "f32[batch, 576]",
        "f32[batch, 10]"]
    assert str(m.type_of(m.params["d.W"].var)) == "f32[576, 10]"


# ---------------------------------------------------------------- promotion (§3)
@cases(
    ("0.5 * r", "f32[4]"),
    ("r * 0.5", "f32[4]"),
    ("r + 1", "f32[4]"),
    ("r + xi[0]", "f32[4]"),
    ("r + v4", "f64[4]"),
    ("v4 + r", "f64[4]"),
    ("xi * 0.5", "f64[3, 4]"),
    ("xi + 1", "i64[3, 4]"),
    ("cast(xi, i32) + 1", "i32[3, 4]"),
    ("cast(xi, i32) + xi", "i64[3, 4]"),
    ("cast(xi, i32) * 0.5", "f64[3, 4]"),
    ("[1, 2, 3, 4] * r", "f32[4]"),
    ("[1.5, 2.5, 3.5, 4.5] + i", "f64[4]"),
    ("2 * 3", "i64[]"),
    ("2 * 1.5", "f64[]"),
    ("7 / 2", "f64[]"),
    ("3", "i64[]"),
    ("2.5", "f64[]"),
    ("true", "bool[]"),
    ("[[1, 2], [3, 4]]", "i64[2, 2]"),
    ("[1.5, 2]", "f64[2]"),
    ("[s, 2 * s, 1]", "f64[3]"),
    ("[v3, v3]", "f64[2, 3]"),
    ("[[s, s], [s, s]]", "f64[2, 2]"),
    ("s * r", "f64[4]"),
)
def test_promotion(expression, expected):
    assert infer(expression) == expected


def test_weak_literal_keeps_f32_through_a_chain():
    m = lower("input x: f32[3]\ny = 0.5 * x + 1 - 2.0 / x\nz = sigmoid(x) * 0.5 + 0.5")
    assert typ(m, "y") == "f32[3]"
    assert typ(m, "z") == "f32[3]"
    assert all(e.prim != "cast" for e in m.main.eqns)  # weak literals are re-made, never cast at run time


@pytest.mark.parametrize("expression", ["m @ transpose(c)", "maximum(m, c)"])
def test_bool_operand_of_matmul_and_maximum_is_an_error(expression):
    col, msg = fail(expression)
    assert col == 7 and msg.startswith("arithmetic on bool")


@pytest.mark.parametrize("expression, column, message", [
    ("c + 1", 7, "arithmetic on bool (`+` on bool[3, 4]); use cast(x, f32) first"),
    ("m * c", 7, "arithmetic on bool (`*` on bool[3, 4]); use cast(x, f32) first"),
    ("true + 1", 7, "arithmetic on bool (`+` on a bool); use cast(x, f32) first"),
    ("-c", 7, "arithmetic on bool (unary `-` on bool[3, 4]); use cast(x, f32) first"),
    ("sum(c)", 7, "arithmetic on bool (bool[3, 4]); use cast(x, f32) first"),
    ("abs(c)", 7, "arithmetic on bool (bool[3, 4]); use cast(x, f32) first"),
    ("(m > 0.5) * m", 7, "arithmetic on bool (`*` on bool[3, 4]); use cast(x, f32) first"),
    ("m and c", 7, "`and` needs bool operands, got f32[3, 4]"),
    ("not m", 7, "`not` needs a bool operand, got f32[3, 4]"),
    ("where(m, m, m)", 7, "the condition of where must be bool, got f32[3, 4]"),
    ("minimum(c, c)", 7, "arithmetic on bool (bool[3, 4] and bool[3, 4]); use cast(x, f32) first"),
    ("relu(c)", 7, "in `relu`: arithmetic on bool (`>` on bool[3, 4]); use cast(x, f32) first"),
    ("exp(c)", 7, "arithmetic on bool (bool[3, 4]); use cast(x, f32) first"),
])
def test_arithmetic_on_bool_is_an_error(expression, column, message):
    assert fail(expression) == (column, message)
