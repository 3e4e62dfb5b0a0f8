"""Native compiled steps (compile = "native", wengert/compiler/native_codegen.py) against the
interpreter, on every case of tests/test_gradients.py; fused training epochs (compiler/epochs.py)
against step-by-step training, bit for bit; the code cache; determinism."""
from __future__ import annotations

import subprocess
import textwrap
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import wengert
from wengert.cli import main
from wengert.compiler import cache
from wengert.train.loop import Trainer

pytest.importorskip("numba")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_gradients import ALL, BY_ID, F32, F32_SUBSET, F64  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TOLERANCE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


def close(got, want) -> None:
    """Equal within the dtype's tolerance relative to the largest magnitude, and absolute below 1
    (a derivative that is 0 up to rounding is noise of either sign); NaN and inf in place."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    if want.dtype.kind not in "fc":
        assert np.array_equal(got, want)
        return
    finite = np.isfinite(want)
    assert np.array_equal(np.isfinite(got), finite)
    assert np.array_equal(got[~finite], want[~finite], equal_nan=True)
    scale = float(np.max(np.abs(want[finite]), initial=0.0))
    assert float(np.max(np.abs(got[finite] - want[finite]), initial=0.0)) <= TOLERANCE[want.dtype] * max(scale, 1.0)


def native_and_interpreted(case, dtype):
    prog, inputs, wrt = case.build(dtype)
    native, _, _ = case.build(dtype)
    native.compile = "native"
    prog.compile = "off"
    results = []
    for p in (native, prog):
        for _ in range(2):  # the first call compiles (and runs natively), the second replays
            values, grads = p.value_and_grad("z", wrt, inputs)
        results.append((values, grads))
    return native, results


@pytest.mark.parametrize("case", [c.param() for c in ALL])
def test_every_builtin_natively_equals_the_interpreter_f64(case):
    native, ((v1, g1), (v2, g2)) = native_and_interpreted(case, F64)
    assert native._plans.stats["replays"] == 2 and native._plans.stats.get("native") == 1
    close(v1["z"], v2["z"])
    for name in g2:
        close(g1[name], g2[name])


@pytest.mark.parametrize("case", [BY_ID[i].param() for i in F32_SUBSET])
def test_every_builtin_natively_equals_the_interpreter_f32(case):
    _, ((v1, g1), (v2, g2)) = native_and_interpreted(case, F32)
    close(v1["z"], v2["z"])
    for name in g2:
        close(g1[name], g2[name])


def test_small_steps_are_one_native_call_and_conv_nets_mixed():
    mlp = BY_ID["fn_and_pipe"]
    native, _ = native_and_interpreted(mlp, F64)
    (plan,), = native._plans.plans.values()
    glue = plan.source.split("# ---- native")[0]
    assert plan.native is not None and glue.count("= _seg") == 1
    conv = BY_ID["conv2d_same_s2"]
    native, _ = native_and_interpreted(conv, F64)
    (plan,), = native._plans.plans.values()
    glue = plan.source.split("# ---- native")[0]
    assert plan.level == "native" and "= _seg" in glue and "= _f" in glue  # host convolution, native rest


MOONS = """
seed 0
input x: f64[batch, 2]
input y: f64[batch, 2]
param W1: f64[2, 30] = normal(mean=0, std=1)
param b1: f64[30] = zeros
param W2: f64[30, 2] = normal(mean=0, std=1)
param b2: f64[2] = zeros
a1 = tanh(x @ W1 + b1)
z2 = a1 @ W2 + b2
loss = mean(softmax_crossentropy(z2, y)) + 0.0005 * (sum(W1 ** 2) + sum(W2 ** 2))
data (tr, va) = moons(examples=300, noise=0.1, seed=0) |> onehot(y, 2) |> split(0.8)
train {
  data = tr
  valid = va
  minimize = loss
  optimizer = sgd(lr=0.05)
  epochs = 3
  batch = 1
  metrics = [accuracy(z2, y)]
}
"""
OPTIMIZERS = {
    "sgd": ("sgd", {"lr": 0.05}),
    "sgd-nesterov-decay": ("sgd", {"lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    "sgd-dampening": ("sgd", {"lr": 0.02, "momentum": 0.5, "dampening": 0.3}),
    "adam": ("adam", {"lr": 0.01}),
    "adam-amsgrad-decay": ("adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.001}),
    "adagrad-decay": ("adagrad", {"lr": 0.05, "lr_decay": 0.01, "weight_decay": 0.001}),
    "rmsprop": ("rmsprop", {"lr": 0.001}),
    "rmsprop-centered-momentum": ("rmsprop", {"lr": 0.001, "centered": True, "momentum": 0.5}),
    "adadelta": ("adadelta", {"lr": 1.0}),
    "adamax": ("adamax", {"lr": 0.01}),
    "nadam (NumPy update)": ("nadam", {"lr": 0.01}),
}


def trained(source: str, optimizer, fused: bool, batch: int = 1, dtype: str = "f64", shuffle: bool = False):
    from wengert.train.optim import OPTIMIZERS as DEFAULTS
    prog = wengert.compile(source.replace("f64", dtype))
    name, kwargs = optimizer
    trainer = Trainer(prog, None, {"optimizer": (name, {**DEFAULTS[name], **kwargs}), "batch": batch,
                                   "shuffle": shuffle})
    if not fused:
        trainer._runner = lambda *args: None
    history = trainer.run()
    return prog, history, trainer


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS.values()), ids=list(OPTIMIZERS))
def test_a_fused_epoch_trains_the_same_params_as_step_by_step(optimizer):
    fused, h1, t1 = trained(MOONS, optimizer, fused=True, shuffle=True)
    plain, h2, _ = trained(MOONS, optimizer, fused=False, shuffle=True)
    for name in plain._store:
        assert np.array_equal(fused._store[name], plain._store[name]), name
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in h1] == \
           [{k: v for k, v in r.items() if k != "seconds"} for r in h2]
    native_update = optimizer[0] != "nadam"
    assert (t1._runners.get((1, False)) is not None) == native_update
    if native_update:  # 3 epochs of 240 steps: the first traced, the rest in fused chunks
        assert fused._plans.stats["replays"] < 10


def test_fused_f32_adam_and_a_last_smaller_batch():
    fused, _, _ = trained(MOONS, OPTIMIZERS["adam"], fused=True, batch=7, dtype="f32")
    plain, _, _ = trained(MOONS, OPTIMIZERS["adam"], fused=False, batch=7, dtype="f32")
    for name in plain._store:  # 240 rows: 34 batches of 7, then one of 2 (its own plan)
        assert fused._store[name].dtype == np.float32
        assert np.array_equal(fused._store[name], plain._store[name]), name


def test_native_training_learns_and_is_deterministic():
    a, history, _ = trained(MOONS, OPTIMIZERS["adam"], fused=True)
    b, _, _ = trained(MOONS, OPTIMIZERS["adam"], fused=True)
    for name in a._store:
        assert np.array_equal(a._store[name], b._store[name])
    assert history[-1]["valid_accuracy"] >= 0.85


def test_levels_agree_on_a_training_run():
    runs = {}
    for level in ("native", "numpy", "off"):
        prog = wengert.compile(MOONS)
        prog.compile = level
        runs[level] = (prog, prog.train(epochs=1))
    for name in runs["off"][0]._store:
        assert np.array_equal(runs["numpy"][0]._store[name], runs["off"][0]._store[name])  # the replay is exact
        close(runs["native"][0]._store[name], runs["off"][0]._store[name])
    assert abs(runs["native"][1][-1]["valid_accuracy"] - runs["off"][1][-1]["valid_accuracy"]) < 1e-3


def test_compile_level_is_checked():
    prog = wengert.compile(MOONS)
    prog.compile = "fast"
    with pytest.raises(ValueError, match="unknown compile level 'fast'; known: native, numpy, off"):
        prog.value_and_grad("loss", ["W1"], {"x": np.zeros((1, 2)), "y": np.zeros((1, 2))})


# ---------------------------------------------------------------- the cache
def test_a_second_process_reuses_the_cache(tmp_path):
    script = ("import numpy as np, wengert\n"
              f"prog = wengert.compile({MOONS!r})\n"
              "prog.train(epochs=1)\n"
              "big = wengert.compile('input x: f64[3000]\\nz = sum(x * x)\\n')\n"  # a pairwise sum of 3000
              "for _ in range(2):\n"
              "    v, g = big.value_and_grad('z', ['x'], {'x': np.arange(3000.0)})\n"
              "assert float(v['z']) == float(np.sum(np.arange(3000.0) ** 2))\n"
              "print(sorted(prog._plans.stats.items()))\n")
    env = {"WENGERT_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    outs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        outs.append(sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()))
    assert outs[0] == outs[1]  # nothing new written: sources and numba's machine code were reused
    # (the second process ran the code it loaded: a cached recursive function used to crash it)
    assert any(name.endswith(".nbc") for name in outs[0]) and any(name.endswith(".py") for name in outs[0])


def test_a_corrupt_cache_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("WENGERT_CACHE", str(tmp_path))
    source = "from numba import njit\n\n\n@njit(cache=True)\ndef f(x):\n    return x + 1\n"
    module = cache.load_module(source)
    path = Path(module.__file__)
    cache._LOADED.clear()
    path.write_text("this is not python (")  # a torn or foreign file
    for index in path.parent.glob("__pycache__/*.nbi"):
        index.write_bytes(b"garbage")
    assert cache.load_module(source).f(1) == 2
    assert path.read_text() == source


def test_cache_info_and_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("WENGERT_CACHE", str(tmp_path))
    cache.load_module("X = 1\n")
    runner = CliRunner()
    result = runner.invoke(main, ["cache", "info"])
    assert result.exit_code == 0 and str(tmp_path) in result.output and "1 generated source" in result.output
    result = runner.invoke(main, ["cache", "clear"])
    assert result.exit_code == 0 and "removed 1 file" in result.output
    assert cache.info()["files"] == 0


def test_sums_are_numpys_pairwise_sums_to_the_bit():
    """Arithmetic, casts and sums (no transcendental function, no BLAS) match the interpreter exactly:
    a sum over trailing axes is NumPy's pairwise summation, over leading axes its row-after-row order."""
    src = """
    input x: f64[3, 700]
    input y: f32[2000]
    a = sum(x * x) + sum(sum(x * 3.5 - 1, axis=1) ** 2) + sum(x, axis=0)[5]
    b = cast(sum(y * y), f64) + cast(sum(y), f64)
    z = a + b
    """
    prog = wengert.compile(textwrap.dedent(src))
    native = wengert.compile(textwrap.dedent(src))
    prog.compile, native.compile = "off", "native"
    r = np.random.default_rng(4)
    feed = {"x": r.standard_normal((3, 700)) * 10 ** r.uniform(-2, 2, (3, 700)),
            "y": r.standard_normal(2000).astype(np.float32)}
    for _ in range(2):
        got = native.value_and_grad("z", ["x", "y"], feed)
    want = prog.value_and_grad("z", ["x", "y"], feed)
    assert native._plans.stats["native"] == 1
    assert np.array_equal(got[0]["z"], want[0]["z"])
    for name in ("x", "y"):
        assert np.array_equal(got[1][name], want[1][name]), name
