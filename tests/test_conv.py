"""conv2d and the pools against direct loop implementations (one window at a time), and their
derivatives (forward, reverse, and second order through Hessian-vector products, which run
the JVP rules of the transpose primitives) numerically, over strides, "same" padding with even
and odd sizes, rectangular kernels, several channels and batch > 1."""
from __future__ import annotations

import numpy as np
import pytest

import wengert
from wengert import check_grads


# ---------------------------------------------------------------- direct references
def ref_pads(size: int, k: int, stride: int, padding: str) -> tuple[int, int, int]:
    """(before, after, output size); "same": TF/Keras, the odd padding pixel after."""
    if padding == "valid":
        return 0, 0, (size - k) // stride + 1
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2, out


def ref_conv2d(x, w, stride, padding):
    n, h, wd, cin = x.shape
    kh, kw, _, cout = w.shape
    pt, pb, oh = ref_pads(h, kh, stride[0], padding)
    pl, pr, ow = ref_pads(wd, kw, stride[1], padding)
    xp = np.zeros((n, h + pt + pb, wd + pl + pr, cin))
    xp[:, pt:pt + h, pl:pl + wd] = x
    out = np.zeros((n, oh, ow, cout))
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                patch = xp[b, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw]
                for o in range(cout):
                    out[b, i, j, o] = np.sum(patch * w[..., o])
    return out


def ref_pool(x, size, stride, reduce):
    n, h, wd, c = x.shape
    oh, ow = (h - size[0]) // stride[0] + 1, (wd - size[1]) // stride[1] + 1
    out = np.zeros((n, oh, ow, c))
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    out[b, i, j, ch] = reduce(x[b, i * stride[0]:i * stride[0] + size[0],
                                                j * stride[1]:j * stride[1] + size[1], ch])
    return out


def decl(shape, dtype="f64"):
    return f"{dtype}[{', '.join(map(str, shape))}]"


def distinct(rng, shape):
    """Values 0.1 apart in shuffled order (no ties: maxpool is differentiable there)."""
    v = (np.arange(int(np.prod(shape))) - np.prod(shape) / 2) * 0.1 + 0.05
    return rng.permutation(v).reshape(shape)


# ---------------------------------------------------------------- conv2d
CONV = [  # (x shape, W shape, stride, padding)
    ((2, 6, 5, 3), (3, 3, 3, 4), (1, 1), "valid"),
    ((2, 6, 5, 3), (3, 3, 3, 4), (1, 1), "same"),
    ((2, 7, 7, 2), (3, 3, 2, 3), (2, 2), "same"),     # odd size, stride 2
    ((2, 8, 6, 2), (3, 3, 2, 3), (2, 2), "same"),     # even size, stride 2: the odd pixel bottom/right
    ((1, 8, 8, 2), (2, 2, 2, 2), (2, 2), "same"),     # even kernel
    ((2, 7, 6, 2), (2, 3, 2, 3), (2, 1), "same"),     # rectangular kernel, mixed strides
    ((2, 7, 6, 3), (3, 2, 3, 2), (1, 2), "valid"),
    ((1, 8, 7, 2), (2, 2, 2, 3), (3, 3), "valid"),    # stride > kernel: some pixels in no window
    ((3, 5, 5, 1), (5, 5, 1, 2), (1, 1), "valid"),    # kernel as large as the input
    ((2, 5, 4, 2), (1, 1, 2, 3), (1, 1), "same"),     # 1x1 kernel
]
CONV_IDS = [f"x{'x'.join(map(str, x))}-k{k[0]}x{k[1]}-s{s[0]}{s[1]}-{p}" for x, k, s, p in CONV]


def conv_program(xs, ws, stride, padding, dtype="f64"):
    return wengert.compile(f"input x: {decl(xs, dtype)}\ninput W: {decl(ws, dtype)}\n"
                           f"y = conv2d(x, W, stride=[{stride[0]}, {stride[1]}], padding=\"{padding}\")\n"
                           "z = sum(sin(y))\n")


@pytest.mark.parametrize("xs, ws, stride, padding", CONV, ids=CONV_IDS)
def test_conv2d_matches_direct_loops(xs, ws, stride, padding):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    got = conv_program(xs, ws, stride, padding).run("y", x=x, W=w)
    want = ref_conv2d(x, w, stride, padding)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("xs, ws, stride, padding", CONV, ids=CONV_IDS)
def test_conv2d_derivatives(xs, ws, stride, padding):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(xs), 0.5 * rng.standard_normal(ws)
    prog = conv_program(xs, ws, stride, padding)
    check_grads(prog, "z", wrt=["x", "W"], order=2, x=x, W=w)
    # forward mode seeds every direction at once (the direction axis folded into the batch
    # and channel axes): the same gradient as reverse mode
    fwd = prog.grad("z", wrt=["x", "W"], mode="forward", x=x, W=w)
    rev = prog.grad("z", wrt=["x", "W"], mode="reverse", x=x, W=w)
    for n in ("x", "W"):
        np.testing.assert_allclose(fwd[n], rev[n], rtol=1e-10, atol=1e-12)


