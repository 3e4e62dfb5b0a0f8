"""The low-level OpenCL kernels (wengert/opencl/{gemm,reduce,philox,im2col}.py, and the backend's
generated elementwise kernels of strided.py/lazy.py through `ops.bind`) against
NumPy on odd sizes (never multiples of the tiles), in f32 and f64.

Tolerances: f32 rtol 1e-4 / atol 1e-4 for products and sums of up to a few hundred terms
(different summation orders); f64 rtol 1e-10; transcendental functions rtol 1e-5 (f32) /
1e-12 (f64); exact equality for integer results, comparisons, max/min, argmax, im2col and
the Philox words.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

cl = pytest.importorskip("pyopencl")
cla = pytest.importorskip("pyopencl.array")

from wengert.opencl import backend as backend_module
from wengert.opencl import gemm, im2col, philox, programs
from wengert.opencl import reduce as red
from wengert.runtime import ops
from wengert.runtime.primitives import neural

TOL = {np.float32: {"rtol": 1e-4, "atol": 1e-4}, np.float64: {"rtol": 1e-10, "atol": 1e-10}}


@pytest.fixture(scope="module")
def queue(backend):
    """The session backend's queue: its context's in-process program cache is shared with every
    other OpenCL test (a context of our own would rebuild each kernel)."""
    return backend.queue


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request, queue):
    if request.param == np.float64 and "cl_khr_fp64" not in queue.device.extensions:
        pytest.skip("device has no fp64")
    return request.param


def dev(queue, x):
    return cla.to_device(queue, np.ascontiguousarray(x))


# ---------------------------------------------------------------- programs
def test_build_error_carries_the_log(queue):
    with pytest.raises(programs.KernelBuildError, match="nope"):  # the log names the culprit
        programs.build(queue.context, "__kernel void broken(__global float *x) { x[0] = nope; }\n")


def test_programs_are_cached(queue):
    a = programs.build(queue.context, "gemm", ("-DT=float",))
    assert programs.build(queue.context, "gemm", ("-DT=float",)) is a
    assert programs.build(queue.context, "gemm", ("-DT=float", "-DTRANS_A=1")) is not a


# ---------------------------------------------------------------- gemm
SIZES = [(1, 1, 1), (37, 53, 29), (130, 7, 65), (65, 129, 200)]


@pytest.mark.parametrize("m,k,n", SIZES)
@pytest.mark.parametrize("trans_a,trans_b", list(itertools.product([False, True], repeat=2)))
def test_matmul(queue, dtype, m, k, n, trans_a, trans_b):
    rng = np.random.default_rng(m * 1000 + n)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    got = gemm.matmul(queue, dev(queue, a), dev(queue, b), trans_a=trans_a, trans_b=trans_b).get()
    want = (a.T if trans_a else a) @ (b.T if trans_b else b)
    np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("tiling", gemm.TILINGS, ids=["large", "block64", "medium", "small", "tiny"])
def test_matmul_every_tiling(queue, tiling):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((70, 33)).astype(np.float32), rng.standard_normal((33, 131)).astype(np.float32)
    got = gemm.matmul(queue, dev(queue, a), dev(queue, b), tiling=tiling).get()
    np.testing.assert_allclose(got, a @ b, **TOL[np.float32])


@pytest.mark.parametrize("trans_a", [False, True])
def test_split_k(queue, dtype, trans_a):
    """A long K cut into pieces whose partial products are summed (a filter gradient's shape)."""
    rng = np.random.default_rng(16)
    a = rng.standard_normal((1201, 27) if trans_a else (27, 1201)).astype(dtype)
    b = rng.standard_normal((1201, 10)).astype(dtype)
    got = gemm.matmul(queue, dev(queue, a), dev(queue, b), trans_a=trans_a, splits=5).get()
    np.testing.assert_allclose(got, (a.T if trans_a else a) @ b, **TOL[dtype])
    a3 = rng.standard_normal((2, 7, 999)).astype(dtype)
    got3 = gemm.batched_matmul(queue, dev(queue, a3), dev(queue, b[:999]), splits=3).get()
    np.testing.assert_allclose(got3, a3 @ b[:999], **TOL[dtype])


def test_batched_matmul_and_broadcast_operand(queue, dtype):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 17, 9)).astype(dtype)
    b = rng.standard_normal((3, 9, 21)).astype(dtype)
    w = rng.standard_normal((21, 9)).astype(dtype)
    np.testing.assert_allclose(gemm.batched_matmul(queue, dev(queue, a), dev(queue, b)).get(), a @ b, **TOL[dtype])
    got = gemm.batched_matmul(queue, dev(queue, a), dev(queue, w), trans_b=True).get()
    np.testing.assert_allclose(got, a @ w.T, **TOL[dtype])


