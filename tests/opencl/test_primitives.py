"""Primitives the programs of test_parity.py do not reach, or reach only in one dtype, bound
directly on device arrays against their NumPy kernels: integer arithmetic, comparisons and
logic, argmax, fill/iota, casts; random draws (reproducible by seed, right moments); and the
NumPy protocols (`__array_ufunc__`, `__array_function__`, `a[...] = v`) the optimizers use."""
from __future__ import annotations

import numpy as np
import pytest

from wengert.opencl.array import DeviceArray
from wengert.runtime import primitives
from wengert.runtime.executor import Context
from wengert.runtime.ops import bind

RNG = np.random.default_rng(0)
I = RNG.integers(-9, 10, (3, 4)).astype(np.int64)
J = RNG.integers(-5, 6, (3, 4)).astype(np.int64)
J[J == 0] = 3
J[0, 0] = 0  # integer division and mod by 0 give 0, as in NumPy
X = RNG.standard_normal((3, 4)).astype(np.float32)
Y = RNG.standard_normal((1, 4)).astype(np.float32)


def _host(v):
    return v.get() if isinstance(v, DeviceArray) else np.asarray(v)


CASES = [  # (primitive, operands, params)
    *[(p, (I, J), {}) for p in ("add", "sub", "mul", "div", "mod", "maximum", "minimum", "lt", "le", "gt",
                                 "ge", "eq", "ne")],
    ("pow", (I, np.abs(J) % 4), {}),
    *[(p, (X, Y), {}) for p in ("lt", "le", "gt", "ge", "eq", "ne", "mod", "maximum", "minimum")],
    *[(p, (I,), {}) for p in ("neg", "abs", "sign")],
    *[(p, (X,), {}) for p in ("sign", "floor", "ceil", "round", "abs", "logistic")],
    ("and", (X > 0, Y > 0), {}), ("or", (X > 0, Y > 0), {}), ("not", (X > 0,), {}),
    ("where", (X > 0, I, J), {}),
    ("argmax", (X,), {"axes": (1,)}), ("argmax", (X,), {"axes": (0,), "keepdims": True}),
    ("reduce_sum", (I,), {"axes": (0, 1)}), ("reduce_max", (I,), {"axes": (1,)}), ("reduce_min", (I,), {"axes": (0,)}),
    ("reduce_prod", (J,), {"axes": (1,), "keepdims": True}),
    ("prod_of_others", (X,), {"axes": (1,)}),
    ("cast", (X,), {"dtype": "i64"}), ("cast", (X,), {"dtype": "bool"}), ("cast", (I,), {"dtype": "f32"}),
    ("cast", (X > 0,), {"dtype": "f32"}),
    ("gather", (X, np.array([[2, 0], [1, -1]])), {"axis": 0}),
    ("scatter", (X[:2], np.array([2, 2])), {"shape": (3, 4), "axis": 0, "scalar": False}),
    ("index", (X, np.asarray(-2)), {"axis": 1}),
    ("slice", (X,), {"starts": (2, 3), "stops": (-1, -1), "steps": (-1, -2)}),
]


@pytest.mark.parametrize("prim,operands,params", CASES, ids=[f"{c[0]}-{k}" for k, c in enumerate(CASES)])
def test_kernel_against_numpy(backend, prim, operands, params):
    with np.errstate(all="ignore"):
        want = primitives.REGISTRY[prim].impl(*operands, **params)
    got = bind(prim, *(backend.upload(o) for o in operands), **params)
    assert isinstance(got, DeviceArray)
    got = got.get()
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("prim,params", [
    ("fill", {"shape": (2, 3), "value": 1.5, "dtype": "f32"}),
    ("iota", {"shape": (3, 4), "axis": 1, "dtype": "i64"}),
    ("iota", {"shape": (2, 5), "axis": 0, "dtype": "f32"}),
])
def test_operandless_kernels(backend, prim, params):
    got = backend.run(prim, (), params)
    want = primitives.REGISTRY[prim].impl(**params)
    assert got.get().dtype == want.dtype
    np.testing.assert_array_equal(got.get(), want)


def _draw(backend, prim, seed, *operands, shape=(200, 500), dtype="f32"):
    ctx = Context(np.random.default_rng(seed))
    return _host(backend.run(prim, operands, {"shape": shape, "dtype": dtype}, ctx))


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_random_draws_are_reproducible_and_have_the_right_moments(backend, dtype):
    if dtype == "f64" and not backend.fp64:
        pytest.skip("no cl_khr_fp64")
    n = _draw(backend, "random_normal", 7, np.asarray(1.0), np.asarray(2.0), dtype=dtype)
    assert n.dtype == np.dtype({"f32": np.float32, "f64": np.float64}[dtype])
    np.testing.assert_array_equal(n, _draw(backend, "random_normal", 7, np.asarray(1.0), np.asarray(2.0), dtype=dtype))
    assert not np.array_equal(n, _draw(backend, "random_normal", 8, np.asarray(1.0), np.asarray(2.0), dtype=dtype))
    assert abs(n.mean() - 1.0) < 0.02 and abs(n.std() - 2.0) < 0.02  # 1e5 draws: standard error 0.006
    u = _draw(backend, "random_uniform", 7, np.asarray(-1.0), np.asarray(3.0), dtype=dtype)
    assert u.min() >= -1.0 and u.max() < 3.0 and abs(u.mean() - 1.0) < 0.02
    assert abs(np.var(u) - 16 / 12) < 0.03
    b = _draw(backend, "random_bernoulli", 7, np.asarray(0.3), dtype=dtype)
    assert set(np.unique(b)) == {0.0, 1.0} and abs(b.mean() - 0.3) < 0.01


def test_random_parameters_broadcast_from_device_arrays(backend):
    mean = backend.upload(np.array([[0.0], [10.0]], np.float32))
    n = _draw(backend, "random_normal", 3, mean, np.asarray(0.5, np.float32), shape=(2, 10000))
    np.testing.assert_allclose(n.mean(axis=1), [0.0, 10.0], atol=0.05)


def test_numpy_protocols_run_on_the_device(backend):
    a = backend.upload(X)
    before = a.buffer
    a[...] = np.sqrt(np.abs(a)) * 2 - 1  # __array_ufunc__, operators, in-place assignment
    assert a.buffer is before
    np.testing.assert_allclose(a.get(), np.sqrt(np.abs(X)) * 2 - 1, rtol=1e-6)
    m = backend.upload(X)
    np.maximum(m, 0.5, out=m)
    np.testing.assert_allclose(m.get(), np.maximum(X, 0.5))
    z = np.zeros_like(m)
    assert isinstance(z, DeviceArray) and z.dtype == np.float32 and not z.get().any()
    w = np.where(m > 0.7, np.full_like(m, 2.0), m)
    np.testing.assert_allclose(w.get(), np.where(np.maximum(X, 0.5) > 0.7, 2.0, np.maximum(X, 0.5)))
    np.testing.assert_allclose(np.clip(backend.upload(X), -0.5, 0.5).get(), np.clip(X, -0.5, 0.5))
    s = backend.upload(X)
    s[1, 1:3] = 7.0
    want = X.copy()
    want[1, 1:3] = 7.0
    np.testing.assert_array_equal(s.get(), want)
    with pytest.raises(TypeError, match="numpy.cumsum has no OpenCL implementation"):
        np.cumsum(s)
