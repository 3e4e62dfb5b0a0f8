"""The standard library of Keras-style layers (wengert/dsl/stdlib/layers.dl, docs/language.md §7):
values against NumPy references, derivatives against numerical differentiation (check_grads, f64,
small shapes) w.r.t. params and inputs, masking, training-mode behaviour (dropout, batch norm,
teacher forcing) and Keras's initializers."""
from __future__ import annotations

import numpy as np
import pytest

import wengert
from wengert import check_grads
from wengert.runtime.ir import Initializer


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def rng(seed=0):
    return np.random.default_rng(seed)


def randomize(prog, seed=1, scale=0.5):
    """Give every float param a random value (zeros and ones hide mistakes)."""
    r = rng(seed)
    for n, p in prog.module.params.items():
        if p.kind == "param" and p.var.type.dtype in ("f32", "f64"):
            v = prog._store[n]
            prog._store[n] = (scale * r.standard_normal(v.shape)).astype(v.dtype)


def training_gradcheck(prog, of, wrt, inputs, seed=3, h=1e-4, tol=1e-6):
    """Reverse mode with training=True (dropout, batch statistics, teacher forcing) against central
    differences, every evaluation drawing the same random numbers (prog.replay_seed)."""
    prog.replay_seed = seed
    try:
        _, grads = prog.value_and_grad(of, wrt, inputs, training=True)
        r = rng(seed)
        for n in wrt:
            base = np.array(prog._store[n] if n in prog._store else inputs[n], dtype=np.float64)
            d = r.standard_normal(base.shape)

            def f(s):
                point = base + s * d
                if n in prog._store:
                    saved = prog._store[n]
                    prog._store[n] = point
                    try:
                        return float(prog.value_and_grad(of, [], inputs, training=True)[0][of])
                    finally:
                        prog._store[n] = saved
                return float(prog.value_and_grad(of, [], {**inputs, n: point}, training=True)[0][of])
            numeric = (f(h) - f(-h)) / (2 * h)
            analytic = float(np.vdot(grads[n], d))
            assert abs(numeric - analytic) <= tol * (1 + abs(numeric)), (n, numeric, analytic)
    finally:
        prog.replay_seed = None


def float_params(prog):
    return [n for n, p in prog.module.params.items() if p.kind == "param"]


# ---------------------------------------------------------------- numpy references
def lstm_ref(prog, prefix, xs, mask=None, reverse=False):
    """docs/language.md §7, peephole LSTM; returns every h [batch, time, units] in processing order
    and the final h."""
    W, U, b = (prog._store[f"{prefix}.{k}"] for k in ("W", "U", "b"))
    pi, pf, po = (prog._store[f"{prefix}.peep_{k}"] for k in "ifo")
    n = U.shape[0]
    B, T, _ = xs.shape
    h, c = np.zeros((B, n)), np.zeros((B, n))
    hs = []
    order = range(T - 1, -1, -1) if reverse else range(T)
    for t in order:
        z = xs[:, t] @ W + h @ U + b
        i = sigmoid(z[:, :n] + pi * c)
        f = sigmoid(z[:, n:2 * n] + pf * c)
        g = np.tanh(z[:, 2 * n:3 * n])
        c_new = f * c + i * g
        o = sigmoid(z[:, 3 * n:] + po * c_new)
        h_new = o * np.tanh(c_new)
        if mask is not None:
            m = mask[:, t:t + 1].astype(bool)
            h_new, c_new = np.where(m, h_new, h), np.where(m, c_new, c)
        h, c = h_new, c_new
        hs.append(h)
    return np.stack(hs, axis=1), h


# ---------------------------------------------------------------- Dense, Conv2D, pooling, Flatten
def test_dense_values_and_gradients():
    prog = wengert.compile("""
        input x: f64[3, 4]
        h = Dense(x, 5)
        z = sum(sin(h))
    """)
    randomize(prog)
    x = rng().standard_normal((3, 4))
    np.testing.assert_allclose(prog.run("h", x=x), x @ prog._store["h.W"] + prog._store["h.b"])
    check_grads(prog, "z", x=x)


