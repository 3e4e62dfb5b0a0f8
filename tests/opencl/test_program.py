"""Program(..., device="opencl"): run, grad (both modes), jvp, vjp, hvp, value_and_grad and
train on the device, against the CPU; params, optimizer slots and activations resident in
device buffers; only losses and metrics copied back during training; the compile-time
errors (a primitive without a kernel, f64 without cl_khr_fp64, a device that does not exist)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

import wengert
from wengert.diagnostics import DiagnosticError
from wengert.opencl import backend as backend_module
from wengert.opencl.array import TRANSFERS, DeviceArray
from wengert.train.loop import Trainer

MODELS = Path(__file__).resolve().parents[2] / "models"

MLP = textwrap.dedent("""
    seed 3
    input x: f32[batch, 3]
    input y: f32[batch, 2]
    param W1: f32[3, 8] = normal(mean=0, std=0.5)
    param b1: f32[8] = zeros
    param W2: f32[8, 2] = normal(mean=0, std=0.5)
    param b2: f32[2] = zeros
    h = dropout(tanh(x @ W1 + b1), 0.25)
    logits = h @ W2 + b2
    loss = mean(softmax_crossentropy(logits, y)) + 0.001 * l2(W1)
    """)


def _data(n=16):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[(x[:, 0] * x[:, 1] > 0).astype(int)]
    return {"x": x, "y": y}


def _pair(src=MLP):
    return wengert.compile(src), wengert.compile(src, device="opencl")


def test_params_live_on_the_device_and_come_back_as_numpy():
    cpu, dev = _pair()
    assert all(isinstance(v, DeviceArray) for v in dev._store.values())
    params = dev.params
    assert all(type(v) is np.ndarray for v in params.values())
    for n in params:  # the same seeded initialization
        np.testing.assert_array_equal(params[n], cpu.params[n])
    dev.set_params({"b2": np.array([0.5, -0.5], np.float32)})
    assert isinstance(dev._store["b2"], DeviceArray)
    np.testing.assert_array_equal(dev.params["b2"], [0.5, -0.5])


def test_run_grad_jvp_vjp_hvp_and_value_and_grad_match_the_cpu():
    cpu, dev = _pair()
    d = _data()
    tol = dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(dev.run("loss", **d), cpu.run("loss", **d), **tol)
    for mode in ("reverse", "forward"):
        gc, gd = cpu.grad("loss", mode=mode, **d), dev.grad("loss", mode=mode, **d)
        assert set(gd) == {"W1", "b1", "W2", "b2"}
        for n in gc:
            assert type(gd[n]) is np.ndarray and gd[n].dtype == np.float32
            np.testing.assert_allclose(gd[n], gc[n], **tol, err_msg=f"{mode} {n}")
    rng = np.random.default_rng(1)
    t = {"W2": rng.standard_normal((8, 2)).astype(np.float32)}
    (vc, tc), (vd, td) = cpu.jvp("loss", t, **d), dev.jvp("loss", t, **d)
    np.testing.assert_allclose(vd, vc, **tol)
    np.testing.assert_allclose(td, tc, **tol)
    c = rng.standard_normal((16, 2)).astype(np.float32)
    vjc, vjd = cpu.vjp("logits", c, **d), dev.vjp("logits", c, **d)
    for n in vjc:
        np.testing.assert_allclose(vjd[n], vjc[n], **tol)
    hc, hd = cpu.hvp("loss", ["W2"], t, **d), dev.hvp("loss", ["W2"], t, **d)
    np.testing.assert_allclose(hd["W2"], hc["W2"], rtol=1e-4, atol=1e-5)
    (valc, grc), (vald, grd) = (p.value_and_grad("loss", ["W1"], d, also=["logits"], compile=False)
                                for p in (cpu, dev))
    np.testing.assert_allclose(np.asarray(vald["logits"]), valc["logits"], **tol)
    np.testing.assert_allclose(grd["W1"], grc["W1"], **tol)


def test_dropout_draws_on_the_device_reproducibly_by_seed():
    d = _data()
    a, b = (wengert.compile(MLP, device="opencl") for _ in range(2))
    va, vb = (p.value_and_grad("loss", ["W1"], d, training=True)[0]["loss"] for p in (a, b))
    assert float(va) == float(vb)  # same seed, same device: the same mask
    again = float(a.value_and_grad("loss", ["W1"], d, training=True)[0]["loss"])
    assert again != float(va)  # a fresh draw per evaluation
    assert float(a.run("loss", **d)) != float(va)  # dropout is off outside training


def _per_step_copies(prog, **overrides):
    """Host copies made between consecutive training steps (and the step count)."""
    marks = []

    def report(event, **info):
        if event == "step":
            marks.append(TRANSFERS["to_host"])
    trainer = Trainer(prog, None, overrides, report=report)
    history = trainer.run()
    return np.diff(marks), history, trainer


def test_moons_trains_on_opencl_to_the_cpu_accuracy_copying_back_only_loss_and_metric():
    overrides = {"epochs": 1, "steps": 25}
    cpu = wengert.load(MODELS / "moons.dl")
    cpu.compile = False
    dev = wengert.load(MODELS / "moons.dl", device="opencl")
    h_cpu = Trainer(cpu, None, overrides).run()
    copies, h_dev, trainer = _per_step_copies(dev, **overrides)
    assert set(copies.tolist()) == {2}  # per step: the loss and the accuracy, nothing else
    assert all(isinstance(s, DeviceArray) for slots in trainer.optimizer.slots.values() for s in slots.values())
    assert all(isinstance(v, DeviceArray) for v in dev._store.values())
    assert h_dev[-1]["valid_accuracy"] >= 0.85
    assert abs(h_dev[-1]["valid_accuracy"] - h_cpu[-1]["valid_accuracy"]) <= 0.002
    assert h_dev[-1]["loss"] == pytest.approx(h_cpu[-1]["loss"], rel=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd(lr=0.1, momentum=0.9, nesterov=true)", "rmsprop(lr=0.01, centered=true)",
                                       "adagrad(lr=0.1)", "adamax(lr=0.01)", "nadam(lr=0.01)", "rprop(lr=0.01)",
                                       "adadelta(lr=1.0)", "adam(lr=0.01, amsgrad=true)"])
def test_every_optimizer_runs_unchanged_on_device_arrays(optimizer):
    src = MLP.replace("h = dropout(tanh(x @ W1 + b1), 0.25)", "h = tanh(x @ W1 + b1)") + textwrap.dedent(f"""
        data d = random_classification(64, features=3, classes=2, seed=1) |> onehot(y, 2) |> cast(x, f32) |> cast(y, f32)
        train {{
          data = d
          minimize = loss
          optimizer = {optimizer}
          epochs = 2
          batch = 16
          clip_norm = 1.0
        }}
        """)
    cpu, dev = _pair(src)
    cpu.compile = False
    h_cpu, h_dev = cpu.train(), dev.train()
    assert h_dev[-1]["loss"] == pytest.approx(h_cpu[-1]["loss"], rel=1e-4)
    for n, v in cpu.params.items():
        np.testing.assert_allclose(dev.params[n], v, rtol=1e-4, atol=1e-5)


def test_checkpoints_and_params_files_are_copied_back(tmp_path):
    dev = wengert.load(MODELS / "moons.dl", device="opencl")
    trainer = Trainer(dev, None, {"epochs": 1, "steps": 3}, out_dir=tmp_path)
    trainer.run()
    with np.load(tmp_path / "params.npz") as saved:
        for n, v in dev.params.items():
            np.testing.assert_array_equal(saved[n], v)
    resumed = wengert.load(MODELS / "moons.dl", device="opencl")
    again = Trainer(resumed, None, {"epochs": 1, "steps": 3}, out_dir=tmp_path)
    again._restore(trainer.checkpoint_path())
    assert all(isinstance(v, DeviceArray) for v in resumed._store.values())
    for n, v in dev.params.items():
        np.testing.assert_array_equal(resumed.params[n], v)


def test_a_primitive_without_a_kernel_is_a_compile_time_error(monkeypatch):
    monkeypatch.delitem(backend_module.KERNELS, "tanh")
    with pytest.raises(DiagnosticError, match="no OpenCL kernel for tanh"):
        wengert.compile(MLP, device="opencl")


def test_f64_without_cl_khr_fp64_is_an_error_never_a_downcast(monkeypatch):
    be = backend_module.get_backend("opencl")
    monkeypatch.setattr(be, "fp64", False)
    with pytest.raises(DiagnosticError, match="uses f64.*cl_khr_fp64"):
        wengert.compile("input x: f64[3]\nz = sum(x * x)\n", device="opencl")
    with pytest.raises(TypeError, match="no f64 support"):
        be.upload(np.zeros(3))
    prog = wengert.compile("input x: f32[3]\nz = sum(x * x)\n", device="opencl")  # f32 is fine
    assert float(prog.run("z", x=np.array([1, 2, 3], np.float32))) == 14.0


@pytest.mark.parametrize("spec,message", [("opencl:9:0", "no OpenCL device 9:0"), ("opencl:x", "is not a device"),
                                          ("tpu", "unknown device `tpu`")])
def test_unknown_devices_are_diagnostics(spec, message):
    with pytest.raises(DiagnosticError, match=message):
        wengert.compile(MLP, device=spec)


@pytest.mark.parametrize("bad", [7, -8])
def test_gather_with_an_out_of_range_id_is_reported_like_the_cpu(bad):
    """Ids fed as an input live on the device: they are checked there, not read as 0."""
    src = "input ids: i64[n]\nparam E: f32[5, 2] = normal(mean=0, std=1)\nrows = E[ids]\n"
    cpu, dev = wengert.compile(src), wengert.compile(src, device="opencl")
    ids = np.array([1, bad, 0])
    messages = []
    for prog in (cpu, dev):
        with pytest.raises(DiagnosticError) as info:
            prog.run("rows", ids=ids)
        messages.append(info.value.diagnostics[0].message)
    assert messages[0] == messages[1] == f"index {bad} is out of range for axis 0 of size 5"
    np.testing.assert_array_equal(dev.run("rows", ids=np.array([4, -5])), cpu.run("rows", ids=np.array([4, -5])))