def test_matmul_into_out_and_empty_k(queue):
    a = cla.zeros(queue, (4, 0), np.float32)
    b = cla.zeros(queue, (0, 3), np.float32)
    out = cla.empty(queue, (4, 3), np.float32)
    assert gemm.matmul(queue, a, b, out=out) is not None
    assert (out.get() == 0).all()
    with pytest.raises(ValueError, match="inner dimensions"):
        gemm.matmul(queue, cla.zeros(queue, (2, 3), np.float32), cla.zeros(queue, (2, 3), np.float32))


def test_naive_matmul(queue):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((33, 17)).astype(np.float32), rng.standard_normal((17, 45)).astype(np.float32)
    np.testing.assert_allclose(gemm.naive_matmul(queue, dev(queue, a), dev(queue, b)).get(), a @ b,
                               **TOL[np.float32])


# ---------------------------------------------------------------- reduce
@pytest.mark.parametrize("op,fn", [("sum", np.sum), ("max", np.max), ("min", np.min), ("prod", np.prod)])
def test_reduce_every_axis_set(backend, dtype, op, fn):
    rng = np.random.default_rng(4)
    x = rng.uniform(0.5, 1.5, (3, 5, 7, 2)).astype(dtype)
    d = backend.upload(x)
    for k in range(5):
        for axes in itertools.combinations(range(4), k):
            for keepdims in (False, True):  # the backend moves non-adjacent axes together first
                got = np.asarray(ops.bind(f"reduce_{op}", d, axes=axes, keepdims=keepdims))
                want = fn(x, axis=axes, keepdims=keepdims)
                assert got.shape == want.shape, (axes, keepdims)
                np.testing.assert_allclose(got, want, **TOL[dtype])


def test_reduce_long_axis_is_split_across_groups(queue, dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(300_007).astype(dtype)
    got = red.reduce(queue, dev(queue, x), "sum").get()
    want = x.astype(np.float64).sum()
    assert abs(got - want) <= (1e-6 if dtype == np.float64 else 1e-3) * np.abs(x).sum()
    x2 = rng.standard_normal((3, 20_011)).astype(dtype)
    np.testing.assert_array_equal(red.reduce(queue, dev(queue, x2), "max", (1,)).get(), x2.max(axis=1))


def test_reduce_nan_and_integers(queue, backend):
    x = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, -1.0]], np.float32)
    got = red.reduce(queue, dev(queue, x), "max", (1,)).get()
    assert np.isnan(got[0]) and got[1] == 5.0
    xi = np.random.default_rng(6).integers(-50, 50, (4, 9, 3))
    for op, fn in [("sum", np.sum), ("max", np.max), ("min", np.min)]:
        np.testing.assert_array_equal(red.reduce(queue, dev(queue, xi), op, (0, 1)).get(), fn(xi, axis=(0, 1)))
        got = ops.bind(f"reduce_{op}", backend.upload(xi), axes=(0, 2))
        np.testing.assert_array_equal(np.asarray(got), fn(xi, axis=(0, 2)))
    with pytest.raises(ValueError, match="not adjacent"):
        red.reduce(queue, dev(queue, xi), "sum", (0, 2))


@pytest.mark.parametrize("op,fn", [("argmax", np.argmax), ("argmin", np.argmin)])
def test_arg_reduce_first_index_on_ties(queue, dtype, op, fn):
    rng = np.random.default_rng(7)
    x = rng.integers(0, 3, (4, 9, 5)).astype(dtype)  # many ties
    for axis in range(3):
        got = red.arg_reduce(queue, dev(queue, x), op, axis).get()
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, fn(x, axis=axis))
    y = np.array([[1.0, np.nan, 7.0, np.nan]], dtype)
    assert red.arg_reduce(queue, dev(queue, y), op, 1).get()[0] == 1