@pytest.mark.parametrize("kernel, stride, padding, out_shape", [
    ("3", "1", '"valid"', (2, 4, 4, 3)),
    ("3", "2", '"same"', (2, 3, 3, 3)),
    ("[2, 3]", "[1, 2]", '"valid"', (2, 5, 2, 3)),
    ("[3, 2]", "[2, 1]", '"same"', (2, 3, 6, 3)),
])
def test_conv2d_kernels_strides_padding(kernel, stride, padding, out_shape):
    prog = wengert.compile(f"""
        input x: f64[2, 6, 6, 2]
        c = Conv2D(x, 3, {kernel}, stride={stride}, padding={padding})
        z = sum(sin(c))
    """)
    kh, kw = (int(kernel), int(kernel)) if kernel.isdigit() else eval(kernel)
    assert prog.module.params["c.W"].var.type.shape == (kh, kw, 2, 3)
    assert prog.module.params["c.W"].init == Initializer("glorot")
    assert prog.module.params["c.b"].init == Initializer("zeros")
    randomize(prog)
    x = rng().standard_normal((2, 6, 6, 2))
    assert prog.run("c", x=x).shape == out_shape
    check_grads(prog, "z", x=x)


def test_conv2d_valid_against_numpy():
    prog = wengert.compile("""
        input x: f64[1, 4, 5, 2]
        c = Conv2D(x, 2, [2, 3], stride=[2, 1])
    """)
    randomize(prog)
    x = rng().standard_normal((1, 4, 5, 2))
    W, b = prog._store["c.W"], prog._store["c.b"]
    want = np.zeros((1, 2, 3, 2))
    for i in range(2):
        for j in range(3):
            want[0, i, j] = np.einsum("hwc,hwco->o", x[0, 2 * i:2 * i + 2, j:j + 3], W) + b
    np.testing.assert_allclose(prog.run("c", x=x), want)


def test_conv2d_rejects_a_bad_kernel():
    with pytest.raises(wengert.DiagnosticError, match="a size must be a positive integer or a pair"):
        wengert.compile("input x: f64[1, 4, 4, 1]\nc = Conv2D(x, 2, [1, 2, 3])")


def test_pooling_and_flatten():
    prog = wengert.compile("""
        input x: f64[2, 4, 6, 3]
        mp = MaxPooling2D(x, 2)
        ap = AveragePooling2D(x, [2, 3])
        f = Flatten(mp)
        z = sum(sin(f)) + sum(cos(Flatten(ap)))
    """)
    x = rng().permutation(144).reshape(2, 4, 6, 3) * 0.05  # distinct values: no ties in max
    mp = prog.run("mp", x=x)
    np.testing.assert_allclose(mp, x.reshape(2, 2, 2, 3, 2, 3).max(axis=(2, 4)))
    np.testing.assert_allclose(prog.run("ap", x=x), x.reshape(2, 2, 2, 2, 3, 3).mean(axis=(2, 4)))
    assert prog.run("f", x=x).shape == (2, 2 * 3 * 3)
    assert not prog.module.params  # parameterless layers are plain fns
    check_grads(prog, "z", x=x)


# ---------------------------------------------------------------- Dropout
DROPOUT = """
    input x: f64[20, 30]
    param w: f64[30] = 1
    d = Dropout(x * w, 0.25)
    z = sum(sin(d))
"""


def test_dropout_is_the_identity_outside_training():
    prog = wengert.compile(DROPOUT)
    x = rng().standard_normal((20, 30))
    np.testing.assert_array_equal(prog.run("d", x=x), x)
    check_grads(prog, "z", x=x)


