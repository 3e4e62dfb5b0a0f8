"""NumPy's ufuncs and functions on `DeviceArray`s, as primitives through `bind`.

This is what lets the optimizers (train/optim.py) and the derivative rules, written with
NumPy, run on device arrays unchanged: `np.sqrt(v)`, `np.maximum(a, b, out=a)`,
`np.where(c, a, b)`, `np.zeros_like(p)`, `np.broadcast_to(t, s)`, ... each become one or a
few primitives on the device. A NumPy function without an entry here raises TypeError
naming it (never a silent copy to the host).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..runtime import ops
from ..runtime.ops import bind
from ..runtime.types import DTYPE_OF_NUMPY
from .array import DeviceArray

UFUNCS = ops.UFUNCS


def _backend(values) -> Any:
    return next(v.backend for v in values if isinstance(v, DeviceArray))


def _operands(values, like_dtype) -> list[Any]:
    """Python numbers take the dtype of the device operands (NumPy's weak scalars)."""
    out = []
    for v in values:
        if isinstance(v, DeviceArray):
            out.append(v)
        elif isinstance(v, (int, float, bool)) and not isinstance(v, np.generic) and like_dtype.kind != "b":
            out.append(np.asarray(v, dtype=like_dtype))
        else:
            out.append(np.asarray(v))
    return out


def _first_dtype(values) -> np.dtype:
    return next(v.dtype for v in values if isinstance(v, DeviceArray))


def _promote(args: list[Any]) -> list[Any]:
    """Operands of a binary op in one dtype (the runtime's primitives need equal dtypes)."""
    dts = [a.dtype for a in args]
    if len(set(dts)) <= 1:
        return args
    target = np.result_type(*[a.dtype if isinstance(a, DeviceArray) or a.ndim else a for a in args])
    return [a if a.dtype == target else (a.astype(target) if isinstance(a, DeviceArray) else a.astype(target))
            for a in args]


def ufunc(self: DeviceArray, uf, method: str, inputs, out, kwargs) -> Any:
    if uf is np.isfinite and method == "__call__":  # |x| < inf is false for NaN and +-inf
        (a,) = inputs
        return bind("lt", bind("abs", a), np.asarray(np.inf, a.dtype))
    if method != "__call__" or (uf not in UFUNCS and uf is not np.square):
        raise TypeError(f"numpy.{uf.__name__}.{method} has no OpenCL kernel")
    dtype = kwargs.pop("dtype", None)
    kwargs.pop("casting", None)
    if kwargs:
        raise TypeError(f"numpy.{uf.__name__} with {sorted(kwargs)} has no OpenCL kernel")
    args = _operands(inputs, _first_dtype(inputs))
    if dtype is not None and np.dtype(dtype) == np.float64 and not self.backend.fp64:
        dtype = None  # an accumulation-precision hint (optim.global_norm) on a device without f64
    if uf is np.square:
        args = [a.astype(dtype) for a in args] if dtype is not None else args
        return bind("mul", args[0], args[0])
    if dtype is not None:
        args = [a.astype(dtype) if isinstance(a, DeviceArray) else np.asarray(a, dtype) for a in args]
    if len(args) == 2:
        args = _promote(args)
    if uf is np.true_divide and args[0].dtype.kind in "iub":
        args = [a.astype(np.float64) for a in args]
    result = bind(UFUNCS[uf], *args)
    if out is not None:
        (target,) = out
        target[...] = result
        return target
    return result


FUNCTIONS: dict[Callable, Callable] = {}


def implements(*funcs: Callable):
    def register(fn):
        for f in funcs:
            FUNCTIONS[f] = fn
        return fn
    return register


def function(self: DeviceArray, func, args, kwargs) -> Any:
    impl = FUNCTIONS.get(func)
    if impl is None:
        raise TypeError(f"numpy.{func.__name__} has no OpenCL implementation")
    return impl(*args, **kwargs)


def _fill(like: DeviceArray, value, dtype=None, shape=None):
    dt = np.dtype(dtype) if dtype is not None else like.dtype
    shape = like.shape if shape is None else tuple(np.atleast_1d(shape)) if np.ndim(shape) else (int(shape),)
    return like.backend.run("fill", (), {"shape": tuple(int(d) for d in shape), "value": value,
                                         "dtype": DTYPE_OF_NUMPY[dt]})


@implements(np.zeros_like)
def _zeros_like(a, dtype=None, shape=None, **_):
    return _fill(a, 0, dtype, shape)


@implements(np.ones_like)
def _ones_like(a, dtype=None, shape=None, **_):
    return _fill(a, 1, dtype, shape)


@implements(np.full_like)
def _full_like(a, fill_value, dtype=None, shape=None, **_):
    return _fill(a, fill_value, dtype, shape)


@implements(np.where)
def _where(c, a, b):
    dt = _first_dtype([a, b]) if any(isinstance(v, DeviceArray) for v in (a, b)) else np.result_type(a, b)
    a, b = _promote(_operands([a, b], dt))
    return bind("where", c if isinstance(c, DeviceArray) else np.asarray(c, bool), a, b)


@implements(np.clip)
def _clip(a, lo, hi, **_):
    lo, hi = _operands([lo, hi], a.dtype)
    return bind("minimum", bind("maximum", a, lo), hi)


@implements(np.broadcast_to)
def _broadcast_to(a, shape, **_):
    shape = tuple(int(d) for d in shape)
    return a if a.shape == shape else bind("broadcast_to", a, shape=shape)


@implements(np.reshape)
def _reshape(a, shape, **_):
    return a.reshape(shape)


@implements(np.transpose)
def _transpose(a, axes=None):
    return a.transpose(axes) if axes is not None else a.transpose()


@implements(np.moveaxis)
def _moveaxis(a, source, destination):
    src = [s % a.ndim for s in np.atleast_1d(source)]
    dst = [d % a.ndim for d in np.atleast_1d(destination)]
    order = [n for n in range(a.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return a.transpose(order)


@implements(np.expand_dims)
def _expand_dims(a, axis):
    axes = sorted(x % (a.ndim + len(np.atleast_1d(axis))) for x in np.atleast_1d(axis))
    shape = list(a.shape)
    for x in axes:
        shape.insert(x, 1)
    return a.reshape(tuple(shape))


@implements(np.ascontiguousarray, np.asarray, np.array)
def _identity(a, dtype=None, **_):
    return a if dtype is None else a.astype(dtype, copy=False)


@implements(np.sum)
def _sum(a, axis=None, keepdims=False, dtype=None, **_):
    return a.sum(axis=axis, keepdims=keepdims, dtype=dtype)


@implements(np.all)
def _all(a, axis=None, keepdims=False):
    x = a if a.dtype == np.bool_ else bind("ne", a, np.zeros((), a.dtype))
    return bind("reduce_min", bind("cast", x, dtype="i32"), axes=tuple(range(a.ndim)) if axis is None else
                (axis,), keepdims=keepdims) != 0


@implements(np.concatenate)
def _concatenate(arrays, axis=0):
    arrays = list(arrays)
    be = _backend(arrays)
    return bind("concat", *(a if isinstance(a, DeviceArray) else be.upload(np.asarray(a)) for a in arrays),
                axis=axis % arrays[0].ndim)


@implements(np.stack)
def _stack(arrays, axis=0):
    arrays = list(arrays)
    axis = axis % (arrays[0].ndim + 1)
    return _concatenate([_expand_dims(a, axis) for a in arrays], axis=axis)


@implements(np.take)
def _take(a, indices, axis=None):
    if np.ndim(indices) == 0 and not isinstance(indices, DeviceArray):
        return bind("index", a, np.asarray(indices, np.int64), axis=axis)
    return bind("gather", a, indices, axis=axis)


@implements(np.matmul)
def _matmul(a, b):
    return bind("matmul", a, b)


@implements(np.result_type)
def _result_type(*args):
    return np.result_type(*[a.dtype if isinstance(a, DeviceArray) else a for a in args])


@implements(np.shape)
def _shape(a):
    return a.shape


@implements(np.ndim)
def _ndim(a):
    return a.ndim


@implements(np.size)
def _size(a, axis=None):
    return a.size if axis is None else a.shape[axis]


def _saver(save):
    def run(file, *args, **kwargs):
        """Checkpoints and params files: device arrays are copied back, then written by NumPy."""
        def host(v):
            return v.get() if isinstance(v, DeviceArray) else v
        return save(file, *(host(a) for a in args), **{k: host(v) for k, v in kwargs.items()})
    return run


FUNCTIONS[np.savez] = _saver(np.savez)
FUNCTIONS[np.savez_compressed] = _saver(np.savez_compressed)