# ---------------------------------------------------------------- philox
# Random123's kat_vectors for philox4x32_10: (counter, key) -> output.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,want", KAT)
def test_philox_reference_known_answers(ctr, key, want):
    np.testing.assert_array_equal(philox.philox4x32_10_reference(ctr, key)[0], np.array(want, np.uint32))


@pytest.mark.parametrize("ctr,key,want", KAT)
def test_philox_device_known_answers(queue, ctr, key, want):
    # the device's 128-bit counter is (block lo, block hi, counter lo, counter hi)
    block, counter = ctr[0] | ctr[1] << 32, ctr[2] | ctr[3] << 32
    words = philox.bits(queue, 4, key[0] | key[1] << 32, counter, first_block=block).get()
    np.testing.assert_array_equal(words, np.array(want, np.uint32))


def test_philox_device_matches_reference_over_many_blocks(queue):
    key, counter, n = 0x0123456789ABCDEF, 0xDEADBEEF12345678, 4 * 257 + 3
    got = philox.bits(queue, n, key, counter).get()
    blocks = np.arange(-(-n // 4), dtype=np.uint64)
    ctrs = np.stack([blocks & 0xFFFFFFFF, blocks >> np.uint64(32), np.full_like(blocks, counter & 0xFFFFFFFF),
                     np.full_like(blocks, counter >> 32)], axis=1)
    keys = np.tile(np.array([key & 0xFFFFFFFF, key >> 32], np.uint64), (len(blocks), 1))
    np.testing.assert_array_equal(got, philox.philox4x32_10_reference(ctrs, keys).reshape(-1)[:n])


def test_uniform_is_exact_reproducible_and_uniform(queue, dtype):
    u = philox.uniform(queue, (101, 7), dtype, key=42, counter=3).get()
    assert u.dtype == dtype and u.shape == (101, 7)
    np.testing.assert_array_equal(u, philox.uniform(queue, (101, 7), dtype, key=42, counter=3).get())
    assert not np.array_equal(u, philox.uniform(queue, (101, 7), dtype, key=42, counter=4).get())
    assert u.min() >= 0 and u.max() < 1
    # f32: the top 24 bits of each word; f64: 27 + 26 bits of two words
    words = philox.bits(queue, 8, 42, 3).get().astype(np.uint64)
    if dtype == np.float32:
        want = (words[:4] >> np.uint64(8)).astype(np.float64) * 2.0 ** -24
    else:
        want = ((words[0::2] >> np.uint64(5)) * 2 ** 26 + (words[1::2] >> np.uint64(6))).astype(np.float64) * 2.0 ** -53
    np.testing.assert_array_equal(u.reshape(-1)[:4], want[:4].astype(dtype))
    big = philox.uniform(queue, 200_001, dtype, key=1, counter=0).get()
    assert abs(big.mean() - 0.5) < 0.005 and abs(big.var() - 1 / 12) < 0.002


def test_normal_moments_and_box_muller(queue, dtype):
    z = philox.normal(queue, 200_003, dtype, key=7, counter=1).get()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    u = philox.uniform(queue, 4, dtype, key=7, counter=1).get().astype(np.float64)
    want = np.sqrt(-2 * np.log(1 - u[0])) * np.array([np.cos(2 * np.pi * u[1]), np.sin(2 * np.pi * u[1])])
    np.testing.assert_allclose(z[:2], want, rtol=1e-5 if dtype == np.float32 else 1e-12)


# ---------------------------------------------------------------- elementwise (strided.py, lazy.py)
UNARY = {"neg": np.negative, "abs": np.abs, "sign": np.sign, "exp": np.exp, "log": np.log, "log1p": np.log1p,
         "expm1": np.expm1, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
         "logistic": lambda x: 1 / (1 + np.exp(-x)), "floor": np.floor, "ceil": np.ceil, "round": np.round}
BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide, "pow": np.power,
          "mod": np.mod, "maximum": np.maximum, "minimum": np.minimum}
COMPARE = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal, "eq": np.equal,
           "ne": np.not_equal}


def _ftol(dtype):
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-14}