def test_dropout_scales_by_one_over_keep_while_training():
    prog = wengert.compile(DROPOUT)
    x = rng().uniform(1, 2, (20, 30))
    prog.replay_seed = 7
    try:
        d = prog.value_and_grad("z", [], {"x": x}, also=["d"], training=True)[0]["d"]
        again = prog.value_and_grad("z", [], {"x": x}, also=["d"], training=True)[0]["d"]
    finally:
        prog.replay_seed = None
    np.testing.assert_array_equal(d, again)  # the replay seed draws the same mask
    kept = d != 0
    np.testing.assert_allclose(d[kept], x[kept] / 0.75)  # exact inverted-dropout scaling
    assert 0.6 < kept.mean() < 0.9


def test_dropout_gradients_while_training():
    prog = wengert.compile(DROPOUT)
    x = rng().standard_normal((20, 30))
    training_gradcheck(prog, "z", ["w", "x"], {"x": x})
    prog.replay_seed = 5
    try:
        values, grads = prog.value_and_grad("z", ["x"], {"x": x}, also=["d"], training=True)
    finally:
        prog.replay_seed = None
    dropped = values["d"] == 0
    assert dropped.any() and np.all(grads["x"][dropped] == 0)
    np.testing.assert_allclose(grads["x"][~dropped], np.cos(values["d"][~dropped]) / 0.75)


# ---------------------------------------------------------------- Embedding
def test_embedding_init_values_and_gradients():
    prog = wengert.compile("""
        input ids: i64[2, 3]
        input w: f64[4]
        e = Embedding(ids, 10, 4, dtype=f64)
        z = sum(sin(e @ w))
    """)
    decl = prog.module.params["e.E"]
    assert decl.var.type.dtype == "f64"
    assert decl.init == Initializer("uniform", (("high", 0.05), ("low", -0.05)))
    E = prog._store["e.E"]
    assert np.all(np.abs(E) <= 0.05) and E.std() > 0.01
    ids = np.array([[1, 2, 1], [9, 0, 3]])
    w = rng().standard_normal(4)
    np.testing.assert_array_equal(prog.run("e", ids=ids, w=w), E[ids])
    randomize(prog)
    check_grads(prog, "z", ids=ids, w=w)
    assert wengert.compile("input ids: i64[2]\ne = Embedding(ids, 10, 4)").module.params["e.E"].var.type.dtype == "f32"


# ---------------------------------------------------------------- SimpleRNN: the three variants
def test_simple_rnn_last_state_and_sequence():
    prog = wengert.compile("""
        input xs: f64[2, 5, 3]
        last = SimpleRNN(xs, 4)
        seq = SimpleRNN(xs, 4, return_sequences=true)
        z = sum(sin(last)) + sum(sin(seq))
    """)
    assert [n for n in prog.module.params if n.startswith("last.")] == ["last.W", "last.U", "last.b"]
    assert prog.module.params["last.U"].init == Initializer("orthogonal")
    randomize(prog)
    xs = rng().standard_normal((2, 5, 3))
    for name in ("last", "seq"):
        W, U, b = (prog._store[f"{name}.{k}"] for k in "WUb")
        h, hs = np.zeros((2, 4)), []
        for t in range(5):
            h = np.tanh(xs[:, t] @ W + h @ U + b)
            hs.append(h)
        want = np.stack(hs, axis=1) if name == "seq" else h
        np.testing.assert_allclose(prog.run(name, xs=xs), want, rtol=1e-12)
    check_grads(prog, "z", xs=xs)


OUTPUT_RNN = """
    input xs: f64[2, 4, 3]
    input ys: f64[2, 4, 2]
    r = SimpleRNN(xs, 5, feedback="output", targets=ys, return_sequences=true)
    z = sum((r - ys) ** 2) + sum(sin(r))
"""


def output_rnn_ref(prog, xs, ys=None, prefix="r"):
    W, U, b = (prog._store[f"{prefix}.{k}"] for k in "WUb")
    V, c = prog._store[f"{prefix}.Readout_1.V"], prog._store[f"{prefix}.Readout_1.c"]
    o, os = np.zeros((xs.shape[0], V.shape[1])), []
    for t in range(xs.shape[1]):
        fb = o if ys is None else (ys[:, t - 1] if t > 0 else np.zeros_like(o))
        o = np.tanh(xs[:, t] @ W + fb @ U + b) @ V + c
        os.append(o)
    return np.stack(os, axis=1)


