"""The OpenCL backend: a device, its queue and buffer pool, and the per-primitive kernel table.

`KERNELS[name](backend, *operands, **params)` is the OpenCL counterpart of the NumPy kernel
`primitives.REGISTRY[name].impl`; `ops.bind` calls it when an operand is a `DeviceArray`.
Operands may mix device arrays and host values: 0-d host values become kernel arguments,
bigger ones are uploaded (constants of the program; data batches are uploaded by Program).
Context primitives (random draws, `training`) take the evaluation context too.
Every primitive of the runtime has an entry (tests/opencl/test_parity.py checks them all);
`check_module` refuses, at Program construction, a module using one that has not.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pyopencl as cl
import pyopencl.tools as cl_tools

from ..runtime import ops
from ..runtime.types import NUMPY_DTYPE
from . import devices, gemm, lazy, programs, reduce
from .array import TRANSFERS, DeviceArray
from .strided import View, broadcast, permute, run_map, sliced, view

Kernel = Callable[..., Any]
FUSE = True  # defer elementwise primitives and fuse their chains (lazy.py)
KERNELS: dict[str, Kernel] = {}
ops.DEVICE_TYPES.add(DeviceArray)


def kernel(*names: str, context: bool = False):
    """Register the OpenCL kernel of primitives `names`."""
    def register(fn: Kernel) -> Kernel:
        for n in names:
            KERNELS[n] = fn
        return fn
    return register


class Backend:
    """One OpenCL device: context, in-order queue, pooled allocator (freed buffers are reused)."""

    def __init__(self, device, info: devices.DeviceInfo):
        self.device, self.info = device, info
        self.context = cl.Context([device])
        self.queue = cl.CommandQueue(self.context)
        self.pool = cl_tools.MemoryPool(cl_tools.ImmediateAllocator(self.queue))
        self.fp64 = info.fp64

    # ---- buffers ----
    def empty(self, shape, dtype) -> DeviceArray:
        dtype = np.dtype(dtype)
        if dtype == np.float64 and not self.fp64:
            raise TypeError(f"the OpenCL device {self.info.name!r} has no f64 support (cl_khr_fp64)")
        shape = tuple(int(d) for d in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        return DeviceArray(self.pool.allocate(max(nbytes, 1)), shape, dtype, self)

    def upload(self, value: Any) -> DeviceArray:
        arr = np.asarray(value)
        if not arr.flags.c_contiguous:
            arr = arr.copy()
        out = self.empty(arr.shape, arr.dtype)
        if arr.size:
            TRANSFERS["to_device"] += 1
            cl.enqueue_copy(self.queue, out.buffer, arr)  # blocking: `arr` may be freed after
        return out

    def download(self, x: DeviceArray) -> np.ndarray:
        host = np.empty(x.shape, x.dtype)
        if host.size:
            cl.enqueue_copy(self.queue, host, x.buffer)  # blocking: waits for the kernels before it
        return host

    def cl_array(self, x: DeviceArray):
        """x as a pyopencl array over the same buffer (what gemm.py and reduce.py take)."""
        import pyopencl.array as cla
        return cla.Array(self.queue, x.shape, x.dtype, data=x.buffer)

    def copy(self, x: DeviceArray) -> DeviceArray:
        out = self.empty(x.shape, x.dtype)
        if x.size:
            cl.enqueue_copy(self.queue, out.buffer, x.buffer, byte_count=x.nbytes)
        return out

    def to_device(self, x: Any) -> DeviceArray:
        return x if type(x) is DeviceArray else self.upload(np.asarray(x))

    def launch(self, knl, n: int, args: list[Any]) -> None:
        knl(self.queue, (int(n),), None, *args)

    def run(self, prim: str, operands, params: dict[str, Any], ctx: Any = None) -> Any:
        """A primitive without device operands (fill, iota, random draws) made on this device."""
        fn = KERNELS[prim]
        return fn(self, ctx, *operands, **params) if prim in CONTEXT else fn(self, *operands, **params)

    def bound(self, prim: str) -> Kernel:
        fn = KERNELS.get(prim)
        if fn is None:
            raise NotImplementedError(f"`{prim}` has no OpenCL kernel")
        return lambda *args, **params: fn(self, *args, **params)

    # ---- ndarray-like indexing on device arrays ----
    def getitem(self, a: DeviceArray, key) -> DeviceArray:
        key = key if isinstance(key, tuple) else (key,)
        if any(isinstance(k, (DeviceArray, np.ndarray, list)) for k in key):
            (axis, ids), = [(i, k) for i, k in enumerate(key) if isinstance(k, (DeviceArray, np.ndarray, list))]
            return ops.bind("gather", a, ids if isinstance(ids, DeviceArray) else np.asarray(ids), axis=axis)
        real = sum(1 for k in key if k is not None and k is not Ellipsis)
        if any(k is Ellipsis for k in key):
            i = next(j for j, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (a.ndim - real) + key[i + 1:]
        key = key + (slice(None),) * (a.ndim - real - (0 if Ellipsis in key else 0))
        key = key[:len(key) - max(0, sum(1 for k in key if k is not None) - a.ndim)]
        starts, stops, steps, shape = [], [], [], []
        axis = 0
        for k in key:
            if k is None:  # a new axis of size 1
                shape.append(1)
                continue
            d = a.shape[axis]
            if isinstance(k, slice):
                s0, s1, st = k.indices(d)
                starts.append(s0), stops.append(s1), steps.append(st)
                shape.append(len(range(s0, s1, st)))
            else:
                k = int(k) % d
                starts.append(k), stops.append(k + 1), steps.append(1)
            axis += 1
        out = a
        if any(s0 != 0 or s1 != d or st != 1 for s0, s1, st, d in zip(starts, stops, steps, a.shape)):
            out = ops.bind("slice", a, starts=tuple(starts), stops=tuple(stops), steps=tuple(steps))
        if tuple(shape) != out.shape:
            out = ops.bind("reshape", out, shape=tuple(shape))
        return out

    def setitem(self, a: DeviceArray, key, value) -> None:
        """a[key] = value in place, for basic indexing (ints, slices, Ellipsis)."""
        target = _basic_view(a, key)
        operand = value if type(value) is DeviceArray else np.asarray(value, dtype=a.dtype)
        if isinstance(operand, np.ndarray) and operand.ndim:
            operand = self.upload(operand)
        lazy.before_write(a, keep=operand if type(operand) is DeviceArray else None)
        if FUSE and type(operand) is DeviceArray and operand.dtype == a.dtype and lazy.write(self, target, operand):
            return  # the fused chain was written straight into `a`
        run_map(self, "a0" if operand.dtype == a.dtype else _cast_expr(operand.dtype, a.dtype),
                target, [_operand(operand, target.shape)])


def _basic_view(a: DeviceArray, key) -> View:
    key = key if isinstance(key, tuple) else (key,)
    if any(k is None or isinstance(k, (DeviceArray, np.ndarray, list)) for k in key):
        raise TypeError("assignment into a device array takes ints, slices and `...` only")
    if any(k is Ellipsis for k in key):
        i = next(j for j, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (a.ndim - len(key) + 1) + key[i + 1:]
    key = key + (slice(None),) * (a.ndim - len(key))
    v = view(a)
    offset, shape, strides = v.offset, [], []
    for k, d, st in zip(key, a.shape, v.strides):
        if isinstance(k, slice):
            s0, s1, step = k.indices(d)
            offset += s0 * st
            shape.append(len(range(s0, s1, step)))
            strides.append(st * step)
        else:
            offset += (int(k) % d) * st
    return View(a, offset, tuple(shape), tuple(strides))


def _operand(x: Any, shape: tuple[int, ...]) -> View | np.ndarray:
    """A map operand: a device array seen broadcast to `shape`, or a 0-d host value."""
    if type(x) is DeviceArray:
        return broadcast(view(x), shape)
    return np.asarray(x)


_BACKENDS: dict[str, Backend] = {}


def get_backend(spec: str = "opencl") -> Backend:
    """The backend of `opencl` or `opencl:P:D` (one per device, made on first use)."""
    device, info = devices.choose(spec)
    key = f"{info.platform_index}:{info.device_index}"
    if key not in _BACKENDS:
        _BACKENDS[key] = Backend(device, info)
    return _BACKENDS[key]


def _dev_operand(be: Backend, x: Any, shape) -> View | np.ndarray:
    if type(x) is DeviceArray:
        return broadcast(view(x), shape)
    arr = np.asarray(x)
    if arr.ndim == 0:
        return arr
    return broadcast(view(be.upload(arr)), shape)


def _out_shape(*xs) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(*(np.shape(x) if type(x) is not DeviceArray else x.shape for x in xs)))


# ---------------------------------------------------------------- elementwise
F = "float"  # marks rules whose expression differs between floats and integers

UNARY_C = {
    "neg": "-a0", "abs": "(a0 < 0 ? -a0 : a0)", "sign": "((a0 > 0) - (a0 < 0))", "exp": "exp(a0)",
    "log": "log(a0)", "log1p": "log1p(a0)", "expm1": "expm1(a0)", "sqrt": "sqrt(a0)", "sin": "sin(a0)",
    "cos": "cos(a0)", "tanh": "tanh(a0)", "logistic": "(0.5 * tanh(0.5 * a0) + 0.5)", "floor": "floor(a0)",
    "ceil": "ceil(a0)", "round": "rint(a0)", "not": "!a0", "stop_gradient": "a0",
}
BINARY_C = {
    "add": "a0 + a1", "sub": "a0 - a1", "mul": "a0 * a1", "pow": "pow(a0, a1)",
    "maximum": "((isnan(a0) || a0 > a1) ? a0 : a1)", "minimum": "((isnan(a0) || a0 < a1) ? a0 : a1)",
    "lt": "a0 < a1", "le": "a0 <= a1", "gt": "a0 > a1", "ge": "a0 >= a1", "eq": "a0 == a1", "ne": "a0 != a1",
    "and": "a0 && a1", "or": "a0 || a1",
    "div": "a0 / a1", "mod": "wg_mod(a0, a1)",
}
INT_C = {  # integer versions where C differs from NumPy
    "maximum": "(a0 > a1 ? a0 : a1)", "minimum": "(a0 < a1 ? a0 : a1)",
    # NumPy gives 0 for an integer division by 0 (a CPU device would trap)
    "div": "(a1 == 0 ? 0 : a0 / a1 - ((a0 % a1 != 0) && ((a0 < 0) != (a1 < 0))))", "mod": "wg_mod(a0, a1)",
    "pow": "wg_ipow(a0, a1)",
}
COMPARE = {"lt", "le", "gt", "ge", "eq", "ne", "and", "or", "not"}


def _prelude(dtype: np.dtype) -> str:
    t = programs.c_type(dtype)
    if dtype.kind == "f":
        return (f"inline {t} wg_mod_{t}({t} a, {t} b) {{ {t} r = fmod(a, b); "
                f"return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r; }}")
    return (f"inline {t} wg_mod_{t}({t} a, {t} b) {{ if (b == 0) return 0; {t} r = a % b; "
            f"return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r; }}\n"
            f"inline {t} wg_ipow_{t}({t} a, {t} b) {{ {t} r = 1; for ({t} i = 0; i < b; ++i) r *= a; return r; }}")


def _cast_expr(src: np.dtype, dst: np.dtype) -> str:
    if dst == np.bool_:
        return "a0 != 0"
    return "a0"


def _elementwise(prim: str, expr: str):
    def run(be: Backend, *xs):
        shape = _out_shape(*xs)
        dtype = next(x.dtype for x in xs if type(x) is DeviceArray)
        if prim == "where":
            dtype = xs[1].dtype
        elif any(x.dtype != dtype for x in xs if prim != "where"):
            dtype = np.result_type(*(x.dtype for x in xs))
        out_dtype = np.dtype(np.bool_) if prim in COMPARE else dtype
        e = INT_C.get(prim, expr) if dtype.kind in "iu" else expr
        if prim == "sign" and dtype.kind == "f":
            e = "(isnan(a0) ? a0 : (a0 > 0) - (a0 < 0))"
        prelude = ""
        if prim in ("mod", "pow"):
            t = programs.c_type(dtype)
            e, prelude = e.replace("wg_mod(", f"wg_mod_{t}(").replace("wg_ipow(", f"wg_ipow_{t}("), _prelude(dtype)
        return _map(be, e, shape, out_dtype, xs, prelude)
    return run


def _map(be: Backend, expr: str, shape, dtype, xs, prelude: str = "") -> DeviceArray:
    """An elementwise result: deferred (fused with its elementwise consumers) or computed now."""
    if FUSE:
        return lazy.deferred(be, expr, tuple(shape), dtype, [x if type(x) is DeviceArray or np.ndim(x) == 0
                                                            else be.upload(np.asarray(x)) for x in xs], prelude)
    out = be.empty(shape, dtype)
    run_map(be, expr, view(out), [_dev_operand(be, x, shape) for x in xs], prelude)
    return out


for _name, _expr in UNARY_C.items():
    kernel(_name)(_elementwise(_name, _expr))
for _name, _expr in BINARY_C.items():
    kernel(_name)(_elementwise(_name, _expr))
kernel("where")(_elementwise("where", "a0 ? a1 : a2"))


@kernel("cast")
def _cast(be: Backend, x, *, dtype: str):
    dst = np.dtype(NUMPY_DTYPE[dtype])
    x = be.to_device(x)
    if dst == x.dtype:
        return x
    return _map(be, _cast_expr(x.dtype, dst), x.shape, dst, [x])


@kernel("const")
def _const(be: Backend, *, value, weak=False):
    return value if np.ndim(value) == 0 else be.upload(value)  # scalars stay kernel arguments


@kernel("fill")
def _fill(be: Backend, *, shape, value, dtype, weak=False):
    dt = np.dtype(NUMPY_DTYPE[dtype])
    return _map(be, "a0", tuple(shape), dt, [np.asarray(value, dtype=dt)])


@kernel("iota")
def _iota(be: Backend, *, shape, axis, dtype):
    out = be.empty(shape, NUMPY_DTYPE[dtype])
    if out.size:
        ramp = be.empty((shape[axis],), out.dtype)
        knl = programs.kernel(be.context, f"__kernel void ramp(__global {programs.c_type(out.dtype)}* o) "
                              f"{{ long i = get_global_id(0); o[i] = i; }}", "ramp",
                              ("-DENABLE_FP64=1",) if out.dtype == np.float64 else ())
        be.launch(knl, shape[axis], [ramp.buffer])
        v = view(ramp)
        bview = View(ramp, 0, tuple(shape), tuple(v.strides[0] if i == axis else 0 for i in range(len(shape))))
        run_map(be, "a0", view(out), [bview])
    return out


@kernel("dimsize")
def _dimsize(be: Backend, *, dim):
    return np.asarray(dim, dtype=np.int64)  # a host scalar: it only ever feeds kernel arguments


# ---------------------------------------------------------------- reductions
def _reduction(kind: str):
    def run(be: Backend, x, *, axes, keepdims=False):
        x = be.to_device(x)
        axes, shape = tuple(axes), x.shape
        kept = [i for i in range(x.ndim) if i not in axes]
        kept_shape = tuple(x.shape[i] for i in kept)
        if kind in ("max", "min", "argmax") and any(x.shape[a] == 0 for a in axes):
            raise ValueError(f"zero-size array to reduction operation {kind} which has no identity")
        if not axes:
            out = be.copy(x)
        elif x.size == 0:  # the empty sum is 0, the empty product 1
            out = _zeros(be, kept_shape, x.dtype, 1 if kind == "prod" else 0)
        else:  # work-group tree reductions in local memory (reduce.py) over adjacent axes
            moved = axes
            if not reduce.adjacent(x.shape, axes):  # one strided copy moves them to the end
                x = _materialize(be, permute(view(x), kept + list(axes)))
                moved = tuple(range(len(kept), x.ndim))
            if kind == "argmax":
                r = reduce.argmax(be.queue, be.cl_array(x), moved[0], allocator=be.pool)
                out = DeviceArray(r.base_data, tuple(r.shape), np.int64, be)
            else:
                out = be.empty(kept_shape, x.dtype)
                reduce.reduce(be.queue, be.cl_array(x), kind, moved, allocator=be.pool, out=be.cl_array(out))
        if keepdims:
            out = out.with_shape(tuple(1 if i in axes else d for i, d in enumerate(shape)))
        return out
    return run


for _name, _kind in {"reduce_sum": "sum", "reduce_max": "max", "reduce_min": "min", "reduce_prod": "prod",
                     "argmax": "argmax"}.items():
    kernel(_name)(_reduction(_kind))


@kernel("prod_of_others")
def _prod_of_others(be: Backend, x, *, axes):
    """For each element, the product of the other elements of its group (no division)."""
    x = be.to_device(x)
    keep = [i for i in range(x.ndim) if i not in axes]
    perm = keep + list(axes)
    moved = _materialize(be, permute(view(x), perm))
    k = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    rows = moved.size // max(k, 1)
    out = be.empty(moved.shape, x.dtype)
    t = programs.c_type(x.dtype)
    src = (f"__kernel void others(long k, __global const {t}* x, __global {t}* o) {{\n"
           f"  long i = get_global_id(0); long row = i / k; long me = i % k; {t} acc = 1;\n"
           f"  for (long j = 0; j < k; ++j) if (j != me) acc *= x[row * k + j];\n  o[i] = acc; }}")
    if out.size:
        knl = programs.kernel(be.context, src, "others", ("-DENABLE_FP64=1",) if x.dtype == np.float64 else ())
        be.launch(knl, rows * k, [np.int64(k), moved.buffer, out.buffer])
    return _materialize(be, permute(view(out), list(np.argsort(perm))))


# ---------------------------------------------------------------- shapes
def _materialize(be: Backend, v: View) -> DeviceArray:
    """A strided view as an array of its own (deferred: a transpose or slice fuses into its consumer)."""
    if FUSE:
        return lazy.of_leaves(be, "@0@", v.shape, v.dtype, [v])
    out = be.empty(v.shape, v.dtype)
    run_map(be, "a0", view(out), [v])
    return out


@kernel("reshape")
def _reshape(be: Backend, x, *, shape):
    x = be.to_device(x)
    shape = tuple(int(d) for d in shape)
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        shape = tuple(x.size // known if d == -1 else d for d in shape)
    if int(np.prod(shape, dtype=np.int64)) != x.size:
        raise ValueError(f"cannot reshape array of size {x.size} into shape {shape}")
    return x.with_shape(shape)  # contiguous: no copy


@kernel("transpose")
def _transpose(be: Backend, x, *, perm):
    return _materialize(be, permute(view(be.to_device(x)), perm))


@kernel("broadcast_to")
def _broadcast_to(be: Backend, x, *, shape):
    x = be.to_device(x)
    if tuple(x.shape) == tuple(shape):
        return x
    return _materialize(be, broadcast(view(x), tuple(shape)))


@kernel("slice")
def _slice(be: Backend, x, *, starts, stops, steps):
    return _materialize(be, sliced(view(be.to_device(x)), starts, stops, steps))


def _zeros(be: Backend, shape, dtype, value=0) -> DeviceArray:
    out = be.empty(shape, dtype)
    run_map(be, "a0", view(out), [np.asarray(value, dtype=out.dtype)])
    return out


def _write(be: Backend, target: View, source) -> None:
    run_map(be, "a0", target, [_dev_operand(be, source, target.shape)])


@kernel("unslice")
def _unslice(be: Backend, g, *, shape, starts, stops, steps):
    g = be.to_device(g)
    out = _zeros(be, shape, g.dtype)
    _write(be, sliced(view(out), starts, stops, steps), g)
    return out


@kernel("pad")
def _pad(be: Backend, x, *, widths, value=0):
    x = be.to_device(x)
    shape = tuple(d + lo + hi for d, (lo, hi) in zip(x.shape, widths))
    out = _zeros(be, shape, x.dtype, value)
    _write(be, sliced(view(out), [lo for lo, _ in widths], [lo + d for (lo, _), d in zip(widths, x.shape)],
                      [1] * x.ndim), x)
    return out


@kernel("concat")
def _concat(be: Backend, *xs, axis):
    xs = [be.to_device(x) for x in xs]
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    out = be.empty(shape, xs[0].dtype)
    start = 0
    for x in xs:
        n = x.shape[axis]
        starts = [start if i == axis else 0 for i in range(len(shape))]
        stops = [start + n if i == axis else d for i, d in enumerate(shape)]
        _write(be, sliced(view(out), starts, stops, [1] * len(shape)), x)
        start += n
    return out


@kernel("index")
def _index(be: Backend, x, i, *, axis):
    x = be.to_device(x)
    n = x.shape[axis]
    k = int(i)
    if not -n <= k < n:
        raise IndexError(f"index {k} is out of range for axis {axis} of size {n}")
    k %= n
    v = sliced(view(x), [k if a == axis else 0 for a in range(x.ndim)],
               [k + 1 if a == axis else d for a, d in enumerate(x.shape)], [1] * x.ndim)
    v = View(v.array, v.offset, v.shape[:axis] + v.shape[axis + 1:], v.strides[:axis] + v.strides[axis + 1:])
    return _materialize(be, v)


def _ids(be: Backend, ids, n: int, axis: int) -> DeviceArray:
    """Indices as an i64 device array, bounds-checked as on the CPU: host ones directly, device
    ones by their min and max, reduced on the device (two scalars come back)."""
    if type(ids) is not DeviceArray:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size:
            _check_ids(int(ids.min()), int(ids.max()), n, axis)
        return be.upload(ids)
    ids = ids if ids.dtype == np.int64 else _cast(be, ids, dtype="i64")
    if ids.size:
        every = tuple(range(ids.ndim))
        lo, hi = (be.download(KERNELS[r](be, ids, axes=every)) for r in ("reduce_min", "reduce_max"))
        _check_ids(int(lo), int(hi), n, axis)
    return ids


def _check_ids(lo: int, hi: int, n: int, axis: int) -> None:
    if lo < -n or hi >= n:
        raise IndexError(f"index {hi if hi >= n else lo} is out of range for axis {axis} of size {n}")


@kernel("gather")
def _gather(be: Backend, x, ids, *, axis):
    x = be.to_device(x)
    n = x.shape[axis]
    ids = _ids(be, ids, n, axis)
    post = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    out = be.empty(x.shape[:axis] + ids.shape + x.shape[axis + 1:], x.dtype)
    t = programs.c_type(x.dtype)
    src = (f"__kernel void gather(long m, long n, long post, __global const {t}* x, __global const long* ids,"
           f" __global {t}* o) {{\n  long i = get_global_id(0); long q = i % post; long r = i / post;\n"
           f"  long j = r % m; long p = r / m; long k = ids[j]; if (k < 0) k += n;\n"
           f"  o[i] = (k >= 0 && k < n) ? x[(p * n + k) * post + q] : 0; }}")
    if out.size:
        knl = programs.kernel(be.context, src, "gather", ("-DENABLE_FP64=1",) if x.dtype == np.float64 else ())
        be.launch(knl, out.size, [np.int64(ids.size), np.int64(n), np.int64(post), x.buffer,
                                  ids.buffer, out.buffer])
    return out


@kernel("scatter")
def _scatter(be: Backend, g, ids, *, shape, axis, scalar):
    """The transpose of index/gather: each output row sums the rows of g whose id is its index
    (a gather formulation, deterministic: no atomics)."""
    g = be.to_device(g)
    n = shape[axis]
    ids = _ids(be, np.asarray(ids).reshape(1) if scalar and type(ids) is not DeviceArray else ids, n, axis)
    m = ids.size
    post = int(np.prod(shape[axis + 1:], dtype=np.int64))
    out = be.empty(shape, g.dtype)
    t = programs.c_type(g.dtype)
    src = (f"__kernel void scatter(long m, long n, long post, __global const {t}* g, __global const long* ids,"
           f" __global {t}* o) {{\n  long i = get_global_id(0); long q = i % post; long r = i / post;\n"
           f"  long k = r % n; long p = r / n; {t} acc = 0;\n"
           f"  for (long j = 0; j < m; ++j) {{ long id = ids[j]; if (id < 0) id += n;\n"
           f"    if (id == k) acc += g[(p * m + j) * post + q]; }}\n  o[i] = acc; }}")
    if out.size:
        knl = programs.kernel(be.context, src, "scatter", ("-DENABLE_FP64=1",) if g.dtype == np.float64 else ())
        be.launch(knl, out.size, [np.int64(m), np.int64(n), np.int64(post), g.buffer,
                                  ids.buffer, out.buffer])
    return out


# ---------------------------------------------------------------- matrix product
def _matmul_views(be: Backend, a: DeviceArray, b: DeviceArray) -> tuple[View, View, tuple[int, ...], tuple]:
    """numpy.matmul's promotion and broadcasting as views: (a [..., M, K], b [..., K, N], batch, out shape)."""
    va, vb = view(a), view(b)
    if a.ndim == 1:
        va = View(a, 0, (1,) + a.shape, (0,) + va.strides)
    if b.ndim == 1:
        vb = View(b, 0, b.shape + (1,), vb.strides + (0,))
    batch = tuple(np.broadcast_shapes(va.shape[:-2], vb.shape[:-2]))
    va = broadcast(va, batch + va.shape[-2:])
    vb = broadcast(vb, batch + vb.shape[-2:])
    out = batch + ((va.shape[-2],) if a.ndim > 1 else ()) + ((vb.shape[-1],) if b.ndim > 1 else ())
    return va, vb, batch, out


