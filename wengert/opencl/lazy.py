"""Fusing elementwise chains: deferred device arrays.

An elementwise primitive on the device (arithmetic, math functions, comparisons, where, cast,
fill, and the strided copies: transpose, broadcast, slice) does not launch a kernel: it returns
a `DeviceArray` without a buffer whose `lazy` holds a C expression over *leaves* (views of
concrete arrays, or 0-d host values). An elementwise primitive on deferred operands inlines
their expressions, so a chain such as Adam's update (a dozen primitives per parameter) becomes
one generated kernel. The array is computed when its buffer is first needed (a matrix product,
a reduction, a copy back, an in-place write); `a[...] = chain` writes the fused chain straight
into `a`.

Results are those of the unfused kernels: each node is cast to its own dtype, and the generated
source turns off floating-point contraction (no fused multiply-add the unfused code would not do).
Writing into a buffer first computes every deferred array still alive that reads it, so a
deferred value never sees a later in-place update.
"""
from __future__ import annotations

import re
import weakref
from typing import Any

import attrs
import numpy as np

from . import programs
from .array import DeviceArray
from .strided import View, broadcast, run_map, view

MAX_LEAVES = 24  # beyond this, operands are computed first (kernel arguments and source size stay small)
MAX_SOURCE = 4000  # characters of one fused expression
_TOKEN = re.compile(r"@(\d+)@")
_OPERAND = re.compile(r"\ba(\d+)\b")
PRAGMA = "#pragma OPENCL FP_CONTRACT OFF"


@attrs.define
class Lazy:
    expr: str  # C expression; @k@ is leaf k
    leaves: list[Any]  # View (with the array's shape) or 0-d np.ndarray
    preludes: frozenset[str] = frozenset()


# Deferred arrays still alive, by id (not a WeakSet: weak references compare their referents
# with ==, which is an elementwise primitive here).
_PENDING: dict[int, weakref.ref] = {}


def _track(x: DeviceArray) -> None:
    key = id(x)
    _PENDING[key] = weakref.ref(x, lambda _, key=key: _PENDING.pop(key, None))


def _shift(expr: str, by: int) -> str:
    return _TOKEN.sub(lambda m: f"@{int(m.group(1)) + by}@", expr)


def deferred(be, expr: str, shape: tuple[int, ...], dtype, operands: list[Any], prelude: str = "") -> DeviceArray:
    """The elementwise result `expr` (over a0, a1, ...) of `operands` (device arrays, broadcast to
    `shape`, or 0-d host values), deferred."""
    leaves: list[Any] = []
    parts: list[str] = []
    preludes = {prelude} if prelude else set()
    for x in operands:
        if type(x) is DeviceArray and x.lazy is not None and len(leaves) + len(x.lazy.leaves) <= MAX_LEAVES \
                and len(x.lazy.expr) < MAX_SOURCE:
            sub = x.lazy
            parts.append(f"(({programs.c_type(x.dtype)})({_shift(sub.expr, len(leaves))}))")
            leaves += [broadcast(v, shape) if isinstance(v, View) else v for v in sub.leaves]
            preludes |= sub.preludes
        elif type(x) is DeviceArray:
            parts.append(f"@{len(leaves)}@")
            leaves.append(broadcast(view(x), shape))
        else:
            parts.append(f"@{len(leaves)}@")
            leaves.append(np.asarray(x))
    text = _OPERAND.sub(lambda m: parts[int(m.group(1))], expr)
    return of_leaves(be, text, shape, dtype, leaves, frozenset(preludes))


def of_leaves(be, expr: str, shape, dtype, leaves: list[Any], preludes: frozenset[str] = frozenset()) -> DeviceArray:
    out = DeviceArray(None, tuple(int(d) for d in shape), dtype, be, Lazy(expr, leaves, preludes))
    if np.dtype(dtype) == np.float64 and not be.fp64:
        raise TypeError(f"the OpenCL device {be.info.name!r} has no f64 support (cl_khr_fp64)")
    _track(out)
    return out


def _run(be, lazy: Lazy, target: View) -> None:
    prelude = "\n".join([PRAGMA] + sorted(lazy.preludes))
    run_map(be, _TOKEN.sub(lambda m: f"a{m.group(1)}", lazy.expr), target, lazy.leaves, prelude)


def materialize(x: DeviceArray) -> None:
    """Compute a deferred array into a buffer of its own."""
    lazy = x.lazy
    nbytes = x.size * x.dtype.itemsize
    x._buffer = x.backend.pool.allocate(max(nbytes, 1))
    x.lazy = None
    _PENDING.pop(id(x), None)
    _run(x.backend, lazy, view(x))


def _reads(lazy: Lazy, buffer) -> list[View]:
    return [v for v in lazy.leaves if isinstance(v, View) and v.array._buffer is buffer]


def before_write(target: DeviceArray, keep: DeviceArray | None = None) -> None:
    """Compute every pending array that reads `target`'s buffer (except `keep`)."""
    buffer = target._buffer
    for ref in list(_PENDING.values()):
        x = ref()
        if x is not None and x is not keep and x.lazy is not None and _reads(x.lazy, buffer):
            materialize(x)


def write(be, target: View, value: DeviceArray) -> bool:
    """target = value's fused expression, when that is safe (it reads the target's buffer only at
    the element it writes); False when the value must be computed first."""
    lazy = value.lazy
    if lazy is None or target.shape != value.shape:
        return False
    for v in _reads(lazy, target.array._buffer):
        if v.offset != target.offset or v.strides != target.strides:
            return False
    _run(be, lazy, target)
    # `value` now reads what was written (a later write to the target computes it first).
    value.lazy = Lazy("@0@", [target])
    return True