def test_simple_rnn_output_feedback_params_and_free_running():
    prog = wengert.compile(OUTPUT_RNN)
    assert {n: str(p.var.type) for n, p in prog.module.params.items()} == {
        "r.W": "f64[3, 5]", "r.U": "f64[2, 5]", "r.b": "f64[5]", "r.Readout_1.V": "f64[5, 2]",
        "r.Readout_1.c": "f64[2]"}
    randomize(prog)
    xs, ys = rng().standard_normal((2, 4, 3)), rng(1).standard_normal((2, 4, 2))
    # outside training the previous output is fed back, whatever the targets
    np.testing.assert_allclose(prog.run("r", xs=xs, ys=ys), output_rnn_ref(prog, xs), rtol=1e-12)
    check_grads(prog, "z", xs=xs, ys=ys)


def test_simple_rnn_teacher_forcing_while_training():
    prog = wengert.compile(OUTPUT_RNN)
    randomize(prog)
    xs, ys = rng().standard_normal((2, 4, 3)), rng(1).standard_normal((2, 4, 2))
    r = prog.value_and_grad("z", [], {"xs": xs, "ys": ys}, also=["r"], training=True)[0]["r"]
    np.testing.assert_allclose(r, output_rnn_ref(prog, xs, ys), rtol=1e-12)
    assert not np.allclose(r, output_rnn_ref(prog, xs))
    training_gradcheck(prog, "z", float_params(prog) + ["xs"], {"xs": xs, "ys": ys})


def test_simple_rnn_output_feedback_without_targets_and_last_output():
    prog = wengert.compile("""
        input xs: f64[2, 4, 3]
        r = SimpleRNN(xs, 5, feedback="output", output_units=3)
        z = sum(sin(r))
    """)
    assert str(prog.module.params["r.U"].var.type) == "f64[3, 5]"
    randomize(prog)
    xs = rng().standard_normal((2, 4, 3))
    np.testing.assert_allclose(prog.run("r", xs=xs), output_rnn_ref(prog, xs)[:, -1], rtol=1e-12)
    check_grads(prog, "z", xs=xs)


def test_simple_rnn_unknown_feedback_is_an_error():
    with pytest.raises(wengert.DiagnosticError, match='"outptu" is not one of "hidden", "output"'):
        wengert.compile('input xs: f64[2, 4, 3]\nr = SimpleRNN(xs, 5, feedback="outptu")')


# ---------------------------------------------------------------- LSTM with peepholes
LSTM_PROG = """
    input xs: f64[2, 4, 3]
    last = LSTM(xs, 3)
    seq = LSTM(xs, 3, return_sequences=true)
    back = LSTM(xs, 3, reverse=true, return_sequences=true)
    z = sum(sin(last)) + sum(sin(seq)) + sum(cos(back))
"""


def test_lstm_params_peepholes_and_keras_initializers():
    prog = wengert.compile(LSTM_PROG)
    params = prog.module.params
    assert [n for n in params if n.startswith("last.")] == [
        "last.W", "last.U", "last.b", "last.peep_i", "last.peep_f", "last.peep_o"]
    assert [str(params[f"last.{k}"].var.type) for k in ("W", "U", "b", "peep_i")] == [
        "f64[3, 12]", "f64[3, 12]", "f64[12]", "f64[3]"]
    assert params["last.W"].init == Initializer("glorot")
    assert params["last.U"].init == Initializer("orthogonal")
    assert params["last.peep_f"].init == Initializer("glorot")
    np.testing.assert_array_equal(prog._store["last.b"], [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])  # unit_forget_bias
    U = prog._store["last.U"]
    np.testing.assert_allclose(U @ U.T, np.eye(3), atol=1e-12)  # orthogonal rows


