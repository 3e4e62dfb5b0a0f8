"""`grad` in the language on an OpenCL device (issue 16): gradients are ordinary equations, so
they run on the device with the kernels every program uses, and equal the CPU's."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import wengert
from wengert.train import data as data_module

CH04 = Path(__file__).resolve().parents[2] / "models" / "ch04"

POLY = """
input t: f64
f = sin(t) * t ** 3
d2 = grad(grad(f, t), t)
"""


def test_grad_of_grad_on_the_device_is_the_hand_derived_second_derivative():
    prog = wengert.compile(POLY, device="opencl")
    t = 0.7
    expected = -np.sin(t) * t ** 3 + 6 * t ** 2 * np.cos(t) + 6 * t * np.sin(t)
    assert float(prog.run("d2", t=t)) == pytest.approx(expected, abs=1e-12)
    # reverse mode over the in-language gradient, on the device
    third = -np.cos(t) * t ** 3 - 9 * t ** 2 * np.sin(t) + 18 * t * np.cos(t) + 6 * np.sin(t)
    assert float(prog.grad("d2", wrt=["t"], t=t)["t"]) == pytest.approx(third, abs=1e-10)


def test_listing_4_10_with_grad_and_update_on_the_device_equals_the_cpu():
    cpu = wengert.load(CH04 / "listing_4_10_grad.dl")
    dev = wengert.load(CH04 / "listing_4_10_grad.dl", device="opencl")
    dataset = data_module.load(cpu.module.data["D"])["D"]
    inputs = {k: v for k, v in dataset.rows(slice(0, 200)).items() if k in cpu.module.inputs}
    for _ in range(3):
        cpu.apply_updates(inputs)
        dev.apply_updates(inputs)
    for n in ("w", "b"):
        np.testing.assert_allclose(np.asarray(dev.params[n]), cpu.params[n], rtol=1e-10, atol=1e-12)


RNN = """
seed 0
input xs: f64[batch, 5, 3]
input y: f64[batch, 4]
h = SimpleRNN(xs, 4)
loss = mean((h - y) ** 2)
gU = grad(loss, h.U)
gx = grad(loss, xs)
"""


def test_grad_through_a_recurrent_layer_on_the_device_equals_the_cpu():
    cpu, dev = wengert.compile(RNN), wengert.compile(RNN, device="opencl")
    rng = np.random.default_rng(0)
    inputs = {"xs": rng.standard_normal((2, 5, 3)), "y": rng.standard_normal((2, 4))}
    got, want = dev.run(["gU", "gx"], **inputs), cpu.run(["gU", "gx"], **inputs)
    for n in ("gU", "gx"):
        np.testing.assert_allclose(np.asarray(got[n]), want[n], rtol=1e-10, atol=1e-14)
