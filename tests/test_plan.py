"""Compiled steps (wengert/compiler/), at both levels. The NumPy replay (`compile = "numpy"`) runs the
interpreter's kernels in the same order, so values, gradients and trained params are bit-identical
(np.array_equal, not a tolerance); native code (`compile = "native"`, numba) equals the interpreter
within 1e-12 relative in f64 and 1e-5 in f32 (sequential sums, its own tanh, libm). Every test runs
at both levels (the `level` fixture) unless it inspects one renderer's source."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import wengert
from wengert.cli import main
from wengert.compiler.numpy_codegen import EMITTERS
from wengert.compiler.plan import compile_step

MODELS = Path(__file__).resolve().parent.parent / "models"
LEVEL = "numpy"  # the level under test (set by the `level` fixture)
TOLERANCE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


@pytest.fixture(autouse=True, params=["numpy", "native"])
def level(request):
    global LEVEL
    if request.param == "native":
        pytest.importorskip("numba")
    LEVEL = request.param
    yield request.param
    LEVEL = "numpy"


def same(got, want, floor: float = 1e-300) -> bool:
    """Bit-identical at the NumPy level; natively, within the dtype's tolerance of the largest
    magnitude (or of `floor`, for values that are rounding noise around 0)."""
    got, want = np.asarray(got), np.asarray(want)
    if LEVEL == "numpy" or want.dtype.kind not in "fc":
        return np.array_equal(got, want, equal_nan=True)
    if got.shape != want.shape or not np.array_equal(np.isfinite(got), np.isfinite(want)):
        return False
    finite = np.isfinite(want)
    if not np.array_equal(got[~finite], want[~finite], equal_nan=True):
        return False
    scale = float(np.max(np.abs(want[finite]), initial=0.0))
    return float(np.max(np.abs(got[finite] - want[finite]), initial=0.0)) <= TOLERANCE[want.dtype] * max(scale, floor)


def pair(source: str | Path) -> tuple[wengert.Program, wengert.Program]:
    """The same program twice: one compiling at the level under test, one interpreting."""
    make = (lambda: wengert.load(source)) if isinstance(source, Path) else (lambda: wengert.compile(source))
    compiled, interpreted = make(), make()
    compiled.compile = LEVEL
    interpreted.compile = False
    return compiled, interpreted


numpy_level_only = pytest.mark.parametrize("level", ["numpy"], indirect=True)


def stats(numpy: dict, native: dict | None = None, steps: int | None = None) -> dict:
    """The expected plan statistics at the level under test. Without `native`: a NumPy plan is
    compiled when a structure repeats (its two traces are interpreted); native code is compiled at
    the first trace and also runs that step, so each plan traces one step less and replays it."""
    if LEVEL == "numpy":
        return numpy
    if native is not None:
        return native
    out = dict(numpy)
    out["traced"] -= out["compiled"]
    out["replays"] += 2 * out["compiled"]
    out.pop("numpy", None)
    out["native"] = out["compiled"]
    return out


def sgd_steps(source, feeds, of="loss", wrt=None, also=(), training=True, lr=0.05):
    """Run value_and_grad + an SGD update on both programs; every value, gradient and param
    must be the same (`same`) at every step. Returns the compiled program (for its statistics)."""
    compiled, interpreted = pair(source)
    wrt = wrt or [n for n, p in compiled.module.params.items() if p.kind == "param"]
    for step, inputs in enumerate(feeds):
        got = compiled.value_and_grad(of, wrt, inputs, also=list(also), training=training)
        want = interpreted.value_and_grad(of, wrt, inputs, also=list(also), training=training)
        for part, (g, w) in enumerate(zip(got, want)):
            assert g.keys() == w.keys()
            for name in w:
                assert same(g[name], w[name]), (step, part, name)
                assert np.asarray(g[name]).dtype == np.asarray(w[name]).dtype
        for prog, grads in ((compiled, got[1]), (interpreted, want[1])):
            for name in wrt:
                if name in prog._store:
                    prog._store[name] -= lr * grads[name]
    for name in compiled._store:
        assert same(compiled._store[name], interpreted._store[name]), name
    return compiled


def rng(seed=0):
    return np.random.default_rng(seed)


def moons_feeds(n, batch, seed=0):
    r = rng(seed)
    return [{"x": r.standard_normal((batch, 2)), "y": np.eye(2)[r.integers(0, 2, batch)]} for _ in range(n)]


# ---------------------------------------------------------------- same results as the interpreter
def test_moons_batch_1_replays_like_the_interpreter(level):
    prog = sgd_steps(MODELS / "ch08" / "moons.dl", moons_feeds(6, 1), also=["y_hat", "prediction"])
    assert prog._plans.stats == stats({"replays": 4, "traced": 2, "compiled": 1, "guard_failures": 0, "numpy": 1})
    (plan,), = prog._plans.plans.values()
    assert plan.level == level and plan.fallback is None
    if level == "numpy":
        assert "out=v" in plan.source  # gradient accumulation in place
        assert "_np_tanh(" in plan.source and "_b" in plan.source  # emitted kernels, preallocated buffers
    else:  # one native call: no host statement between segments
        assert plan.source.count("= _seg") == 1 and "_f" not in plan.source.split("# ---- native")[0]


SMALL_CNN = """
seed 3
input x: f64[batch, 6, 6, 1]
input y: f64[batch, 2]
c = Conv2D(x, 2, 3) |> relu |> MaxPooling2D(2)
h = Flatten(c) |> Dense(2)
loss = mean(softmax_crossentropy(h, y))
"""


def test_small_conv_net():
    r = rng(1)
    feeds = [{"x": r.standard_normal((3, 6, 6, 1)), "y": np.eye(2)[r.integers(0, 2, 3)]} for _ in range(5)]
    prog = sgd_steps(SMALL_CNN, feeds)
    assert prog._plans.stats["replays"] == {"numpy": 3, "native": 5}[LEVEL]


SMALL_LSTM = """
seed 2
input xs: f64[batch, 5, 3]
input y: f64[batch, 2]
h = LSTM(xs, 4) |> Dense(2)
loss = mean(sum((h - y) ** 2, axis=1))
"""


def test_small_lstm():
    r = rng(2)
    feeds = [{"xs": r.standard_normal((2, 5, 3)), "y": r.standard_normal((2, 2))} for _ in range(5)]
    prog = sgd_steps(SMALL_LSTM, feeds)
    assert prog._plans.stats["replays"] == {"numpy": 3, "native": 5}[LEVEL]


DROPOUT = """
seed 5
input x: f64[batch, 2]
input y: f64[batch, 2]
h = Dense(x, 16) |> tanh |> Dropout(0.5)
z = Dense(h, 2)
loss = mean(softmax_crossentropy(z, y)) + 0.1 * mean(normal([4]))
"""


def test_dropout_draws_fresh_numbers_from_the_same_generator():
    prog = sgd_steps(DROPOUT, moons_feeds(6, 4, seed=5))
    assert prog._plans.stats["replays"] == {"numpy": 4, "native": 6}[LEVEL]
    # each replay drew new masks: the losses of one fixed batch differ from step to step
    feed = moons_feeds(1, 4, seed=9)[0]
    losses = {float(prog.value_and_grad("loss", ["Dense_1.W"], feed, training=True)[0]["loss"]) for _ in range(4)}
    assert len(losses) == 4


BRANCH = """
seed 1
input x: f64[3]
param w: f64[3] = 0.5
s = sum(x * w)
loss = if s > 0 then sum(tanh(x * w)) * 2 else sum(x * w * w) - s
"""


def test_branch_flip_falls_back_and_matches_the_interpreter():
    ones = np.array([1.0, 2.0, 0.5])
    feeds = [{"x": ones}] * 4 + [{"x": -ones}] * 4 + [{"x": ones}] * 2 + [{"x": -ones}]
    prog = sgd_steps(BRANCH, feeds, lr=0.01)
    # NumPy: steps 1-2 trace (compiled on 2); 3-4 replay; 5 and 6 fail the guard and trace (a second
    # plan from 6); 7-8 replay it; 9 fails its guard and replays the first plan, which moves to the
    # front: 10 replays it at once; 11 fails it and replays the second. Native: 1 and 5 trace,
    # compile and replay; every other step replays; 5, 9 and 11 fail a guard first.
    assert prog._plans.stats == stats({"replays": 7, "traced": 4, "compiled": 2, "guard_failures": 4, "numpy": 2},
                                      {"replays": 11, "traced": 2, "compiled": 2, "guard_failures": 3, "native": 2})
    assert all("_GuardFailed" in p.source for p in next(iter(prog._plans.plans.values())))


BOOLS = """
input a: f64
input b: f64
param w: f64 = 2.0
c = a > 0 and b > 0
loss = if c then w * a * b else w * w
"""


def test_scalar_bools_are_not_mistaken_for_each_other():
    """NumPy returns its one np.True_ for every true scalar comparison: `c` is not `a > 0`."""
    f = np.float64
    feeds = [{"a": f(1.0), "b": f(2.0)}] * 3 + [{"a": f(1.0), "b": f(-2.0)}] * 3
    prog = sgd_steps(BOOLS, feeds, wrt=["w"], lr=0.01)
    assert prog._plans.stats["guard_failures"] >= 1 and prog._plans.stats["compiled"] == 2


LOOP = """
input a: f64
input k: i64
param c: f64 = 1.5
acc = a * c
for i in 1..k {
  acc = sin(acc * c) + a
}
loss = acc * acc
"""


def test_for_loop_trip_count_is_guarded():
    feeds = [{"a": np.float64(0.3 + 0.01 * j), "k": np.int64(4)} for j in range(4)]
    feeds += [{"a": np.float64(0.2), "k": np.int64(6)}] * 3 + [{"a": np.float64(0.2), "k": np.int64(4)}]
    prog = sgd_steps(LOOP, feeds, wrt=["c", "a"])
    # NumPy: 1-2 trace, 3-4 replay; 5-6 fail the guard and trace (compiled on 6); 7 replays; 8 fails,
    # replays. Native: 1 and 5 trace, compile and replay, the rest replay; 5 and 8 fail a guard first.
    assert prog._plans.stats == stats({"replays": 4, "traced": 4, "compiled": 2, "guard_failures": 3, "numpy": 2},
                                      {"replays": 8, "traced": 2, "compiled": 2, "guard_failures": 2, "native": 2})


def test_changed_batch_size_gets_its_own_plan(level):
    feeds = moons_feeds(3, 4) + moons_feeds(3, 3, seed=1) + moons_feeds(2, 4, seed=2)
    prog = sgd_steps(MODELS / "ch08" / "moons.dl", feeds)
    assert len(prog._plans.plans) == 2  # keyed by the fed shapes: no guard needed
    assert prog._plans.stats == stats({"replays": 4, "traced": 4, "compiled": 2, "guard_failures": 0, "numpy": 2})


def test_nonfinite_derivative_keeps_exact_zeros():
    """ops.scale's where(g != 0, ...) for an infinite derivative is decided at every replay."""
    src = """
    input x: f64[3]
    input m: f64[3]
    loss = sum(sqrt(x) * m)
    """
    feeds = [{"x": np.array([1.0, 4.0, 9.0]), "m": np.ones(3)}] * 3 + [{"x": np.array([0.0, 4.0, 9.0]),
                                                                          "m": np.array([0.0, 1.0, 1.0])}]
    prog = sgd_steps(src, feeds, wrt=["x"])
    assert prog._plans.stats["replays"] == {"numpy": 2, "native": 4}[LEVEL]


