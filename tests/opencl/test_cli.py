"""The CLI on OpenCL: `wengert devices` (listing 10-1's fields), `--device opencl[:P:D]` on
run/grad/train/eval with the chosen device announced, and the errors without a platform or
without f64 support (exit status 2, a message, no traceback)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from wengert import cli
from wengert.opencl import backend as backend_module
from wengert.opencl import devices

MODELS = Path(__file__).resolve().parents[2] / "models"
MOONS = str(MODELS / "moons.dl")
INPUTS = ["-i", "x=[[0.5, 0.2], [-1.0, 0.3]]", "-i", "y=[[1, 0], [0, 1]]"]


def _run(*args):
    return CliRunner().invoke(cli.main, list(args))


def test_devices_lists_the_fields_of_listing_10_1():
    result = _run("devices")
    assert result.exit_code == 0, result.output
    info = devices.list_devices()[0]
    for text in (info.name, "type:", "max clock:", f"{info.max_clock_mhz} MHz", "compute units:", "local memory:",
                 "constant memory:", "global memory:", "fp64:", "--device opencl:0:0"):
        assert text in result.stdout


def test_devices_without_any_platform_says_how_to_get_one(monkeypatch):
    monkeypatch.setattr(devices, "platforms", lambda: [])
    result = _run("devices")
    assert result.exit_code == 2
    assert 'pip install "wengert[opencl]"' in result.stderr and "PoCL" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_program_on_opencl_without_a_platform_is_a_diagnostic(monkeypatch):
    monkeypatch.setattr(devices, "platforms", lambda: [])
    monkeypatch.setattr(backend_module, "_BACKENDS", {})
    result = _run("run", MOONS, "--eval", "loss", "--device", "opencl", *INPUTS)
    assert result.exit_code == 2
    assert "no OpenCL platform" in result.stderr and 'pip install "wengert[opencl]"' in result.stderr


@pytest.mark.parametrize("device", ["opencl", "opencl:0:0"])
def test_run_and_grad_on_opencl_match_the_cpu_and_announce_the_device(device):
    name = devices.list_devices()[0].name
    on_cpu = _run("run", MOONS, "--eval", "loss,prediction", "--json", *INPUTS)
    on_dev = _run("run", MOONS, "--eval", "loss,prediction", "--json", "--device", device, *INPUTS)
    assert on_dev.exit_code == 0, on_dev.output
    assert f"device: {name}" in on_dev.stderr and "opencl:0:0" in on_dev.stderr
    a, b = json.loads(on_cpu.stdout), json.loads(on_dev.stdout)
    assert b["prediction"] == a["prediction"]
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-12)
    g_cpu = json.loads(_run("grad", MOONS, "--of", "loss", "--wrt", "b2", "--json", *INPUTS).stdout)
    g_dev = json.loads(_run("grad", MOONS, "--of", "loss", "--wrt", "b2", "--json", "--device", device,
                            "--mode", "forward", *INPUTS).stdout)
    np.testing.assert_allclose(g_dev["b2"], g_cpu["b2"], rtol=1e-10)


def test_train_and_eval_on_opencl(tmp_path):
    result = _run("train", MOONS, "--device", "opencl", "--epochs", "1", "--batch", "500", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "device:" in result.stderr
    saved = tmp_path / "params.npz"
    assert saved.exists()
    on_dev = _run("eval", MOONS, "--params", str(saved), "--device", "opencl")
    on_cpu = _run("eval", MOONS, "--params", str(saved))
    assert on_dev.exit_code == 0, on_dev.output
    dev_acc = float(on_dev.stdout.split("accuracy ")[1].split()[0])
    assert dev_acc == pytest.approx(float(on_cpu.stdout.split("accuracy ")[1].split()[0]), abs=1e-6)
    assert dev_acc > 0.8


def test_f64_program_on_a_device_without_fp64_exits_with_a_message(monkeypatch):
    monkeypatch.setattr(backend_module.get_backend("opencl"), "fp64", False)
    result = _run("run", MOONS, "--eval", "loss", "--device", "opencl", *INPUTS)
    assert result.exit_code == 2
    assert "cl_khr_fp64" in result.stderr and "Traceback" not in result.stderr