def test_lstm_values_against_the_peephole_equations():
    prog = wengert.compile(LSTM_PROG)
    randomize(prog)
    xs = rng().standard_normal((2, 4, 3))
    out = prog.run(["last", "seq", "back"], xs=xs)
    np.testing.assert_allclose(out["last"], lstm_ref(prog, "last", xs)[1], rtol=1e-12)
    np.testing.assert_allclose(out["seq"], lstm_ref(prog, "seq", xs)[0], rtol=1e-12)
    assert out["seq"].shape == (2, 4, 3)
    # reverse: processed from the end, returned in input time order
    np.testing.assert_allclose(out["back"], lstm_ref(prog, "back", xs, reverse=True)[0][:, ::-1], rtol=1e-12)


def test_lstm_peepholes_matter():
    prog = wengert.compile(LSTM_PROG)
    randomize(prog)
    xs = rng().standard_normal((2, 4, 3))
    before = prog.run("seq", xs=xs)
    prog._store["seq.peep_o"] = prog._store["seq.peep_o"] + 1.0
    assert not np.allclose(prog.run("seq", xs=xs), before)


def test_lstm_gradients():
    prog = wengert.compile(LSTM_PROG)
    randomize(prog)
    check_grads(prog, "z", xs=rng().standard_normal((2, 4, 3)))


def test_lstm_symbolic_dims():
    prog = wengert.compile("""
        input xs: f64[batch, time, 3]
        seq = LSTM(xs, 2, return_sequences=true, reverse=true)
    """)
    assert prog.run("seq", xs=np.ones((3, 5, 3))).shape == (3, 5, 2)
    assert prog.run("seq", xs=np.ones((1, 2, 3))).shape == (1, 2, 2)


# ---------------------------------------------------------------- Bidirectional
def test_bidirectional_shape_names_and_gradients():
    prog = wengert.compile("""
        input xs: f64[2, 4, 3]
        bi = Bidirectional(xs, 2)
        bis = Bidirectional(xs, 2, return_sequences=true)
        z = sum(sin(bi)) + sum(sin(bis))
    """)
    assert "bi.forward.peep_i" in prog.module.params and "bi.backward.peep_o" in prog.module.params
    randomize(prog)
    xs = rng().standard_normal((2, 4, 3))
    out = prog.run(["bi", "bis"], xs=xs)
    assert out["bi"].shape == (2, 4) and out["bis"].shape == (2, 4, 4)
    np.testing.assert_allclose(out["bi"], np.concatenate(
        [lstm_ref(prog, "bi.forward", xs)[1], lstm_ref(prog, "bi.backward", xs, reverse=True)[1]], axis=-1),
        rtol=1e-12)
    np.testing.assert_allclose(out["bis"][..., 2:], lstm_ref(prog, "bis.backward", xs, reverse=True)[0][:, ::-1],
                               rtol=1e-12)
    check_grads(prog, "z", xs=xs)


# ---------------------------------------------------------------- masking
MASKED = """
    input xs: f64[batch, time, 3]
    input m: {mtype}[batch, time]
    {name} = {layer}(xs, 3, return_sequences=true, mask={mask})
    last = {layer}(xs, 3, mask={mask})
    z = sum(sin({name})) + sum(cos(last))
"""
LAYERS = [("LSTM", "seq"), ("Bidirectional", "seq"), ("SimpleRNN", "seq")]


def masked_prog(layer, mtype="bool", mask="m"):
    return wengert.compile(MASKED.format(mtype=mtype, name="seq", layer=layer, mask=mask))


@pytest.mark.parametrize("layer", ["LSTM", "Bidirectional", "SimpleRNN"])
@pytest.mark.parametrize("mtype, mask", [("bool", "m"), ("f64", "m"), ("f64", "m != 0")])
def test_masked_gradients(layer, mtype, mask):
    prog = masked_prog(layer, mtype, mask)
    randomize(prog)
    xs = rng().standard_normal((3, 4, 3))
    m = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=np.float64 if mtype == "f64" else bool)
    check_grads(prog, "z", float_params(prog) + ["xs"], xs=xs, m=m)  # a 0/1 mask has no derivative


