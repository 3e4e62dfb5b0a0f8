"""Every primitive and every §8 built-in on OpenCL against the CPU backend: values, reverse
(VJP) and forward (JVP) derivatives, on the programs of tests/test_gradients.py (which cover the
broadcasting shape groups), in f32 and, where the device has cl_khr_fp64 (PoCL does), f64.

Both tables run each primitive's own kernel (fusion off); `FUSED` runs fused in f32, as training
does, and so do the hand-derived HVPs (the second-order table runs unfused).
Tolerances (docs/opencl.md): |opencl - cpu| <= TOL * (1 + |cpu|) elementwise, with TOL
f64 1e-9 and f32 2e-4 — the device's math functions are within a few ulp of NumPy's, and
reductions and products add in another order.
"""
from __future__ import annotations

import numpy as np
import pytest

import wengert
from wengert.opencl import backend as backend_module
from wengert.opencl.backend import KERNELS
from wengert.runtime import primitives
from .opencl_cases import load

G = load()
TOL = {"f64": 1e-9, "f32": 2e-4}
# Programs whose derivative at these inputs sits next to a kink in f32 rounding are compared
# in f64 only (none at present).
F32_SKIP: set[str] = set()
# The cases also run fused (f32), besides the unfused tables: each fused chain is a kernel of its own.
FUSED = ("sigmoid", "elu_alpha", "div-[3,4]x[3,1]", "where-[3,1]x[1,4]", "logsumexp-axes02",
         "transpose_perm", "slice_step", "pad", "gather_repeated", "softmax_crossentropy_mean", "conv_pool_pipeline",
         "bce_with_logits", "for_rnn")


def _close(got, want, dtype: str, what: str) -> None:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    err = np.abs(got - want)
    bound = TOL[dtype] * (1 + np.abs(want))
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.ndim else ()
    assert np.all(err <= bound) and np.all(np.isfinite(got) == np.isfinite(want)), (
        f"{what}: opencl {got[worst]!r} vs cpu {want[worst]!r} at {worst} (error {err[worst]:.3g}, "
        f"tolerance {TOL[dtype]:g})")


def _device_dtype(backend, dtype: str) -> None:
    if dtype == "f64" and not backend.fp64:
        pytest.skip("the device has no cl_khr_fp64")


def _compare(case, dtype: str) -> None:
    cpu, inputs, wrt = case.build(dtype)
    dev = wengert.compile(case.source(dtype), device="opencl")
    _close(dev.run("z", **inputs), cpu.run("z", **inputs), dtype, f"{case.id}: value")
    g_cpu = cpu.grad("z", wrt=wrt, **inputs)
    g_dev = dev.grad("z", wrt=wrt, **inputs)
    for n in wrt:
        assert g_dev[n].dtype == g_cpu[n].dtype
        _close(g_dev[n], g_cpu[n], dtype, f"{case.id}: reverse d/d{n}")
    rng = np.random.default_rng(1)
    direction = {n: rng.standard_normal(np.shape(inputs[n])).astype(np.asarray(inputs[n]).dtype) for n in wrt}
    v_cpu, t_cpu = cpu.jvp("z", direction, **inputs)
    v_dev, t_dev = dev.jvp("z", direction, **inputs)
    _close(v_dev, v_cpu, dtype, f"{case.id}: value in forward mode")
    _close(t_dev, t_cpu, dtype, f"{case.id}: forward (JVP)")


@pytest.fixture
def unfused(monkeypatch):
    monkeypatch.setattr(backend_module, "FUSE", False)


@pytest.mark.parametrize("case", [c.param() for c in G.ALL])
def test_parity_f64(case, backend, unfused):
    """Each primitive's own kernel against NumPy in double precision."""
    _device_dtype(backend, "f64")
    _compare(case, "f64")


@pytest.mark.parametrize("case", [c.param() for c in G.ALL if c.id not in F32_SKIP])
def test_parity_f32(case, backend, unfused):
    """Unfused too: one kernel per (primitive, dtypes, rank), reused across cases, so a cold run
    on PoCL compiles a few hundred kernels, not one per fused chain of every case."""
    _compare(case, "f32")


@pytest.mark.parametrize("case", [G.BY_ID[i].param() for i in FUSED if i in G.BY_ID])
def test_parity_fused(case, backend):
    """Fused execution (as training runs) on chains of every kind: elementwise with broadcasting
    and host scalars, strided views feeding chains, reductions, products, convolution, pooling,
    losses, gathers and control flow."""
    assert backend_module.FUSE
    _compare(case, "f32")


@pytest.mark.parametrize("name", sorted(G.HESSIANS))
def test_hvp_parity(name, backend):
    src, inputs, wrt, vector, want = G.HESSIANS[name]()
    got = wengert.compile(src, device="opencl").hvp("z", wrt=wrt, vector=vector, **inputs)
    for n in wrt:
        _close(got[n], want[n], "f64", f"{name}: hvp d/d{n}")


@pytest.mark.parametrize("case", [G.BY_ID[i].param() for i in G.SECOND_ORDER if i in G.BY_ID])
def test_hvp_parity_on_builtins(case, backend, unfused):
    cpu, inputs, wrt = case.build("f64")
    dev = wengert.compile(case.source("f64"), device="opencl")
    rng = np.random.default_rng(2)
    vector = {n: rng.standard_normal(np.shape(inputs[n])) for n in wrt}
    h_cpu = cpu.hvp("z", wrt=wrt, vector=vector, **inputs)
    h_dev = dev.hvp("z", wrt=wrt, vector=vector, **inputs)
    for n in wrt:
        _close(h_dev[n], h_cpu[n], "f64", f"{case.id}: hvp d/d{n}")


def test_every_primitive_has_an_opencl_kernel():
    assert sorted(set(primitives.REGISTRY) - set(KERNELS)) == []