OPAQUE = """
input x: f64[4, 3]
param w: f64[3] = 0.5
h = maximum(x * w, 0.25)
loss = sum(max(h, axis=0)) + sum(minimum(h, x))
"""


@numpy_level_only
def test_rules_computing_on_primal_values_stay_calls_of_the_rule():
    """maximum's tie weights and reduce_max's hits are NumPy on primal values, not binds: those
    rules are replayed as calls (their weights change with the data), the rest is inlined."""
    r = rng(3)
    feeds = [{"x": r.standard_normal((4, 3))} for _ in range(4)] + [{"x": np.full((4, 3), 0.5)}]  # ties
    prog = sgd_steps(OPAQUE, feeds, wrt=["w", "x"])
    (plan,), = prog._plans.plans.values()
    assert prog._plans.stats["replays"] == 3
    calls = [line for line in plan.source.splitlines() if "= _f" in line]
    assert len(calls) == 3  # the vjp of maximum, reduce_max and minimum
    assert "_np_maximum(" in plan.source and "_np_maximum_reduce(" in plan.source  # forward kernels inline


def test_results_are_not_overwritten_by_the_next_replay():
    """Plans write into buffers kept between replays: what a call returned must not change."""
    prog, _ = pair(MODELS / "ch08" / "moons.dl")
    wrt = ["W1", "b1", "W2", "b2"]
    feeds = moons_feeds(5, 2)
    results = [prog.value_and_grad("loss", wrt, f, also=["y_hat"]) for f in feeds]
    kept = [({k: v.copy() for k, v in vals.items()}, {k: v.copy() for k, v in grads.items()})
            for vals, grads in results]
    assert prog._plans.stats["replays"] == {"numpy": 3, "native": 5}[LEVEL]
    for (vals, grads), (vals0, grads0) in zip(results, kept):
        for k in vals0:
            assert np.array_equal(vals[k], vals0[k])
        for k in grads0:
            assert np.array_equal(grads[k], grads0[k])
    # resident gradients (the Trainer's) are the same numbers, without the copy
    vals, grads = prog.value_and_grad("loss", wrt, feeds[0], also=["y_hat"], resident=True)
    for k in wrt:
        assert same(grads[k], kept[0][1][k])