@pytest.fixture
def unfused(monkeypatch):
    """Each primitive's own kernel (the ones the parity tables build too, so no extra compiles)."""
    monkeypatch.setattr(backend_module, "FUSE", False)


def test_unary(backend, dtype, unfused):
    for op in sorted(UNARY):
        x = (np.random.default_rng(8).uniform(0.1, 3.0, 37) * np.where(np.arange(37) % 2, 1, -1)).astype(dtype)
        x[0] = 2.5  # round half to even
        if op in ("log", "sqrt", "log1p"):
            x = np.abs(x)
        got = np.asarray(ops.bind(op, backend.upload(x)))
        assert got.dtype == dtype, op
        np.testing.assert_allclose(got, UNARY[op](x), **_ftol(dtype), err_msg=op)


def test_binary_broadcasting(backend, dtype, unfused):
    rng = np.random.default_rng(9)
    a = rng.uniform(0.5, 2.0, (3, 1, 5)).astype(dtype)
    b = rng.uniform(-2.0, 2.0, (4, 1)).astype(dtype)
    b[0, 0] = a[0, 0, 0]  # a tie for maximum/minimum/eq
    for op, fn in {**BINARY, **COMPARE}.items():
        got = np.asarray(ops.bind(op, backend.upload(a), backend.upload(b)))
        want = fn(a, b)
        assert got.shape == want.shape and got.dtype == want.dtype, op
        np.testing.assert_allclose(got, want, **_ftol(dtype), err_msg=op)


def test_integer_ops_follow_numpy(backend, unfused):
    rng = np.random.default_rng(10)
    a = rng.integers(-9, 9, 41).astype(np.int32)
    b = rng.integers(-4, 5, 41).astype(np.int32)
    fns = {"div": np.floor_divide, "mod": np.mod, "pow": np.power, "maximum": np.maximum,
           "minimum": np.minimum, "add": np.add, "sub": np.subtract, "mul": np.multiply}
    for op, fn in fns.items():
        bb = np.abs(b) if op == "pow" else b
        with np.errstate(all="ignore"):
            want = fn(a, bb)
        got = ops.bind(op, backend.upload(a), backend.upload(bb))
        np.testing.assert_array_equal(np.asarray(got), want, err_msg=op)


def test_nan_propagates_through_maximum(backend, unfused):
    a = np.array([np.nan, 1.0, 2.0], np.float32)
    b = np.array([0.0, np.nan, 1.0], np.float32)
    got = ops.bind("maximum", backend.upload(a), backend.upload(b))
    np.testing.assert_array_equal(np.asarray(got), np.maximum(a, b))


