"""Convolution and pooling kernels of the OpenCL backend (NHWC, as the NumPy kernels).

conv2d is im2col (one gather kernel) + the tiled matrix product; its input gradient is
g @ Wᵀ then col2im written as a gather (each input pixel sums the taps that saw it, so no
atomics and a deterministic order); its filter gradient is im2col(x)ᵀ @ g, the transpose
being a strided view, not a copy. Pooling kernels accept extra leading axes (a batched
tangent [K, N, H, W, C]) and compute one output element per work-item.
"""
from __future__ import annotations

import numpy as np

from . import im2col as im2col_kernels
from . import programs
from .array import DeviceArray
from .backend import Backend, _zeros, kernel, matmul_views
from .strided import View


def _opts(dtype) -> tuple[str, ...]:
    return ("-DENABLE_FP64=1",) if np.dtype(dtype) == np.float64 else ()


def _src(text: str, dtype) -> str:
    return text.replace("REAL", programs.c_type(dtype))


def _wrap(be: Backend, r) -> DeviceArray:
    """A pyopencl array made by im2col.py (from the backend's pool) as a device array."""
    return DeviceArray(r.base_data, tuple(r.shape), r.dtype, be)


def im2col(be: Backend, x: DeviceArray, kh: int, kw: int, stride, padding: str):
    """(cols [B*OH*OW, kh*kw*C], (B, OH, OW)): the kernel of im2col.py on the backend's buffers."""
    cols, geo = im2col_kernels.im2col(be.queue, be.cl_array(x), kh, kw, stride, padding, allocator=be.pool)
    return (_wrap(be, cols) if cols.size else be.empty(cols.shape, x.dtype)), geo


def _matrix(a: DeviceArray, rows: int, cols: int, transposed: bool = False) -> View:
    """a (contiguous, rows*cols elements) as a [rows, cols] view, or its transpose."""
    if transposed:
        return View(a, 0, (cols, rows), (1, cols))
    return View(a, 0, (rows, cols), (cols, 1))


@kernel("conv2d")
def _conv2d(be: Backend, x, w, *, stride, padding):
    x, w = be.to_device(x), be.to_device(w)
    kh, kw, cin, cout = w.shape
    cols, (b, oh, ow) = im2col(be, x, kh, kw, stride, padding)
    out = matmul_views(be, _matrix(cols, cols.shape[0], cols.shape[1]), _matrix(w, kh * kw * cin, cout))
    return out.with_shape((b, oh, ow, cout))


@kernel("conv2d_input_grad")
def _input_grad(be: Backend, g, w, *, x_shape, stride, padding):
    g, w = be.to_device(g), be.to_device(w)
    kh, kw, cin, cout = w.shape
    b, oh, ow = g.shape[:3]
    d = matmul_views(be, _matrix(g, b * oh * ow, cout), _matrix(w, kh * kw * cin, cout, transposed=True))
    if d.size == 0:
        return _zeros(be, tuple(x_shape[:3]) + (cin,), g.dtype)  # no output pixel saw x
    gx = im2col_kernels.col2im(be.queue, be.cl_array(d).reshape(b, oh, ow, kh, kw, cin), tuple(x_shape[1:3]),
                               kh, kw, stride, padding, allocator=be.pool)
    return _wrap(be, gx)


@kernel("conv2d_filter_grad")
def _filter_grad(be: Backend, x, g, *, w_shape, stride, padding):
    x, g = be.to_device(x), be.to_device(g)
    kh, kw, _, cout = w_shape
    cols, _ = im2col(be, x, kh, kw, stride, padding)
    m, p = cols.shape
    out = matmul_views(be, _matrix(cols, m, p, transposed=True), _matrix(g, m, cout))
    return out.with_shape(tuple(w_shape))


POOL = """
__kernel void pool(long H, long W, long C, long OH, long OW, long PH, long PW, long SH, long SW,
                   __global const REAL* x, __global REAL* out) {
    long i = get_global_id(0);
    long c = i % C; long r = i / C;
    long ow = r % OW; r /= OW;
    long oh = r % OH; long b = r / OH;
    __global const REAL* base = x + b * H * W * C + c;
    REAL acc = base[((oh * SH) * W + ow * SW) * C];
    for (long q = 0; q < PH; ++q)
        for (long j = 0; j < PW; ++j) {
            if (q == 0 && j == 0) continue;
            REAL v = base[((oh * SH + q) * W + ow * SW + j) * C];
            acc = COMBINE;
        }
    out[i] = FINISH;
}
"""

