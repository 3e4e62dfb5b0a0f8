"""im2col and its transpose col2im (kernels/im2col.cl) over NHWC images with the runtime's
semantics (stride, "valid"/"same" padding: wengert/runtime/primitives/neural.py). The backend's
convolution (neural.py) is im2col + the tiled GEMM, its input gradient G W^T then col2im, its
filter gradient im2col(x)^T G."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyopencl as cl
import pyopencl.array as cla

from ..runtime.primitives.neural import _pads, conv_out
from .programs import check_dtype, dtype_options, kernel


def _geometry(h: int, w: int, kh: int, kw: int, stride: Sequence[int], padding: str):
    (pt, _), (pl, _) = _pads(h, w, kh, kw, stride, padding)
    oh, ow = conv_out(h, kh, stride[0], padding), conv_out(w, kw, stride[1], padding)
    return pt, pl, int(oh), int(ow)


def _launch(queue, name: str, src: cla.Array, dst: cla.Array, b, h, w, c, kh, kw, stride, pt, pl, oh, ow):
    i32 = np.int32
    knl = kernel(queue.context, "im2col", name, dtype_options(src.dtype))
    local = min(256, queue.device.max_work_group_size)
    n = dst.size
    knl(queue, (-(-n // local) * local,), (local,), i32(b), i32(h), i32(w), i32(c), i32(kh), i32(kw),
        i32(stride[0]), i32(stride[1]), i32(pt), i32(pl), i32(oh), i32(ow),
        src.base_data, np.int64(src.offset // src.dtype.itemsize), dst.data)


def _contiguous(x: cla.Array) -> cla.Array:
    if not x.flags.c_contiguous:
        raise ValueError(f"expected a C-contiguous array, got strides {x.strides}")
    return x


def im2col(queue: cl.CommandQueue, x: cla.Array, kh: int, kw: int, stride: Sequence[int], padding: str,
           allocator=None) -> tuple[cla.Array, tuple[int, int, int]]:
    """x [B, H, W, C] -> (cols [B*OH*OW, kh*kw*C] with columns in (kh, kw, C) order, (B, OH, OW))."""
    check_dtype(queue, x.dtype)
    b, h, w, c = _contiguous(x).shape
    pt, pl, oh, ow = _geometry(h, w, kh, kw, stride, padding)
    cols = cla.empty(queue, (b * oh * ow, kh * kw * c), x.dtype, allocator=allocator)
    if cols.size:
        _launch(queue, "im2col", x, cols, b, h, w, c, kh, kw, stride, pt, pl, oh, ow)
    return cols, (b, oh, ow)


def col2im(queue: cl.CommandQueue, d: cla.Array, x_hw: Sequence[int], kh: int, kw: int,
           stride: Sequence[int], padding: str, allocator=None) -> cla.Array:
    """The transpose of im2col: d [B, OH, OW, kh, kw, *rest] -> [B, H, W, *rest]."""
    check_dtype(queue, d.dtype)
    b, oh, ow, dkh, dkw = _contiguous(d).shape[:5]
    rest = tuple(d.shape[5:])
    h, w = (int(v) for v in x_hw)
    pt, pl, eoh, eow = _geometry(h, w, kh, kw, stride, padding)
    if (dkh, dkw, oh, ow) != (kh, kw, eoh, eow):
        raise ValueError(f"col2im: d of shape {d.shape} does not fit a {kh}x{kw} kernel over {h}x{w}")
    c = int(np.prod(rest, dtype=np.int64))
    gx = cla.empty(queue, (b, h, w) + rest, d.dtype, allocator=allocator)
    if gx.size:
        _launch(queue, "col2im", d, gx, b, h, w, c, kh, kw, stride, pt, pl, oh, ow)
    return gx
