"""Reductions on the device (sum, prod, max, min over any set of axes; argmax/argmin over one):
work-group tree reductions in local memory (kernels/reduce.cl).

A C-contiguous n-d array whose reduced axes are neighbours (after dropping length-1 axes) is
reduced as [outer, R, inner], a view; the backend first moves other axes together with one
strided copy (strided.py). A long R with few outputs is split
across work-groups and finished by a second, small launch.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyopencl as cl
import pyopencl.array as cla

from .programs import check_dtype, dtype_options, kernel

OPS = ("sum", "prod", "max", "min")
ARG_OPS = ("argmax", "argmin")


def _identity(op: str, dt: np.dtype) -> str:
    if op == "sum":
        return "0"
    if op == "prod":
        return "1"
    if dt.kind == "f":
        return "(-INFINITY)" if op == "max" else "INFINITY"
    info = np.iinfo(dt)
    v = info.min if op == "max" else info.max
    return f"({v + 1}L-1L)" if v < 0 else f"{v}L"  # INT64_MIN has no literal of its own


def _normalize(axes, ndim: int) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, (int, np.integer)):
        axes = (axes,)
    out = sorted({int(a) % ndim if ndim else int(a) for a in axes})
    for a in out:
        if not 0 <= a < max(ndim, 1):
            raise ValueError(f"axis {a} out of range for rank {ndim}")
    return tuple(out)


def _contiguous(x: cla.Array) -> cla.Array:
    if not x.flags.c_contiguous:
        raise ValueError(f"reduce: expected a C-contiguous array, got strides {x.strides}")
    return x


def adjacent(shape: Sequence[int], axes: Sequence[int]) -> bool:
    """Whether the reduced axes form one block once length-1 axes are dropped (then a contiguous
    array is [outer, R, inner] without a copy)."""
    live = [i for i, d in enumerate(shape) if d != 1]
    red = [i for i in live if i in axes]
    return not red or red == [i for i in live if red[0] <= i <= red[-1]]


def _as_three(x: cla.Array, axes: tuple[int, ...]) -> tuple[int, int, int]:
    """(outer, R, inner) of a contiguous x whose reduced axes are adjacent."""
    if not adjacent(_contiguous(x).shape, axes):
        raise ValueError(f"reduce: axes {axes} of shape {x.shape} are not adjacent; move them together first")
    shape = x.shape
    live = [i for i, d in enumerate(shape) if d != 1]
    red = [i for i in live if i in axes] or [axes[0]]
    outer = int(np.prod([shape[i] for i in live if i < red[0]], dtype=np.int64))
    r = int(np.prod([shape[i] for i in red], dtype=np.int64))
    inner = int(np.prod([shape[i] for i in live if i > red[-1]], dtype=np.int64))
    return outer, r, inner


def _group(device: cl.Device, inner: int) -> tuple[int, int]:
    """(TX, TY): TX columns of `inner` side by side, TY work-items along R; both powers of two."""
    size = 1 << (min(256, device.max_work_group_size).bit_length() - 1)
    tx = 1
    while tx < min(inner, 32, size):
        tx *= 2
    return tx, size // tx


def _out_shape(shape, axes, keepdims) -> tuple[int, ...]:
    return tuple(1 if i in axes else d for i, d in enumerate(shape) if keepdims or i not in axes)


def reduce(queue: cl.CommandQueue, x: cla.Array, op: str, axes: Sequence[int] | int | None = None,
           keepdims: bool = False, allocator=None, out: cla.Array | None = None) -> cla.Array:
    """`op` in sum / prod / max / min of x over `axes` (all axes when None), NumPy's semantics
    (NaN propagates through max/min; the empty sum is 0, the empty product 1)."""
    if op not in OPS:
        raise ValueError(f"reduce: op must be one of {OPS}, got {op!r}")
    check_dtype(queue, x.dtype)
    dt = np.dtype(x.dtype)
    axes = _normalize(axes, x.ndim)
    shape = _out_shape(x.shape, axes, keepdims)
    if out is None:
        out = cla.empty(queue, shape, dt, allocator=allocator)
    if out.size == 0:
        return out
    if x.size == 0 or not axes:
        if x.size == 0:
            return out.fill(dt.type(0 if op == "sum" else 1)) if op in ("sum", "prod") else _empty(op)
        cl.enqueue_copy(queue, out.base_data, _contiguous(x).base_data, byte_count=x.nbytes,
                        src_offset=x.offset, dst_offset=out.offset)
        return out
    xs = x
    outer, r, inner = _as_three(x, axes)
    tx, ty = _group(queue.device, inner)
    opts = dtype_options(dt) + (f"-DIS_FLOAT={int(dt.kind == 'f')}", f"-DTX={tx}", f"-DTY={ty}",
                                f"-DOP_{op.upper()}", f"-DIDENTITY={_identity(op, dt)}")
    knl = kernel(queue.context, "reduce", "reduce_axis", opts)
    col_groups = -(-inner // tx)
    # Split R when there are too few output groups to fill the device and R is long.
    target = 8 * queue.device.max_compute_units
    chunks = 1
    if outer * col_groups < target and r > 4 * ty:
        chunks = int(min(-(-r // (4 * ty)), -(-target // (outer * col_groups))))
    chunk = -(-r // chunks)
    chunks = -(-r // chunk)
    dest = out if chunks == 1 else cla.empty(queue, (outer, chunks, inner), dt, allocator=allocator)
    knl(queue, (col_groups * tx, chunks * ty, outer), (tx, ty, 1), np.int64(outer), np.int64(r),
        np.int64(inner), np.int64(chunk), xs.base_data, np.int64(xs.offset // dt.itemsize),
        dest.base_data, np.int64(dest.offset // dt.itemsize))
    if chunks > 1:
        reduce(queue, dest, op, (1,), allocator=allocator, out=out.reshape(outer, inner))
    return out


def _empty(op: str):
    raise ValueError(f"reduce_{op} of an empty array has no identity")


def arg_reduce(queue: cl.CommandQueue, x: cla.Array, op: str, axis: int, keepdims: bool = False,
               allocator=None) -> cla.Array:
    """argmax / argmin of x along one axis as int64 (the first index on ties; the first NaN wins)."""
    if op not in ARG_OPS:
        raise ValueError(f"arg_reduce: op must be one of {ARG_OPS}, got {op!r}")
    check_dtype(queue, x.dtype)
    dt = np.dtype(x.dtype)
    (axis,) = _normalize((axis,), x.ndim)
    if x.shape[axis] == 0:
        raise ValueError(f"{op} of an empty axis")
    out = cla.empty(queue, _out_shape(x.shape, (axis,), keepdims), np.int64, allocator=allocator)
    if out.size == 0:
        return out
    _contiguous(x)
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    r = x.shape[axis]
    tx, ty = _group(queue.device, inner)
    opts = dtype_options(dt) + (f"-DIS_FLOAT={int(dt.kind == 'f')}", f"-DTX={tx}", f"-DTY={ty}",
                                f"-DARG_{op[3:].upper()}")
    knl = kernel(queue.context, "reduce", "arg_reduce", opts)
    knl(queue, (-(-inner // tx) * tx, ty, outer), (tx, ty, 1), np.int64(outer), np.int64(r), np.int64(inner),
        x.base_data, np.int64(x.offset // dt.itemsize), out.base_data, np.int64(out.offset // 8))
    return out


def argmax(queue: cl.CommandQueue, x: cla.Array, axis: int, keepdims: bool = False, allocator=None) -> cla.Array:
    return arg_reduce(queue, x, "argmax", axis, keepdims, allocator)


def argmin(queue: cl.CommandQueue, x: cla.Array, axis: int, keepdims: bool = False, allocator=None) -> cla.Array:
    return arg_reduce(queue, x, "argmin", axis, keepdims, allocator)
