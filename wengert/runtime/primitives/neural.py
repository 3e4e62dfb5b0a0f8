"""Convolution and pooling over NHWC tensors: im2col + one BLAS product per convolution,
loops over kernel taps (never over pixels) for col2im and pooling."""
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


# ---------------------------------------------------------------- kernels
# Spatial axes are always -3 and -2 (NHWC); pooling kernels accept any leading axes, so a
# batched tangent [K, N, H, W, C] goes through them as it is. Loops run over kernel taps
# (kh*kw strided slices), never over pixels or windows.
def _pads(h: int, w: int, kh: int, kw: int, stride, padding: str):
    if padding != "same":
        return (0, 0), (0, 0)
    return same_padding(h, kh, stride[0]), same_padding(w, kw, stride[1])


def _im2col(x, kh: int, kw: int, stride, padding: str):
    """x [B, H, W, C] -> (cols [B*OH*OW, kh*kw*C], rows in (kh, kw, C) order; (B, OH, OW)).

    A strided window view made contiguous in one copy, so a convolution is one BLAS product."""
    (pt, pb), (pl, pr) = _pads(x.shape[1], x.shape[2], kh, kw, stride, padding)
    if pt or pb or pl or pr:
        x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    win = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride[0], ::stride[1]]  # B, OH, OW, C, kh, kw
    b, oh, ow, c = win.shape[:4]
    cols = np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3))
    return cols.reshape(b * oh * ow, kh * kw * c), (b, oh, ow)


def _col2im(d, x_hw, kh: int, kw: int, stride, padding: str):
    """The transpose of im2col: d [B, OH, OW, kh, kw, *rest] -> [B, H, W, *rest], adding each
    kernel tap's strided slice."""
    (h, w), (sh, sw) = x_hw, stride
    b, oh, ow = d.shape[:3]
    (pt, pb), (pl, pr) = _pads(h, w, kh, kw, stride, padding)
    gx = np.zeros((b, h + pt + pb, w + pl + pr) + d.shape[5:], dtype=d.dtype)
    for i in range(kh):
        for j in range(kw):
            gx[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += d[:, :, :, i, j]
    if pt or pb or pl or pr:
        gx = np.ascontiguousarray(gx[:, pt:pt + h, pl:pl + w])
    return gx


def _conv2d(x, w, *, stride, padding):
    kh, kw, _, cout = w.shape
    cols, (b, oh, ow) = _im2col(x, kh, kw, stride, padding)
    return (cols @ w.reshape(-1, cout)).reshape(b, oh, ow, cout)


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


def _pool_out(hw, size, stride) -> tuple[int, int]:
    return (hw[0] - size[0]) // stride[0] + 1, (hw[1] - size[1]) // stride[1] + 1


def _taps(x_hw, size, stride):
    """Index tuples, one per window position (i, j): the input pixels each window sees there."""
    oh, ow = _pool_out(x_hw, size, stride)
    sh, sw = stride
    return [(Ellipsis, slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw), slice(None))
            for i in range(size[0]) for j in range(size[1])]


def _maxpool(x, *, size, stride):
    taps = _taps(x.shape[-3:-1], size, stride)
    out = x[taps[0]].copy()
    for t in taps[1:]:
        np.maximum(out, x[t], out=out)
    return out


def _window_sum(x, size, stride):
    taps = _taps(x.shape[-3:-1], size, stride)
    out = x[taps[0]].copy()
    for t in taps[1:]:
        out += x[t]
    return out


def _avgpool(x, *, size, stride):
    out = _window_sum(x, size, stride)
    out /= size[0] * size[1]
    return out


define("maxpool2d", _pool_rule, _maxpool)
define("avgpool2d", _pool_rule, _avgpool)


# ---------------------------------------------------------------- derivative rules
from .. import ops  # noqa: E402
from . import rules  # noqa: E402