# ---------------------------------------------------------------- the list is optimised
@numpy_level_only
def test_dead_values_dropped_constants_folded_subexpressions_shared():
    src = """
    input x: f64[4]
    param w: f64[4] = 2
    a = x * w
    b = x * w
    unused = exp(x) * 3
    k = 2.0 * 3.0 + dim(x, 0)
    loss = sum(a * b) * k
    """
    prog = wengert.compile(src)
    evaluation, _ = prog._evaluate(["loss"], {"x": np.arange(4.0)}, record=True, active=["w"])
    evaluation.trace.outputs["loss"] = evaluation.entry_of[prog._var("loss").id]
    plan, values, grads = compile_step(evaluation, ["loss"], "loss", ["w"])
    assert "exp" not in plan.source  # dead
    assert plan.source.count("_np_multiply(a0, a1") == 1  # x * w once
    assert "dimsize" not in plan.source and "_c" in plan.source  # k folded to a constant
    x, w = np.arange(4.0), np.full(4, 2.0)
    np.testing.assert_allclose(grads["w"], 2 * x * x * w * 10, rtol=1e-15)
    out_values, _ = plan.run(None, *[{"x": x, "w": w}[name] for _, name in plan.roots])
    assert float(out_values[0]) == float(values[0]) == np.sum((x * w) ** 2) * 10


