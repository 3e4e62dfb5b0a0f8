"""bench/ (issue 9): every workload's frameworks train alike, its NumPy reference's gradients are
right, and `python -m bench` runs end to end and writes JSON.

Each framework runs two training steps from the program's initial params on the workload's
small data; the parameter changes must equal the hand-written NumPy reference's (for W7 the
gradient of a call). The references' gradients are also checked against central differences.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `bench` is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from bench.workloads import MODULES, available, w5_cnn, w6_lstm, w7_chain, workload
from bench.workloads.common import can_compile

SLOW = {"W5", "W6"}  # convolutions and 80 LSTM steps: a few seconds each
OTHERS = ["wengert", "wengert-interp", "torch", "jax", "autograd"]


def _changes(key: str, framework: str, steps: int = 2) -> dict[str, np.ndarray]:
    wl = workload(key)
    setup = wl.setup(True)
    if framework not in ("wengert", "wengert-interp", "numpy"):
        setup.options["dropout"] = False  # their random streams differ from wengert's; NumPy's matches
    runner = wl.runner(framework, setup)
    runner.prepare(steps)
    runner.run()
    after = runner.params()
    if key == "W7":
        return after  # the gradient of the last call
    return {k: np.asarray(after[k], dtype=np.float64) - setup.params[k] for k in setup.params}


def _reference(key: str, framework: str) -> dict[str, np.ndarray]:
    if key == "W5" and framework not in ("wengert", "wengert-interp"):
        wl = workload(key)
        setup = wl.setup(True)
        setup.options["dropout"] = False
        runner = wl.runner("numpy", setup)
        runner.prepare(2)
        runner.run()
        return {k: np.asarray(v, np.float64) - setup.params[k] for k, v in runner.params().items()}
    return _changes(key, "numpy")


def _cases():
    for key in MODULES:
        for fw in OTHERS:
            marks = [pytest.mark.slow] if key in SLOW else []
            yield pytest.param(key, fw, marks=marks, id=f"{key}-{fw}")


@pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning")  # W2's NaN loss, by design
@pytest.mark.parametrize("key,framework", list(_cases()))
def test_framework_trains_like_the_numpy_reference(key, framework):
    if not available(framework):
        pytest.skip(f"{framework} is not available")
    f32 = workload(key).dtype == "f32"
    ref = _reference(key, framework)
    got = _changes(key, framework)
    scale = max(float(np.abs(v).max()) for v in ref.values())
    assert scale > 0, "the reference's steps changed nothing"
    for k, want in ref.items():
        np.testing.assert_allclose(got[k], want, rtol=2e-3 if f32 else 1e-6, atol=(2e-4 if f32 else 1e-9) * scale,
                                   err_msg=f"{key} {framework}: {k}")


# ----------------------------------------------------------------------------- the references' gradients
def _numpy_loss_and_grads(key: str):
    """(loss_and_grads(params, batch), params, batch) of the NumPy reference, in f64, no dropout."""
    wl = workload(key)
    setup = wl.setup(True)
    params = {k: np.asarray(v, np.float64) for k, v in setup.params.items()}
    if key == "W7":
        def vg(p, b):
            value, grad = w7_chain.numpy_vg(p["v"])
            return value, {"v": grad}
        return vg, params, {}
    batch = {k: (v if v.dtype.kind in "iu" else np.asarray(v, np.float64))[:setup.batch]
             for k, v in setup.data.items()}
    if key == "W5":
        setup.options["dropout"] = False
        return w5_cnn.NumpyCNN(setup).loss_and_grads, params, batch
    module = __import__(f"bench.workloads.{MODULES[key]}", fromlist=["numpy_step"])
    return module.numpy_step, params, batch


@pytest.mark.parametrize("key", [pytest.param(k, marks=[pytest.mark.slow] if k in SLOW else []) for k in MODULES])
def test_numpy_reference_gradients_match_central_differences(key):
    step, params, batch = _numpy_loss_and_grads(key)
    loss, grads = step(params, batch)
    rng = np.random.default_rng(1)
    # W1's saturated log(1 - p) makes its loss itself noisy at small steps; elsewhere a large
    # step would cross relu kinks (W5)
    eps = 1e-4 if key == "W1" else 1e-6
    for name, g in grads.items():
        if not np.isfinite(loss):  # W2's loss is NaN by design (models/ch04/listing_4_12.dl)
            break
        flat = np.flatnonzero(g) if np.any(g) else np.arange(g.size)
        for index in rng.choice(flat, size=min(1 if key in SLOW else 3, flat.size), replace=False):
            idx = np.unravel_index(index, g.shape) if g.shape else ()
            plus, minus = dict(params), dict(params)
            plus[name] = np.array(params[name], dtype=np.float64)
            minus[name] = plus[name].copy()
            plus[name][idx] += eps
            minus[name][idx] -= eps
            numeric = (step(plus, batch)[0] - step(minus, batch)[0]) / (2 * eps)
            assert np.isclose(np.asarray(g)[idx], numeric, rtol=1e-4, atol=1e-7), (key, name, idx)


def test_w2_reference_gradient_is_finite_where_the_loss_is_nan():
    step, params, batch = _numpy_loss_and_grads("W2")
    loss, grads = step(params, batch)
    assert np.isnan(loss) and all(np.all(np.isfinite(g)) for g in grads.values())


def test_w7_program_is_generated_from_its_op_list():
    assert w7_chain.DL.read_text() == w7_chain.source()
    assert w7_chain.primitives(workload("W7").setup(True)) == len(w7_chain.OPS) + 1  # the ops and the sum


def test_w6_ids_cover_the_vocabulary():
    x = workload("W6").setup(False).data["x"]
    assert x.shape == (320, w6_lstm.TIME) and x.min() >= 0 and x.max() < w6_lstm.VOCAB and x.max() > 19000


# ----------------------------------------------------------------------------- the harness
@pytest.mark.slow
def test_python_m_bench_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    frameworks = "wengert,numpy" + (",wengert-interp" if can_compile() else "")
    proc = subprocess.run([sys.executable, "-m", "bench", "--only", "W4,W7", "--frameworks", frameworks,
                           "--steps-scale", "0.02", "--rounds", "2", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "W4" in proc.stdout and "vs numpy" in proc.stdout
    data = json.loads(out.read_text())
    assert data["meta"]["rounds"] == 2 and data["meta"]["versions"]["numpy"] == np.__version__
    results = {(r["workload"], r["framework"]): r for r in data["results"]}
    assert set(results) == {(w, f) for w in ("W4", "W7") for f in frameworks.split(",")}
    for (w, f), r in results.items():
        assert r["error"] is None, r
        assert len(r["seconds_per_step"]) == 2 and r["median_s"] > 0
        assert r["steps"] == max(1, round(workload(w).round_steps * 0.02))
        assert r["peak_mb"] is not None and r["peak_mb"] >= 0
    assert results[("W4", "numpy")]["vs_numpy"] == 1.0
    assert results[("W7", "wengert")]["primitives"] == 201
    assert results[("W7", "wengert")]["us_per_primitive"] == pytest.approx(
        results[("W7", "wengert")]["median_s"] / 201 * 1e6)


def test_unknown_workload_is_an_error():
    proc = subprocess.run([sys.executable, "-m", "bench", "--only", "W9"], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode != 0 and "unknown workload W9" in proc.stderr
