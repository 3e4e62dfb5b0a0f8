"""Linear algebra on an OpenCL device (issue 16): an explicit, counted host round trip that
`wengert trace --device opencl` shows, with the CPU's values and derivatives."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

import wengert
from wengert.cli import main
from wengert.opencl.array import TRANSFERS

CH02 = Path(__file__).resolve().parents[2] / "models" / "ch02"

PROGRAM = """
input A: f64[3, 3]
input b: f64[3]
x = solve(A, b)
loss = sum(x ** 2) + det(A) + sum(inv(A)) + sum(cholesky(A)) + sum(triangular_solve(A, b))
g = grad(loss, A)
"""
A = [[3.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 3.0]]


def test_linalg_on_the_device_is_a_counted_host_round_trip_with_the_cpus_results():
    cpu, dev = wengert.compile(PROGRAM), wengert.compile(PROGRAM, device="opencl")
    inputs = {"A": np.array(A), "b": np.array([1.0, 2.0, 3.0])}
    before = TRANSFERS["host_round_trips"]
    got = dev.run(["loss", "g"], **inputs)
    assert TRANSFERS["host_round_trips"] > before
    want = cpu.run(["loss", "g"], **inputs)
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-12)
    np.testing.assert_allclose(got["g"], want["g"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dev.grad("loss", wrt=["b"], **inputs)["b"], cpu.grad("loss", wrt=["b"], **inputs)["b"],
                               rtol=1e-10)


def test_trace_on_the_device_marks_the_host_round_trips(tmp_path):
    path = tmp_path / "p.dl"
    path.write_text(PROGRAM)
    result = CliRunner().invoke(main, ["trace", str(path), "--of", "x", "-i", f"A={A}", "-i", "b=[1,2,3]",
                                       "--device", "opencl"])
    assert result.exit_code == 0, result.output
    assert "solve (host round trip) x" in result.stdout
    cpu = CliRunner().invoke(main, ["trace", str(path), "--of", "x", "-i", f"A={A}", "-i", "b=[1,2,3]"])
    assert "host round trip" not in cpu.stdout


def test_listing_2_2_on_the_device_solves_the_ridge_systems_of_its_own_draw():
    """The device draws its own random data (Philox), so the check is against numpy on that data."""
    dev = wengert.load(CH02 / "listing_2_02.dl", device="opencl")
    out = dev.run(["x_train", "y_train", "lambdas", "W", "train_error"])
    features = out["x_train"][:, None] ** np.arange(9)
    for k in (0, 99):
        ridge = np.linalg.solve(features.T @ features + out["lambdas"][k] * np.eye(9), features.T @ out["y_train"])
        np.testing.assert_allclose(out["W"][k, :, 0], ridge, rtol=1e-6)
    assert np.all(np.diff(out["train_error"]) >= -1e-9)
