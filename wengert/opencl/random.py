"""Random draws of the backend: the Philox4x32-10 kernels of philox.py on the device.

Each draw takes a fresh 64-bit key from the evaluation's seeded stream (one host integer, no
transfer of data) and counter 0, so the same seed gives the same numbers on the same device,
and dropout or noise needs no upload. Parameters (mean, std, bounds, p) are applied by one
strided map, so they broadcast from device arrays or host scalars.
"""
from __future__ import annotations

import numpy as np

from ..runtime.types import NUMPY_DTYPE
from . import philox
from .array import DeviceArray
from .backend import Backend, _dev_operand, kernel
from .strided import run_map, view


def draw(be: Backend, ctx, shape, dtype, normal: bool) -> DeviceArray:
    """Standard normal (or uniform in [0, 1)) numbers of `shape` under the next key of ctx.rng."""
    key = int(ctx.rng.integers(0, 2 ** 63))
    shape = tuple(int(d) for d in shape)
    if not all(shape):
        return be.empty(shape, dtype)
    fn = philox.normal if normal else philox.uniform
    r = fn(be.queue, shape, np.dtype(dtype), key=key, counter=0, allocator=be.pool)
    return DeviceArray(r.base_data, tuple(r.shape), r.dtype, be)


def _combine(be: Backend, expr: str, base: DeviceArray, *operands) -> DeviceArray:
    out = be.empty(base.shape, base.dtype)
    run_map(be, expr, view(out), [view(base)] + [_dev_operand(be, x, base.shape) for x in operands])
    return out


@kernel("random_normal")
def _normal(be: Backend, ctx, mean, std, *, shape, dtype):
    return _combine(be, "a0 * a2 + a1", draw(be, ctx, shape, NUMPY_DTYPE[dtype], True), mean, std)


@kernel("random_uniform")
def _uniform(be: Backend, ctx, low, high, *, shape, dtype):
    return _combine(be, "a0 * (a2 - a1) + a1", draw(be, ctx, shape, NUMPY_DTYPE[dtype], False), low, high)


@kernel("random_bernoulli")
def _bernoulli(be: Backend, ctx, p, *, shape, dtype):
    return _combine(be, "a0 < a1", draw(be, ctx, shape, NUMPY_DTYPE[dtype], False), p)


@kernel("training")
def _training(be: Backend, ctx):
    return np.asarray(ctx.training)  # a host flag: it only selects branches and feeds kernel arguments