def test_conv2d_f32_stays_f32():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 6, 6, 3)).astype(np.float32), rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    prog = conv_program(x.shape, w.shape, (2, 2), "same", dtype="f32")
    y = prog.run("y", x=x, W=w)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref_conv2d(x.astype(np.float64), w.astype(np.float64), (2, 2), "same"),
                               rtol=1e-4, atol=1e-5)
    g = prog.grad("z", wrt=["x", "W"], x=x, W=w)
    assert g["x"].dtype == np.float32 and g["W"].dtype == np.float32


# ---------------------------------------------------------------- pooling
POOL = [  # (x shape, size, stride)
    ((2, 4, 4, 3), (2, 2), (2, 2)),
    ((2, 5, 5, 2), (2, 2), (2, 2)),   # odd size: the last row/column is in no window
    ((1, 5, 6, 2), (2, 2), (1, 1)),   # overlapping windows
    ((2, 5, 7, 1), (2, 3), (2, 3)),   # rectangular
    ((1, 6, 7, 2), (3, 2), (2, 1)),   # rectangular, overlapping along one axis
    ((2, 7, 7, 2), (2, 2), (3, 3)),   # stride > size
]
POOL_IDS = [f"x{'x'.join(map(str, x))}-p{k[0]}x{k[1]}-s{s[0]}{s[1]}" for x, k, s in POOL]


def pool_program(op, xs, size, stride):
    return wengert.compile(f"input x: {decl(xs)}\n"
                           f"y = {op}(x, [{size[0]}, {size[1]}], stride=[{stride[0]}, {stride[1]}])\n"
                           "z = sum(sin(3 * y))\n")


@pytest.mark.parametrize("op, reduce", [("maxpool2d", np.max), ("avgpool2d", np.mean)])
@pytest.mark.parametrize("xs, size, stride", POOL, ids=POOL_IDS)
def test_pool_matches_direct_loops(op, reduce, xs, size, stride):
    x = distinct(np.random.default_rng(4), xs)
    got = pool_program(op, xs, size, stride).run("y", x=x)
    np.testing.assert_allclose(got, ref_pool(x, size, stride, reduce), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["maxpool2d", "avgpool2d"])
@pytest.mark.parametrize("xs, size, stride", POOL, ids=POOL_IDS)
def test_pool_derivatives(op, xs, size, stride):
    x = distinct(np.random.default_rng(5), xs)
    prog = pool_program(op, xs, size, stride)
    check_grads(prog, "z", wrt=["x"], order=2, x=x)
    fwd = prog.grad("z", wrt=["x"], mode="forward", x=x)["x"]
    rev = prog.grad("z", wrt=["x"], mode="reverse", x=x)["x"]
    np.testing.assert_allclose(fwd, rev, rtol=1e-10, atol=1e-12)


def test_maxpool_gradient_goes_to_the_max_of_each_window():
    x = distinct(np.random.default_rng(6), (2, 6, 6, 3))
    prog = wengert.compile(f"input x: {decl(x.shape)}\ninput g: {decl((2, 3, 3, 3))}\n"
                           "z = sum(maxpool2d(x, 2) * g)\n")
    g = np.random.default_rng(7).standard_normal((2, 3, 3, 3))
    got = prog.grad("z", wrt=["x"], x=x, g=g)["x"]
    want = np.zeros_like(x)
    for b, i, j, c in np.ndindex(g.shape):
        win = x[b, 2 * i:2 * i + 2, 2 * j:2 * j + 2, c]
        di, dj = np.unravel_index(np.argmax(win), win.shape)
        want[b, 2 * i + di, 2 * j + dj, c] = g[b, i, j, c]
    np.testing.assert_array_equal(got, want)


def test_cnn_pipeline_second_order():
    """conv -> relu -> conv -> maxpool -> avgpool: the HVP runs every transpose primitive's JVP."""
    rng = np.random.default_rng(8)
    prog = wengert.compile("input x: f64[2, 9, 9, 2]\ninput A: f64[3, 3, 2, 3]\ninput B: f64[2, 2, 3, 2]\n"
                           "h = conv2d(x, A, padding=\"same\", stride=2) |> tanh\n"
                           "z = sum(sin(avgpool2d(maxpool2d(conv2d(h, B), 2, stride=1), 2)))\n")
    check_grads(prog, "z", wrt=["x", "A", "B"], order=2, x=rng.standard_normal((2, 9, 9, 2)),
                A=0.5 * rng.standard_normal((3, 3, 2, 3)), B=0.5 * rng.standard_normal((2, 2, 3, 2)))