def _input_grad(g, w, *, x_shape, stride, padding):
    """d conv2d / d x: g @ W^T gives each tap's share, col2im adds them back onto the input."""
    kh, kw, cin, cout = w.shape
    b, oh, ow = g.shape[:3]
    d = g.reshape(-1, cout) @ w.reshape(-1, cout).T  # [B*OH*OW, kh*kw*cin]
    return _col2im(d.reshape(b, oh, ow, kh, kw, cin), tuple(x_shape[1:3]), kh, kw, stride, padding)


def _filter_grad(x, g, *, w_shape, stride, padding):
    """d conv2d / d W: im2col(x)^T @ g."""
    kh, kw = w_shape[:2]
    cols, _ = _im2col(x, kh, kw, stride, padding)
    return (cols.T @ g.reshape(-1, g.shape[3])).reshape(tuple(w_shape))


define("conv2d_input_grad", lambda env, g, w, *, x_shape, **_: TensorType(g.dtype, tuple(x_shape)), _input_grad)
define("conv2d_filter_grad", lambda env, x, g, *, w_shape, **_: TensorType(x.dtype, tuple(w_shape)), _filter_grad)


# Forward mode: the direction axis K of a tangent is folded into the batch axis (a tangent of an
# image-like operand) or into the channels (a tangent of the kernel), so K directions cost one
# im2col and one product, not K of them.
def _fold(t):
    """[K, N, ...] -> [K*N, ...]."""
    return t.reshape((-1,) + t.shape[2:])


def _conv2d_jvp(primals, tangents, out, *, stride, padding):
    (x, w), (tx, tw) = primals, tangents
    result = None
    if tx is not None:
        result = ops.bind("conv2d", _fold(tx), w, stride=stride, padding=padding).reshape((tx.shape[0],) + out.shape)
    if tw is not None:
        k, (kh, kw, cin, cout) = tw.shape[0], w.shape
        wk = np.moveaxis(tw, 0, 3).reshape(kh, kw, cin, k * cout)  # the directions as extra output channels
        term = ops.bind("conv2d", x, wk, stride=stride, padding=padding).reshape(out.shape[:3] + (k, cout))
        term = np.ascontiguousarray(np.moveaxis(term, 3, 0))
        result = term if result is None else result + term
    return result


def _input_grad_jvp(primals, tangents, out, *, x_shape, stride, padding):
    (g, w), (tg, tw) = primals, tangents
    result = None
    if tg is not None:
        k = tg.shape[0]
        result = ops.bind("conv2d_input_grad", _fold(tg), w, x_shape=(k * x_shape[0],) + tuple(x_shape[1:]),
                          stride=stride, padding=padding).reshape((k,) + out.shape)
    if tw is not None:
        k, (kh, kw, cin, cout) = tw.shape[0], w.shape
        wk = tw.transpose(1, 2, 0, 3, 4).reshape(kh, kw, k * cin, cout)  # the directions as extra input channels
        term = ops.bind("conv2d_input_grad", g, wk, x_shape=tuple(x_shape[:3]) + (k * cin,), stride=stride,
                        padding=padding).reshape(tuple(x_shape[:3]) + (k, cin))  # [N, H, W, K, cin]
        term = np.ascontiguousarray(np.moveaxis(term, 3, 0))
        result = term if result is None else result + term
    return result


def _filter_grad_jvp(primals, tangents, out, *, w_shape, stride, padding):
    (x, g), (tx, tg) = primals, tangents
    kh, kw = w_shape[:2]
    cout = g.shape[3]
    result = None
    cin = w_shape[2]
    if tx is not None:  # the directions as extra input channels: one im2col and one product
        k = tx.shape[0]
        xk = np.moveaxis(tx, 0, 4).reshape(tuple(x.shape[:3]) + (k * cin,))
        result = ops.bind("conv2d_filter_grad", xk, g, w_shape=(kh, kw, k * cin, cout), stride=stride,
                          padding=padding).reshape((kh, kw, cin, k, cout))
        result = np.ascontiguousarray(np.moveaxis(result, 3, 0))
    if tg is not None:  # the directions as extra output channels
        k = tg.shape[0]
        gk = np.moveaxis(tg, 0, 3).reshape(tuple(g.shape[:3]) + (k * cout,))
        term = ops.bind("conv2d_filter_grad", x, gk, w_shape=(kh, kw, cin, k * cout), stride=stride,
                        padding=padding).reshape((kh, kw, cin, k, cout))
        term = np.ascontiguousarray(np.moveaxis(term, 3, 0))
        result = term if result is None else result + term
    return result


