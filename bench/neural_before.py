"""The convolution and pooling kernels as they were before the im2col rewrite (issue 5), kept
as the "before" baseline of bench/cnn_step.py: `swapped_in()` puts them in the primitive
registry for the duration of a `with` block."""
from __future__ import annotations

import contextlib

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from wengert.runtime import primitives
from wengert.runtime.primitives import ShapeError
from wengert.runtime.primitives.common import fmt, unify_dim
from wengert.runtime.types import FLOATS, TensorType, dim_op

KERNELS: dict = {}  # name -> {"impl", "jvp", "vjp"}


def define(name, shape_rule, impl):
    KERNELS[name] = {"impl": impl}


def rules(name, jvp=None, vjp=None):
    KERNELS[name].update(jvp=jvp, vjp=vjp)


@contextlib.contextmanager
def swapped_in():
    saved = {n: {k: getattr(primitives.REGISTRY[n], k) for k in ("impl", "jvp", "vjp")} for n in KERNELS}
    try:
        for n, fns in KERNELS.items():
            for k, f in fns.items():
                setattr(primitives.REGISTRY[n], k, f)
        yield
    finally:
        for n, fns in saved.items():
            for k, f in fns.items():
                setattr(primitives.REGISTRY[n], k, f)


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


# ---------------------------------------------------------------- derivative rules
from wengert.runtime import ops


def _padded(x, kh, kw, stride, padding):
    if padding != "same":
        return x, (0, 0), (0, 0)
    ph, pw = same_padding(x.shape[1], kh, stride[0]), same_padding(x.shape[2], kw, stride[1])
    return np.pad(x, ((0, 0), ph, pw, (0, 0))), ph, pw


def _input_grad(g, w, *, x_shape, stride, padding):
    """d conv2d / d x: each kernel tap spreads the output cotangent back over the input."""
    kh, kw = w.shape[:2]
    (sh, sw), (oh, ow) = stride, g.shape[1:3]
    _, ph, pw = _padded(np.empty((1,) + tuple(x_shape[1:3]) + (1,), dtype=g.dtype), kh, kw, stride, padding)
    hp, wp = x_shape[1] + ph[0] + ph[1], x_shape[2] + pw[0] + pw[1]
    gp = np.zeros((x_shape[0], hp, wp, x_shape[3]), dtype=g.dtype)
    for i in range(kh):
        for j in range(kw):
            gp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :] += g @ w[i, j].T
    return gp[:, ph[0]:ph[0] + x_shape[1], pw[0]:pw[0] + x_shape[2], :]


def _filter_grad(x, g, *, w_shape, stride, padding):
    kh, kw = w_shape[:2]
    xp, _, _ = _padded(x, kh, kw, stride, padding)
    win = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::stride[0], ::stride[1]]
    return np.einsum("nhwcij,nhwo->ijco", win, g, optimize=True)


define("conv2d_input_grad", lambda env, g, w, **_: g, _input_grad)
define("conv2d_filter_grad", lambda env, x, g, **_: x, _filter_grad)


def _per_direction(fn, batched, *rest, **params):
    return np.stack([fn(batched[k], *rest, **params) for k in range(batched.shape[0])])


def _bilinear_jvp(fn):
    """JVP of a function linear in each of its two array arguments."""
    def jvp(primals, tangents, out, **params):
        a, b = primals
        ta, tb = tangents
        result = None
        if ta is not None:
            result = np.stack([fn(ta[k], b, **params) for k in range(ta.shape[0])])
        if tb is not None:
            term = np.stack([fn(a, tb[k], **params) for k in range(tb.shape[0])])
            result = term if result is None else result + term
        return result
    return jvp


rules("conv2d_input_grad", _bilinear_jvp(_input_grad), None)
rules("conv2d_filter_grad", _bilinear_jvp(_filter_grad), None)
rules("conv2d", _bilinear_jvp(_conv2d),
      lambda g, out, x, w, *, stride, padding: (
          ops.bind("conv2d_input_grad", g, w, x_shape=ops.primal(x).shape, stride=stride, padding=padding),
          ops.bind("conv2d_filter_grad", x, g, w_shape=ops.primal(w).shape, stride=stride, padding=padding)))


def _max_weights(x, out, size, stride):
    """Per window, 1/ties at the positions holding the max (ties share the derivative)."""
    win = _windows(x, size, stride)
    hit = (win == out[..., None, None]).astype(x.dtype)
    return hit / hit.sum(axis=(4, 5), keepdims=True)


def _spread(weights_times_g, x_shape, size, stride):
    """Add window-shaped contributions (N, OH, OW, C, kh, kw) back onto the input grid."""
    gx = np.zeros(x_shape, dtype=weights_times_g.dtype)
    oh, ow = weights_times_g.shape[1:3]
    for i in range(size[0]):
        for j in range(size[1]):
            gx[:, i:i + stride[0] * (oh - 1) + 1:stride[0], j:j + stride[1] * (ow - 1) + 1:stride[1], :] += \
                weights_times_g[..., i, j]
    return gx


def _maxpool_grad(x, out, g, *, size, stride):
    return _spread(_max_weights(x, out, size, stride) * g[..., None, None], x.shape, size, stride)


def _avgpool_grad(g, *, x_shape, size, stride):
    w = np.full(tuple(size), 1.0 / (size[0] * size[1]), dtype=g.dtype)
    return _spread(g[..., None, None] * w, x_shape, size, stride)


define("maxpool2d_grad", lambda env, x, out, g, **_: x, _maxpool_grad)
define("avgpool2d_grad", lambda env, g, **_: g, _avgpool_grad)


def _maxpool_jvp(primals, tangents, out, *, size, stride):
    (x,), (t,) = primals, tangents
    if t is None:
        return None
    w = _max_weights(x, out, size, stride)
    return np.stack([(_windows(t[k], size, stride) * w).sum(axis=(4, 5)) for k in range(t.shape[0])])


def _avgpool_jvp(primals, tangents, out, *, size, stride):
    t = tangents[0]
    return None if t is None else np.stack([_windows(t[k], size, stride).mean(axis=(4, 5)) for k in range(len(t))])


rules("maxpool2d", _maxpool_jvp, lambda g, out, x, *, size, stride: (
    ops.bind("maxpool2d_grad", ops.primal(x), ops.primal(out), g, size=size, stride=stride),))
rules("avgpool2d", _avgpool_jvp, lambda g, out, x, *, size, stride: (
    ops.bind("avgpool2d_grad", g, x_shape=ops.primal(x).shape, size=size, stride=stride),))


def _maxpool_grad_jvp(primals, tangents, out, *, size, stride):
    x, o, g = primals
    tg = tangents[2]
    return None if tg is None else np.stack([_maxpool_grad(x, o, tg[k], size=size, stride=stride)
                                              for k in range(len(tg))])


def _avgpool_grad_jvp(primals, tangents, out, *, x_shape, size, stride):
    t = tangents[0]
    return None if t is None else np.stack([_avgpool_grad(t[k], x_shape=x_shape, size=size, stride=stride)
                                             for k in range(len(t))])


rules("maxpool2d_grad", _maxpool_grad_jvp, None)
rules("avgpool2d_grad", _avgpool_grad_jvp, None)