def _gemm_operand(be: Backend, v: View):
    """A [B, R, C] view as gemm.py takes it: (pyopencl array, transposed), or None when its
    strides are neither row- nor column-major (then the strided kernel below runs)."""
    import pyopencl.array as cla
    b, r, c = v.shape
    sb, sr, sc = v.strides
    if (sc == 1 or c == 1) and (sr == c or r == 1):
        shape, trans = (r, c), False
    elif (sr == 1 or r == 1) and (sc == r or c == 1):
        shape, trans = (c, r), True
    else:
        return None
    if b > 1 and sb != 0:
        if sb != r * c:
            return None
        shape = (b,) + shape
    arr = cla.Array(be.queue, shape, v.dtype, data=v.array.buffer, offset=v.offset * v.dtype.itemsize)
    return arr, trans


def strided_matmul(be: Backend, va: View, vb: View, out: DeviceArray) -> None:
    """out[batch, M, N] = va[batch, M, K] @ vb[batch, K, N] (batch axes merged in the caller): the
    register-blocked tiled GEMM of gemm.py when both operands are row- or column-major, else a
    16x16-tiled kernel over arbitrary strides."""
    import pyopencl.array as cla
    bsz, m, k = va.shape
    ga, gb = _gemm_operand(be, va), _gemm_operand(be, vb)
    if ga is not None and gb is not None and (bsz == 1 or max(ga[0].ndim, gb[0].ndim) == 3):
        (a, ta), (b, tb) = ga, gb
        if a.ndim == 2 and b.ndim == 2:
            a = a.reshape((1,) + a.shape)
        c = cla.Array(be.queue, (bsz, m, vb.shape[2]), out.dtype, data=out.buffer)
        gemm.batched_matmul(be.queue, a, b, out=c, allocator=be.pool, trans_a=ta, trans_b=tb)
        return
    n = vb.shape[2]
    t = programs.c_type(out.dtype)
    src = MATMUL_SOURCE.replace("REAL", t)
    knl = programs.kernel(be.context, src, "matmul", ("-DENABLE_FP64=1",) if out.dtype == np.float64 else ())
    ts = 16
    gm, gn = -(-m // ts) * ts, -(-n // ts) * ts
    args = [np.int64(m), np.int64(n), np.int64(k),
            va.array.buffer, np.int64(va.offset), *(np.int64(s) for s in va.strides),
            vb.array.buffer, np.int64(vb.offset), *(np.int64(s) for s in vb.strides),
            out.buffer]
    knl(be.queue, (gn, gm, bsz), (ts, ts, 1), *args)


MATMUL_SOURCE = """
#define TS 16
__kernel void matmul(long M, long N, long K,
                     __global const REAL* A, long ao, long asb, long asr, long ask,
                     __global const REAL* B, long bo, long bsb, long bsk, long bsn,
                     __global REAL* C) {
    __local REAL As[TS][TS];
    __local REAL Bs[TS][TS + 1];
    int tx = get_local_id(0), ty = get_local_id(1);
    long col = get_global_id(0), row = get_global_id(1), bt = get_global_id(2);
    long abase = ao + bt * asb, bbase = bo + bt * bsb;
    REAL acc = 0;
    for (long k0 = 0; k0 < K; k0 += TS) {
        long ka = k0 + tx, kb = k0 + ty;
        As[ty][tx] = (row < M && ka < K) ? A[abase + row * asr + ka * ask] : (REAL)0;
        Bs[ty][tx] = (kb < K && col < N) ? B[bbase + kb * bsk + col * bsn] : (REAL)0;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < TS; ++kk) acc += As[ty][kk] * Bs[kk][tx];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (row < M && col < N) C[(bt * M + row) * N + col] = acc;
}
"""


def _flatten_batch(v: View, batch: tuple[int, ...]) -> View | None:
    """A view [*batch, M, K] as [B, M, K] when its batch axes merge into one stride."""
    if not batch:
        return View(v.array, v.offset, (1,) + v.shape[-2:], (0,) + v.strides[-2:])
    strides = v.strides[:len(batch)]
    for i in range(len(batch) - 1):
        if batch[i + 1] != 1 and strides[i] != strides[i + 1] * batch[i + 1] and batch[i] != 1:
            return None
    inner = next((s for s, d in zip(reversed(strides), reversed(batch)) if d != 1), 0)
    return View(v.array, v.offset, (int(np.prod(batch)),) + v.shape[-2:], (inner,) + v.strides[-2:])


@kernel("matmul")
def _matmul(be: Backend, a, b):
    a, b = be.to_device(a), be.to_device(b)
    va, vb, batch, out_shape = _matmul_views(be, a, b)
    out = be.empty(out_shape, a.dtype)
    if out.size == 0:
        return out
    fa, fb = _flatten_batch(va, batch), _flatten_batch(vb, batch)
    if fa is None:
        fa = _flatten_batch(view(_materialize(be, va)), batch)
    if fb is None:
        fb = _flatten_batch(view(_materialize(be, vb)), batch)
    strided_matmul(be, fa, fb, out)
    return out


def matmul_views(be: Backend, va: View, vb: View) -> DeviceArray:
    """[M, K] @ [K, N] for 2-D views (used by convolution)."""
    out = be.empty((va.shape[0], vb.shape[1]), va.dtype)
    strided_matmul(be, View(va.array, va.offset, (1,) + va.shape, (0,) + va.strides),
                   View(vb.array, vb.offset, (1,) + vb.shape, (0,) + vb.strides), out)
    return out


from . import host, neural, random  # noqa: E402,F401  (they register the host round trips, convolution, pooling and random kernels)

CONTEXT = {"random_normal", "random_uniform", "random_bernoulli", "training"}


# ---------------------------------------------------------------- compile-time check
TRANSPOSES = {  # primitives that derivative rules bind, beyond the ones a module uses
    "slice": ("unslice",), "unslice": ("slice",), "index": ("scatter",), "gather": ("scatter",),
    "scatter": ("index", "gather"), "reduce_prod": ("prod_of_others",),
    "conv2d": ("conv2d_input_grad", "conv2d_filter_grad"), "maxpool2d": ("maxpool2d_grad",),
    "avgpool2d": ("avgpool2d_grad",), "pad": ("slice",), "concat": ("slice",),
}
ALWAYS = ("add", "sub", "mul", "div", "neg", "where", "reshape", "broadcast_to", "reduce_sum", "cast",
          "transpose", "fill", "sign", "cos", "sin", "log", "pow", "floor", "ne", "eq", "gt", "lt", "abs")


def missing_kernels(prims: set[str]) -> list[str]:
    """The primitives (used, or needed by the derivative rules of those used) without a kernel."""
    needed = set(prims) | set(ALWAYS)
    for p in list(needed):
        needed.update(TRANSPOSES.get(p, ()))
    return sorted(p for p in needed if p not in KERNELS and p not in ("for", "if"))


def module_prims(block) -> set[str]:
    found = set()
    for e in block.eqns:
        found.add(e.prim)
        for r in e.regions:
            found |= module_prims(r)
    return found


def module_dtypes(block) -> set[str]:
    found = set()
    for e in block.eqns:
        found.update(o.type.dtype for o in e.outputs)
        found.update(i.type.dtype for i in e.inputs)
        for r in e.regions:
            found |= module_dtypes(r)
    return found