@pytest.mark.parametrize("layer", ["LSTM", "Bidirectional", "SimpleRNN"])
def test_padding_changes_neither_outputs_nor_gradients(layer):
    """A padded batch against each sequence run alone, unpadded."""
    prog = masked_prog(layer)
    randomize(prog)
    lengths = [4, 2, 3]
    xs = rng().standard_normal((3, 4, 3))
    m = np.arange(4)[None, :] < np.array(lengths)[:, None]
    padded = np.where(m[..., None], xs, 99.0)  # garbage in the padding
    wrt = float_params(prog) + ["xs"]
    values, grads = prog.value_and_grad("z", wrt, {"xs": padded, "m": m}, also=["seq", "last"])
    assert np.all(values["seq"][~m] == 0)  # padded steps output zeros
    assert np.all(grads["xs"][~m] == 0)  # and receive no gradient
    total = {n: 0.0 for n in wrt if n != "xs"}
    for k, n in enumerate(lengths):
        one = {"xs": xs[k:k + 1, :n], "m": np.ones((1, n), dtype=bool)}
        v, g = prog.value_and_grad("z", wrt, one, also=["seq", "last"])
        np.testing.assert_allclose(values["seq"][k, :n], v["seq"][0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(values["last"][k], v["last"][0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(grads["xs"][k, :n], g["xs"][0], rtol=1e-10, atol=1e-13)
        for p in total:
            total[p] = total[p] + g[p]
    for p in total:
        np.testing.assert_allclose(grads[p], total[p], rtol=1e-10, atol=1e-13, err_msg=p)


def test_lstm_mask_against_reference_and_embedding_mask():
    prog = wengert.compile("""
        input ids: i64[batch, time]
        emb = ids |> Embedding(20, 3, dtype=f64)
        seq = LSTM(emb, 4, mask=ids != 0, return_sequences=true)
        last = LSTM(emb, 4, mask=ids != 0)
        z = sum(sin(seq)) + sum(last)
    """)
    randomize(prog)
    ids = np.array([[3, 5, 7, 0, 0], [1, 2, 3, 4, 5]])
    out = prog.run(["emb", "seq", "last"], ids=ids)
    m = ids != 0
    hs, _ = lstm_ref(prog, "seq", out["emb"], mask=m)
    np.testing.assert_allclose(out["seq"], np.where(m[..., None], hs, 0), rtol=1e-12)
    np.testing.assert_allclose(out["last"], lstm_ref(prog, "last", out["emb"], mask=m)[1], rtol=1e-12)
    np.testing.assert_allclose(out["last"][0], lstm_ref(prog, "last", out["emb"][:1, :3])[1][0], rtol=1e-12)
    check_grads(prog, "z", ids=ids)


def test_output_feedback_rnn_masked():
    prog = wengert.compile("""
        input xs: f64[batch, time, 3]
        input ys: f64[batch, time, 2]
        input m: bool[batch, time]
        r = SimpleRNN(xs, 4, feedback="output", targets=ys, return_sequences=true, mask=m)
        z = sum(sin(r))
    """)
    randomize(prog)
    xs, ys = rng().standard_normal((2, 4, 3)), rng(1).standard_normal((2, 4, 2))
    m = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=bool)
    r = prog.run("r", xs=xs, ys=ys, m=m)
    np.testing.assert_allclose(r[1, :2], output_rnn_ref(prog, xs[1:, :2])[0], rtol=1e-12)
    assert np.all(r[1, 2:] == 0)
    check_grads(prog, "z", xs=xs, ys=ys, m=m)
    training_gradcheck(prog, "z", float_params(prog) + ["xs"], {"xs": xs, "ys": ys, "m": m})


# ---------------------------------------------------------------- BatchNorm
BN = """
    input x: f64[6, 3]
    bn = BatchNorm(x)
    z = sum(sin(bn * [1.0, 2.0, 3.0]))
"""


def test_batchnorm_uses_batch_statistics_while_training():
    prog = wengert.compile(BN)
    randomize(prog)
    x = rng().standard_normal((6, 3)) * 2 + 1
    got = prog.value_and_grad("z", [], {"x": x}, also=["bn"], training=True)[0]["bn"]
    g, b = prog._store["bn.gamma"], prog._store["bn.beta"]
    np.testing.assert_allclose(got, g * (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3) + b, rtol=1e-12)
    training_gradcheck(prog, "z", ["bn.gamma", "bn.beta", "x"], {"x": x})


def test_batchnorm_uses_running_statistics_outside_training():
    prog = wengert.compile(BN)
    randomize(prog)
    x = rng().standard_normal((6, 3)) * 2 + 1
    g, b = prog._store["bn.gamma"], prog._store["bn.beta"]
    np.testing.assert_allclose(prog.run("bn", x=x), g * x / np.sqrt(1 + 1e-3) + b, rtol=1e-12)  # mean 0, var 1
    check_grads(prog, "z", x=x)
    # the updates move the running averages toward the batch statistics (momentum 0.99)
    new = prog.apply_updates({"x": x}, training=True)
    np.testing.assert_allclose(new["bn.running_mean"], 0.01 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(new["bn.running_var"], 0.99 + 0.01 * x.var(0), rtol=1e-12)
    for _ in range(2000):
        prog.apply_updates({"x": x}, training=True)
    np.testing.assert_allclose(prog._store["bn.running_mean"], x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(prog.run("bn", x=x), g * (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3) + b,
                               rtol=1e-5)
    check_grads(prog, "z", x=x)


def test_batchnorm_on_conv_features():
    prog = wengert.compile("""
        input x: f64[2, 3, 3, 2]
        bn = BatchNorm(x)
        z = sum(sin(bn))
    """)
    randomize(prog)
    x = rng().standard_normal((2, 3, 3, 2))
    out = prog.value_and_grad("z", [], {"x": x}, also=["bn"], training=True)[0]["bn"]
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), prog._store["bn.beta"], atol=1e-12)
    training_gradcheck(prog, "z", ["bn.gamma", "x"], {"x": x})


# ---------------------------------------------------------------- scan: args= and several sequences
def test_scan_args_and_several_sequences():
    prog = wengert.compile("""
        input xs: f64[2, 4, 3]
        input m: f64[2, 4]
        input W: f64[3, 3]
        fn step(h, x_t, m_t, W, k) = h + k * expand_dims(m_t, -1) * tanh(x_t @ W)
        hs = scan(step, zeros([2, 3]), [xs, m], axis=1, args=[W, 2])
        z = sum(sin(hs))
    """)
    r = rng()
    xs, m, W = r.standard_normal((2, 4, 3)), r.uniform(0, 1, (2, 4)), r.standard_normal((3, 3))
    want = np.cumsum(2 * m[..., None] * np.tanh(xs @ W), axis=1)
    np.testing.assert_allclose(prog.run("hs", xs=xs, m=m, W=W), want, rtol=1e-12)
    check_grads(prog, "z", xs=xs, m=m, W=W)


def test_scan_sequences_of_different_lengths_are_an_error():
    with pytest.raises(wengert.DiagnosticError, match="different lengths"):
        wengert.compile("""
            input a: f64[2, 4]
            input b: f64[2, 5]
            fn step(h, x, y) = h + x * y
            hs = scan(step, zeros([2]), [a, b], axis=1)
        """)


def test_fan_in_initializer():
    prog = wengert.compile("param W: f64[400, 50] = fan_in()")
    W = prog._store["W"]
    assert np.abs(W).max() <= 1 / 20 and np.abs(W).max() > 0.045
