"""`DeviceArray`: a contiguous array resident in an OpenCL buffer.

It is what the OpenCL backend's kernels take and return, and what `ops.bind` recognizes to
dispatch a primitive to the device. It behaves enough like an ndarray (operators, NumPy
ufuncs through `__array_ufunc__`, the NumPy functions the optimizers and derivative rules use
through `__array_function__`, `p[...] = v`) that train/optim.py and the derivative rules run
on it unchanged, every operation becoming a primitive through `bind`.

Copies back to the host happen only through `get()` (and `np.asarray`, `float()`, `int()`,
`bool()`, which call it); `TRANSFERS` counts them, so tests can check that training copies
back only what the user asks to see.
"""
from __future__ import annotations

from typing import Any

import numpy as np

TRANSFERS = {"to_host": 0, "to_device": 0}


class DeviceArray:
    """`buffer` (a pooled cl.Buffer) holds `shape` elements of `dtype`, contiguous (C order);
    `backend` made it and runs its operations. A deferred array (`lazy`) gets its buffer when
    first asked for it."""

    __slots__ = ("_buffer", "shape", "dtype", "backend", "lazy", "__weakref__")
    __array_priority__ = 1000  # NumPy defers binary operators to ours

    def __init__(self, buffer, shape: tuple[int, ...], dtype, backend, lazy=None):
        self._buffer = buffer
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.backend = backend
        self.lazy = lazy  # a deferred elementwise expression (lazy.py) until the buffer is needed

    @property
    def buffer(self):
        if self._buffer is None:
            from .lazy import materialize
            materialize(self)
        return self._buffer

    # ---- what an ndarray has ----
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def with_shape(self, shape: tuple[int, ...]) -> "DeviceArray":
        """The same buffer seen with another shape of as many elements (a reshape: no copy)."""
        return DeviceArray(self.buffer, tuple(int(d) for d in shape), self.dtype, self.backend)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"DeviceArray({self.get()!r}, device={self.backend.info.name!r})"

    # ---- transfers ----
    def get(self) -> np.ndarray:
        """A host copy (counted in TRANSFERS)."""
        TRANSFERS["to_host"] += 1
        return self.backend.download(self)

    def __array__(self, dtype=None, copy=None):
        out = self.get()
        return out if dtype is None else out.astype(dtype, copy=False)

    def item(self):
        return self.get().item()

    def __float__(self) -> float:
        return float(self.get())

    def __int__(self) -> int:
        return int(self.get())

    def __index__(self) -> int:
        return int(self.get())

    def __bool__(self) -> bool:
        return bool(self.get())

    # ---- methods that become primitives ----
    def _bind(self, prim: str, *args, **params):
        from ..runtime.ops import bind
        return bind(prim, *args, **params)

    def reshape(self, *shape) -> "DeviceArray":
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        shape = tuple(int(d) for d in shape)
        if -1 in shape:
            known = int(np.prod([d for d in shape if d != -1]))
            shape = tuple(self.size // known if d == -1 else d for d in shape)
        return self._bind("reshape", self, shape=shape)

    def transpose(self, *perm) -> "DeviceArray":
        perm = perm[0] if len(perm) == 1 and isinstance(perm[0], (tuple, list)) else perm
        perm = tuple(int(p) for p in perm) if perm else tuple(range(self.ndim))[::-1]
        return self._bind("transpose", self, perm=perm)

    @property
    def T(self) -> "DeviceArray":
        return self.transpose()

    def astype(self, dtype, copy: bool = True) -> "DeviceArray":
        from ..runtime.types import DTYPE_OF_NUMPY
        dtype = np.dtype(dtype)
        if dtype == self.dtype and not copy:
            return self
        return self._bind("cast", self, dtype=DTYPE_OF_NUMPY[dtype])

    def copy(self) -> "DeviceArray":
        return self.backend.copy(self)

    def _reduce(self, prim: str, axis=None, keepdims: bool = False):
        axes = tuple(range(self.ndim)) if axis is None else (axis,) if np.ndim(axis) == 0 else tuple(axis)
        axes = tuple(sorted(int(a) % self.ndim for a in axes)) if self.ndim else ()
        return self._bind(prim, self, axes=axes, keepdims=keepdims)

    def sum(self, axis=None, keepdims: bool = False, dtype=None):
        x = self if dtype is None else self.astype(dtype)
        return x._reduce("reduce_sum", axis, keepdims)

    def max(self, axis=None, keepdims: bool = False):
        return self._reduce("reduce_max", axis, keepdims)

    def min(self, axis=None, keepdims: bool = False):
        return self._reduce("reduce_min", axis, keepdims)

    def prod(self, axis=None, keepdims: bool = False):
        return self._reduce("reduce_prod", axis, keepdims)

    def __getitem__(self, key):
        return self.backend.getitem(self, key)

    def __setitem__(self, key, value) -> None:
        self.backend.setitem(self, key, value)

    # ---- operators ----
    def _operand(self, other):
        if isinstance(other, DeviceArray):
            return other
        arr = np.asarray(other)
        if arr.ndim == 0 and isinstance(other, (int, float, bool)) and self.dtype.kind != "b":
            return arr.astype(self.dtype)  # a Python number takes the array's dtype (NumPy's weak scalars)
        return arr

    def _binary(prim: str, reflected: bool = False):  # noqa: N805 - builds the methods below
        def method(self, other):
            other = self._operand(other)
            return self._bind(prim, other, self) if reflected else self._bind(prim, self, other)
        return method

    __add__, __radd__ = _binary("add"), _binary("add", True)
    __sub__, __rsub__ = _binary("sub"), _binary("sub", True)
    __mul__, __rmul__ = _binary("mul"), _binary("mul", True)
    __truediv__, __rtruediv__ = _binary("div"), _binary("div", True)
    __pow__, __rpow__ = _binary("pow"), _binary("pow", True)
    __mod__, __rmod__ = _binary("mod"), _binary("mod", True)
    __matmul__, __rmatmul__ = _binary("matmul"), _binary("matmul", True)
    __lt__, __le__, __gt__, __ge__ = _binary("lt"), _binary("le"), _binary("gt"), _binary("ge")
    __eq__, __ne__ = _binary("eq"), _binary("ne")
    __and__, __or__ = _binary("and"), _binary("or")
    __hash__ = object.__hash__

    def __iadd__(self, other):
        self[...] = self + other
        return self

    def __isub__(self, other):
        self[...] = self - other
        return self

    def __imul__(self, other):
        self[...] = self * other
        return self

    def __itruediv__(self, other):
        self[...] = self / other
        return self

    def __neg__(self):
        return self._bind("neg", self)

    def __abs__(self):
        return self._bind("abs", self)

    def __invert__(self):
        return self._bind("not", self)

    # ---- NumPy protocols ----
    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        from .numpy_api import ufunc as apply
        return apply(self, ufunc, method, inputs, out, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from .numpy_api import function
        return function(self, func, args, kwargs)


def is_device(x: Any) -> bool:
    return type(x) is DeviceArray