def test_fused_chain_with_scalars_and_views(backend, dtype):
    """relu(x * y + 0.5) ** 2 * lr, with lr a host scalar and x read through a transposed view:
    one deferred expression, computed by one generated kernel when copied back."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 5)).astype(dtype)
    y = rng.standard_normal(5).astype(dtype)
    xt = ops.bind("transpose", backend.upload(x.T.copy()), perm=(1, 0))
    pre = ops.bind("add", ops.bind("mul", xt, backend.upload(y)), np.asarray(0.5, dtype))
    relu = ops.bind("maximum", pre, np.asarray(0.0, dtype))
    chain = ops.bind("mul", ops.bind("mul", relu, relu), np.asarray(0.1, dtype))
    assert chain.lazy is not None  # still deferred: nothing ran yet
    got = np.asarray(chain)
    want = np.maximum(x * y + dtype(0.5), 0) ** 2 * dtype(0.1)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, **_ftol(dtype))


def test_where_cast_and_logic(backend, unfused):
    c = np.array([True, False, True, False])
    a = np.arange(4, dtype=np.float32)
    got = ops.bind("where", backend.upload(c), backend.upload(a), backend.upload(-a))
    np.testing.assert_array_equal(np.asarray(got), np.where(c, a, -a))
    np.testing.assert_array_equal(np.asarray(ops.bind("cast", backend.upload(a - 1.5), dtype="i32")),
                                  (a - 1.5).astype(np.int32))
    np.testing.assert_array_equal(np.asarray(ops.bind("cast", backend.upload(a), dtype="bool")), a != 0)
    got = ops.bind("and", backend.upload(c), backend.upload(~c[::-1].copy()))
    np.testing.assert_array_equal(np.asarray(got), c & ~c[::-1])


def test_unknown_op_is_named(backend):
    with pytest.raises(NotImplementedError, match="`frobnicate` has no OpenCL kernel"):
        backend.bound("frobnicate")


# ---------------------------------------------------------------- im2col / conv
CONV_CASES = [((2, 7, 9, 3), (3, 2, 3, 5), (1, 1), "valid"), ((2, 7, 9, 3), (3, 2, 3, 5), (2, 3), "same"),
              ((1, 5, 6, 2), (3, 3, 2, 4), (2, 2), "same"), ((3, 8, 5, 1), (2, 2, 1, 3), (2, 1), "valid")]


@pytest.mark.parametrize("x_shape,w_shape,stride,padding", CONV_CASES)
def test_im2col_matches_cpu(queue, dtype, x_shape, w_shape, stride, padding):
    rng = np.random.default_rng(13)
    x = rng.standard_normal(x_shape).astype(dtype)
    kh, kw = w_shape[:2]
    cols, geo = im2col.im2col(queue, dev(queue, x), kh, kw, stride, padding)
    want, want_geo = neural._im2col(x, kh, kw, stride, padding)
    assert geo == want_geo
    np.testing.assert_array_equal(cols.get(), want)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding", CONV_CASES)
def test_conv2d_and_its_gradients_match_cpu(backend, dtype, x_shape, w_shape, stride, padding):
    """The backend's convolution (neural.py: im2col.py + GEMM) and both gradients."""
    rng = np.random.default_rng(14)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    up = backend.upload
    y = np.asarray(ops.bind("conv2d", up(x), up(w), stride=stride, padding=padding))
    want = neural._conv2d(x, w, stride=stride, padding=padding)
    np.testing.assert_allclose(y, want, **TOL[dtype])
    g = rng.standard_normal(want.shape).astype(dtype)
    gx = np.asarray(ops.bind("conv2d_input_grad", up(g), up(w), x_shape=x.shape, stride=stride, padding=padding))
    np.testing.assert_allclose(gx, neural._input_grad(g, w, x_shape=x.shape, stride=stride, padding=padding),
                               **TOL[dtype])
    gw = np.asarray(ops.bind("conv2d_filter_grad", up(x), up(g), w_shape=w.shape, stride=stride, padding=padding))
    np.testing.assert_allclose(gw, neural._filter_grad(x, g, w_shape=w.shape, stride=stride, padding=padding),
                               **TOL[dtype])


def test_col2im_is_the_transpose_of_im2col(queue):
    """<im2col(x), d> == <x, col2im(d)> for random x, d: the adjoint identity, exactly what backprop needs."""
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 6, 7, 3))
    cols, (b, oh, ow) = im2col.im2col(queue, dev(queue, x), 3, 2, (2, 2), "same")
    d = rng.standard_normal(cols.shape)
    back = im2col.col2im(queue, dev(queue, d.reshape(b, oh, ow, 3, 2, 3)), (6, 7), 3, 2, (2, 2), "same").get()
    assert np.isclose((cols.get() * d).sum(), (x * back).sum(), rtol=1e-12)


def test_views_with_offsets_and_strides(backend):
    """Sliced and transposed device arrays go through the elementwise kernels and reductions
    without a host copy."""
    rng = np.random.default_rng(17)
    x = rng.standard_normal((7, 5)).astype(np.float32)
    d = backend.upload(x)
    tail = ops.bind("slice", d, starts=(2, 0), stops=(7, 5), steps=(1, 1))
    np.testing.assert_allclose(np.asarray(ops.bind("exp", tail)), np.exp(x[2:]), rtol=1e-6)
    xt = ops.bind("transpose", d, perm=(1, 0))
    np.testing.assert_allclose(np.asarray(ops.bind("reduce_sum", xt, axes=(1,))), x.T.sum(axis=1), rtol=1e-5)
    got = ops.bind("reduce_max", ops.bind("slice", d, starts=(3, 0), stops=(7, 5), steps=(1, 1)), axes=(0,),
                   keepdims=True)
    np.testing.assert_allclose(np.asarray(got), x[3:].max(axis=0, keepdims=True))
