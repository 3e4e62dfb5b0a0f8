"""Convolution and pooling over NHWC tensors (vectorised: windows views + one product)."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..types import FLOATS, TensorType, dim_op
from . import ShapeError, define
from .common import fmt, unify_dim


def conv_out(size, k: int, stride: int, padding: str):
    if padding == "same":
        return dim_op("//", dim_op("+", size, stride - 1), stride)
    return dim_op("+", dim_op("//", dim_op("-", size, k), stride), 1)


def same_padding(size: int, k: int, stride: int) -> tuple[int, int]:
    """Keras/TensorFlow "same": output ceil(size/stride), the odd pixel at the bottom/right."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def _conv2d_rule(env, x: TensorType, w: TensorType, *, stride, padding):
    if x.rank != 4:
        raise ShapeError(f"conv2d needs an NHWC input of rank 4, got {fmt(env, x)}")
    if w.rank != 4:
        raise ShapeError(f"conv2d needs a kernel [kh, kw, cin, cout], got {fmt(env, w)}")
    if x.dtype != w.dtype or x.dtype not in FLOATS:
        raise ShapeError(f"conv2d needs float operands of one dtype, got {fmt(env, x)} and {fmt(env, w)}")
    if padding not in ("valid", "same"):
        raise ShapeError(f'padding must be "valid" or "same", got "{padding}"')
    unify_dim(env, x.shape[3], w.shape[2], f"conv2d: input channels {env.resolve(x.shape[3])} of {fmt(env, x)} "
                                           f"do not match the kernel's {env.resolve(w.shape[2])} ({fmt(env, w)})")
    kh, kw = (env.resolve(d) for d in w.shape[:2])
    if not (isinstance(kh, int) and isinstance(kw, int)):
        raise ShapeError(f"conv2d: the kernel size must be known statically, got {fmt(env, w)}")
    oh, ow = (conv_out(env.resolve(x.shape[i + 1]), k, s, padding) for i, k, s in ((0, kh, stride[0]), (1, kw, stride[1])))
    for o, i in ((oh, 1), (ow, 2)):
        if isinstance(o, int) and o <= 0:
            raise ShapeError(f"conv2d: kernel {kh}x{kw} is larger than the input {fmt(env, x)}")
    return TensorType(x.dtype, (x.shape[0], oh, ow, w.shape[3]))


def _conv2d(x, w, *, stride, padding):
    kh, kw = w.shape[:2]
    sh, sw = stride
    if padding == "same":
        (pt, pb), (pl, pr) = same_padding(x.shape[1], kh, sh), same_padding(x.shape[2], kw, sw)
        x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    win = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]  # N, OH, OW, C, kh, kw
    return np.einsum("nhwcij,ijco->nhwo", win, w, optimize=True)


define("conv2d", _conv2d_rule, _conv2d)


def _pool_rule(env, x: TensorType, *, size, stride):
    if x.rank != 4:
        raise ShapeError(f"pooling needs an NHWC input of rank 4, got {fmt(env, x)}")
    if x.dtype not in FLOATS:
        raise ShapeError(f"pooling needs a float input, got {fmt(env, x)}")
    oh, ow = (conv_out(env.resolve(x.shape[i + 1]), size[i], stride[i], "valid") for i in (0, 1))
    for o in (oh, ow):
        if isinstance(o, int) and o <= 0:
            raise ShapeError(f"pool size {size[0]}x{size[1]} is larger than the input {fmt(env, x)}")
    return TensorType(x.dtype, (x.shape[0], oh, ow, x.shape[3]))


def _windows(x, size, stride):
    return sliding_window_view(x, size, axis=(1, 2))[:, ::stride[0], ::stride[1]]


define("maxpool2d", _pool_rule, lambda x, *, size, stride: _windows(x, size, stride).max(axis=(4, 5)))
define("avgpool2d", _pool_rule, lambda x, *, size, stride: _windows(x, size, stride).mean(axis=(4, 5)))