rules("conv2d_input_grad", _input_grad_jvp, None)
rules("conv2d_filter_grad", _filter_grad_jvp, None)
rules("conv2d", _conv2d_jvp,
      lambda g, out, x, w, *, stride, padding: (
          ops.bind("conv2d_input_grad", g, w, x_shape=ops.primal(x).shape, stride=stride, padding=padding),
          ops.bind("conv2d_filter_grad", x, g, w_shape=ops.primal(w).shape, stride=stride, padding=padding)))


def _max_hits(x, out, size, stride):
    """Per window position, where the input holds its window's max, and per window how many
    positions do (ties share the derivative equally)."""
    hits = [x[t] == out for t in _taps(x.shape[-3:-1], size, stride)]
    count = np.zeros(out.shape, dtype=x.dtype)
    for h in hits:
        count += h
    return hits, count


def _maxpool_grad(x, out, g, *, size, stride):
    """g [..., OH, OW, C] (extra leading axes allowed) spread onto the max positions of x."""
    hits, count = _max_hits(x, out, size, stride)
    share = g / count
    gx = np.zeros(np.broadcast_shapes(g.shape[:-3], x.shape[:-3]) + x.shape[-3:], dtype=g.dtype)
    disjoint = size[0] <= stride[0] and size[1] <= stride[1]
    for t, h in zip(_taps(x.shape[-3:-1], size, stride), hits):
        if disjoint:
            np.multiply(h, share, out=gx[t])
        else:
            gx[t] += h * share
    return gx


def _avgpool_grad(g, *, x_shape, size, stride):
    share = g / (size[0] * size[1])
    gx = np.zeros(g.shape[:-3] + tuple(x_shape[-3:]), dtype=g.dtype)
    for t in _taps(tuple(x_shape[-3:-1]), size, stride):
        gx[t] += share
    return gx


define("maxpool2d_grad", lambda env, x, out, g, **_: x, _maxpool_grad)
define("avgpool2d_grad", lambda env, g, *, x_shape, **_: TensorType(g.dtype, tuple(x_shape)), _avgpool_grad)


def _maxpool_jvp(primals, tangents, out, *, size, stride):
    (x,), (t,) = primals, tangents
    if t is None:
        return None
    taps = _taps(x.shape[-3:-1], size, stride)
    hits = [(x[tap] == out).astype(t.dtype) for tap in taps]  # operators and slices: runs on device arrays too
    count, acc = hits[0], hits[0] * t[taps[0]]
    for tap, h in zip(taps[1:], hits[1:]):
        count = count + h
        acc = acc + h * t[tap]
    return acc / count


def _avgpool_jvp(primals, tangents, out, *, size, stride):
    t = tangents[0]
    return None if t is None else ops.bind("avgpool2d", t, size=size, stride=stride)


rules("maxpool2d", _maxpool_jvp, lambda g, out, x, *, size, stride: (
    ops.bind("maxpool2d_grad", ops.primal(x), ops.primal(out), g, size=size, stride=stride),))
rules("avgpool2d", _avgpool_jvp, lambda g, out, x, *, size, stride: (
    ops.bind("avgpool2d_grad", g, x_shape=ops.primal(x).shape, size=size, stride=stride),))


def _maxpool_grad_jvp(primals, tangents, out, *, size, stride):
    x, o, _ = primals
    tg = tangents[2]  # the max positions are locally constant: only g's tangent moves the result
    return None if tg is None else ops.bind("maxpool2d_grad", x, o, tg, size=size, stride=stride)


def _avgpool_grad_jvp(primals, tangents, out, *, x_shape, size, stride):
    t = tangents[0]
    return None if t is None else ops.bind("avgpool2d_grad", t, x_shape=x_shape, size=size, stride=stride)


rules("maxpool2d_grad", _maxpool_grad_jvp, None)
rules("avgpool2d_grad", _avgpool_grad_jvp, None)