POOL_GRAD = """
__kernel void pool_grad(long H, long W, long C, long OH, long OW, long PH, long PW, long SH, long SW, long XL,
                        __global const REAL* x, __global const REAL* y, __global const REAL* g, __global REAL* gx) {
    long i = get_global_id(0);
    long c = i % C; long r = i / C;
    long w = r % W; r /= W;
    long h = r % H; long b = r / H;
    long xb = b % XL;
    REAL acc = 0;
    for (long q = 0; q < PH; ++q) {
        long hh = h - q;
        if (hh < 0 || hh % SH) continue;
        long oh = hh / SH; if (oh >= OH) continue;
        for (long j = 0; j < PW; ++j) {
            long ww = w - j;
            if (ww < 0 || ww % SW) continue;
            long ow = ww / SW; if (ow >= OW) continue;
            long o = ((b * OH + oh) * OW + ow) * C + c;
            CONTRIB
        }
    }
    gx[i] = acc;
}
"""

MAX_CONTRIB = """
            long xo = xb * H * W * C + c, yo = ((xb * OH + oh) * OW + ow) * C + c;
            REAL top = y[yo];
            if (x[xo + (h * W + w) * C] == top) {
                REAL count = 0;
                for (long a = 0; a < PH; ++a) for (long e = 0; e < PW; ++e)
                    count += x[xo + ((oh * SH + a) * W + ow * SW + e) * C] == top;
                acc += g[o] / count;
            }
"""


def _lead(shape) -> int:
    return int(np.prod(shape[:-3], dtype=np.int64))


def _pool(be: Backend, x, size, stride, combine: str, finish: str):
    x = be.to_device(x)
    h, w, c = x.shape[-3:]
    oh, ow = (h - size[0]) // stride[0] + 1, (w - size[1]) // stride[1] + 1
    out = be.empty(x.shape[:-3] + (oh, ow, c), x.dtype)
    if out.size:
        src = _src(POOL.replace("COMBINE", combine).replace("FINISH", finish), x.dtype)
        knl = programs.kernel(be.context, src, "pool", _opts(x.dtype))
        be.launch(knl, out.size, [np.int64(v) for v in (h, w, c, oh, ow, size[0], size[1], stride[0], stride[1])]
                  + [x.buffer, out.buffer])
    return out


@kernel("maxpool2d")
def _maxpool(be: Backend, x, *, size, stride):
    return _pool(be, x, size, stride, "(v > acc || isnan(v)) && !isnan(acc) ? v : acc", "acc")


@kernel("avgpool2d")
def _avgpool(be: Backend, x, *, size, stride):
    return _pool(be, x, size, stride, "acc + v", "acc / (REAL)(PH * PW)")  # sizes are arguments: one source


def _pool_grad(be: Backend, contrib: str, g, x_shape, size, stride, x=None, y=None):
    g = be.to_device(g)
    h, w, c = x_shape[-3:]
    oh, ow = g.shape[-3:-1]
    lead = g.shape[:-3] if x is None else tuple(np.broadcast_shapes(g.shape[:-3], x.shape[:-3]))
    gx = be.empty(lead + (h, w, c), g.dtype)
    if gx.size:
        src = _src(POOL_GRAD.replace("CONTRIB", contrib), g.dtype)
        knl = programs.kernel(be.context, src, "pool_grad", _opts(g.dtype))
        xl = _lead(x.shape) if x is not None else 1
        bufs = [x.buffer, y.buffer] if x is not None else [g.buffer, g.buffer]
        be.launch(knl, gx.size, [np.int64(v) for v in (h, w, c, oh, ow, size[0], size[1], stride[0], stride[1],
                                                        max(xl, 1))] + bufs + [g.buffer, gx.buffer])
    return gx


@kernel("maxpool2d_grad")
def _maxpool_grad(be: Backend, x, out, g, *, size, stride):
    x, out, g = be.to_device(x), be.to_device(out), be.to_device(g)
    if _lead(g.shape) < _lead(x.shape):  # g broadcast over x's leading axes: make it explicit
        g = be.run("broadcast_to", (g,), {"shape": x.shape[:-3] + g.shape[-3:]})
    return _pool_grad(be, MAX_CONTRIB, g, x.shape, size, stride, x, out)


@kernel("avgpool2d_grad")
def _avgpool_grad(be: Backend, g, *, x_shape, size, stride):
    return _pool_grad(be, "acc += g[o] / (REAL)(PH * PW);", g, tuple(x_shape), size, stride)