def test_emitters_cover_the_common_kernels():
    for prim in ("add", "mul", "div", "tanh", "exp", "matmul", "reduce_sum", "reshape", "transpose"):
        assert prim in EMITTERS


# ---------------------------------------------------------------- turning it off
def test_compile_false_never_builds_a_plan():
    prog = wengert.load(MODELS / "ch08" / "moons.dl")
    for feed in moons_feeds(4, 1):
        prog.value_and_grad("loss", ["W1"], feed, compile=False)
    assert prog._plans is None


TRAIN = """
seed 4
input x: f64[batch, 2]
input y: f64[batch, 2]
h = Dense(x, 8) |> tanh |> Dropout(0.2)
z = Dense(h, 2)
loss = mean(softmax_crossentropy(z, y))
data (tr, va) = moons(examples=70, noise=0.1, seed=1) |> onehot(y, 2) |> split(0.8)
train {
  data = tr
  valid = va
  minimize = loss
  optimizer = adam(lr=0.01)
  epochs = 2
  batch = 5
}
"""


TRAIN_BN = """
seed 6
input x: f32[batch, 2]
input y: f32[batch, 2]
h = Dense(x, 8) |> BatchNorm |> relu
z = Dense(h, 2)
loss = mean(softmax_crossentropy(z, y)) + 0.001 * l2(Dense_1.W)
data (tr, va) = moons(examples=70, noise=0.1, seed=2) |> onehot(y, 2) |> cast(x, f32) |> cast(y, f32) |> split(0.8)
train {
  data = tr
  valid = va
  minimize = loss
  optimizer = sgd(lr=0.1, momentum=0.9, nesterov=true)
  epochs = 2
  batch = 5
  metrics = [accuracy(z, y)]
}
"""


@pytest.mark.parametrize("source", [TRAIN, TRAIN_BN], ids=["f64-dropout-adam", "f32-batchnorm-relu-nesterov"])
def test_trainer_with_and_without_compile_is_bit_identical(tmp_path, source):
    path = tmp_path / "m.dl"
    path.write_text(source)  # 56 training examples: batches of 5 and a last one of 1
    compiled, interpreted = pair(path)
    h1, h2 = compiled.train(), interpreted.train()
    as_trained = np.float32 if "f32[" in source else np.float64  # the history's numbers, in the program's dtype
    assert len(h1) == len(h2)
    for r1, r2 in zip(h1, h2):
        assert r1.keys() == r2.keys()
        for k in r1:
            if k != "seconds":
                assert same(as_trained(r1[k]), as_trained(r2[k])), k
    for name in compiled._store:  # (a bias before BatchNorm has a zero gradient: its value is rounding noise)
        assert same(compiled._store[name], interpreted._store[name], floor=1.0), name
    assert compiled._plans.stats["replays"] > 10


def test_cli_compile_levels(tmp_path, level):
    path = tmp_path / "m.dl"
    path.write_text(TRAIN)
    runner = CliRunner()
    outs = {}
    for flags in (["--compile", level], ["--no-compile"]):
        out = tmp_path / flags[-1]
        result = runner.invoke(main, ["train", str(path), "--out", str(out)] + flags)
        assert result.exit_code == 0, result.output
        outs[flags[0]] = np.load(out / "params.npz")
    assert sorted(outs["--compile"].files) == sorted(outs["--no-compile"].files)
    for name in outs["--compile"].files:
        if name != "meta":
            assert same(outs["--compile"][name], outs["--no-compile"][name]), name
