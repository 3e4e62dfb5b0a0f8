"""Matrix products on the device: a tiled kernel (local memory + a register block of outputs per
work-item) for 2-D and batched products, with transposed-operand flags, and the book's naive kernel
(listing 10-3) kept only as the benchmark's baseline."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyopencl as cl
import pyopencl.array as cla

from .programs import check_dtype, dtype_options, kernel, round_up


@dataclass(frozen=True)  # not attrs: bench/opencl_bench.py runs this module with only numpy + pyopencl
class Tiling:
    """One tile shape of kernels/gemm.cl: a work-group computes tsm x tsn of C with
    (tsm/wptm) x (tsn/wptn) work-items, stepping tsk along K through local memory."""
    tsm: int
    tsn: int
    tsk: int
    wptm: int
    wptn: int

    @property
    def local_size(self) -> tuple[int, int, int]:
        return self.tsn // self.wptn, self.tsm // self.wptm, 1

    def options(self) -> tuple[str, ...]:
        return (f"-DTSM={self.tsm}", f"-DTSN={self.tsn}", f"-DTSK={self.tsk}",
                f"-DWPTM={self.wptm}", f"-DWPTN={self.wptn}")


# Measured on PoCL (2-core EPYC) and an NVIDIA H200 (bench/README.md): CPUs do best with big
# work-groups of big tiles, the GPU with 64 work-items of 8 x 8 outputs each (20 TFLOP/s at 2048).
LARGE = Tiling(128, 128, 16, 8, 8)  # 256 work-items, 64 outputs each (8 rows x a vector of 8 columns)
BLOCK64 = Tiling(64, 64, 16, 8, 8)  # 64 work-items, 64 outputs each
MEDIUM = Tiling(64, 64, 16, 4, 4)   # 256 work-items, 16 outputs each
SMALL = Tiling(32, 32, 16, 2, 2)    # 256 work-items, 4 outputs each
TINY = Tiling(16, 16, 16, 2, 2)     # 64 work-items: devices with small work-groups
TILINGS = (LARGE, BLOCK64, MEDIUM, SMALL, TINY)
CPU_ORDER = (LARGE, MEDIUM, SMALL, TINY)
GPU_ORDER = (BLOCK64, MEDIUM, SMALL, TINY)


def _groups(t: Tiling, m: int, n: int, batch: int) -> int:
    return -(-m // t.tsm) * -(-n // t.tsn) * batch


def choose_tiling(device: cl.Device, m: int, n: int, batch: int = 1, dtype=np.float32) -> Tiling:
    """The largest tiling that still gives every compute unit a work-group (big tiles reuse each
    loaded element more; too few groups leave the device idle), within the device's limits.
    Doubles skip the 8 x 8 blocks: 64 f64 accumulators per work-item spill, and double8 is no CPU vector."""
    order = GPU_ORDER if device.type & cl.device_type.GPU else CPU_ORDER
    fits = [t for t in order if t.local_size[0] * t.local_size[1] <= device.max_work_group_size
            and not (t.wptm * t.wptn >= 64 and np.dtype(dtype) == np.float64)]
    if not fits:
        raise RuntimeError(f"the OpenCL device {device.name!r} runs at most {device.max_work_group_size} "
                           "work-items per group")
    for t in fits:
        if _groups(t, m, n, batch) >= device.max_compute_units:
            return t
    return fits[-1]


def choose_splits(device: cl.Device, t: Tiling, m: int, n: int, k: int, batch: int) -> int:
    """Split-K for products with few outputs and a long K (a convolution's filter gradient:
    [kh*kw*cin, cout] from K = batch*OH*OW): enough pieces to fill the device, each >= 512 long."""
    groups = _groups(t, m, n, batch)
    want = 2 * device.max_compute_units
    if groups >= want or k < 1024:
        return 1
    return int(max(1, min(-(-want // groups), k // 512)))


def _elems(offset_bytes: int, dtype) -> int:
    return offset_bytes // np.dtype(dtype).itemsize


def _check_2d_contiguous(x: cla.Array, what: str) -> None:
    if not x.flags.c_contiguous:
        raise ValueError(f"{what} must be C-contiguous, got strides {x.strides}")


def batched_matmul(queue: cl.CommandQueue, a: cla.Array, b: cla.Array, out: cla.Array | None = None,
                   allocator=None, trans_a: bool = False, trans_b: bool = False,
                   tiling: Tiling | None = None, splits: int | None = None) -> cla.Array:
    """C[i] = op(a[i]) @ op(b[i]) for a [B, m, k] and b [B, k, n] (op = transpose of the last two axes
    when trans_a / trans_b: then a is [B, k, m], b is [B, n, k]). Either operand may be 2-D: it is
    shared by every batch item without a copy. Returns C [B, m, n]."""
    if a.dtype != b.dtype:
        raise TypeError(f"matmul operands differ in dtype: {a.dtype} and {b.dtype}")
    check_dtype(queue, a.dtype)
    if a.ndim not in (2, 3) or b.ndim not in (2, 3) or max(a.ndim, b.ndim) != 3:
        raise ValueError(f"batched_matmul needs [B, m, k] and [B, k, n] operands, got {a.shape} and {b.shape}")
    _check_2d_contiguous(a, "a")
    _check_2d_contiguous(b, "b")
    nb = a.shape[0] if a.ndim == 3 else b.shape[0]
    if a.ndim == 3 and b.ndim == 3 and a.shape[0] != b.shape[0]:
        raise ValueError(f"batch sizes differ: {a.shape} and {b.shape}")
    am, ak = a.shape[-2:] if not trans_a else a.shape[-2:][::-1]
    bk, bn = b.shape[-2:] if not trans_b else b.shape[-2:][::-1]
    if ak != bk:
        raise ValueError(f"matmul inner dimensions differ: {a.shape} (trans_a={trans_a}) and "
                         f"{b.shape} (trans_b={trans_b})")
    m, n, k = am, bn, ak
    if out is None:
        out = cla.empty(queue, (nb, m, n), a.dtype, allocator=allocator)
    elif out.shape != (nb, m, n) or out.dtype != a.dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous {a.dtype} array of shape {(nb, m, n)}")
    if m == 0 or n == 0 or nb == 0:
        return out
    if k == 0:
        out.fill(0)
        return out
    t = tiling or choose_tiling(queue.device, m, n, nb, a.dtype)
    splits = max(1, min(splits or choose_splits(queue.device, t, m, n, k, nb), k))
    if splits == 1:
        _launch(queue, t, a, b, out, m, n, k, nb, trans_a, trans_b, 1, k)
        return out
    chunk = -(-k // splits)
    splits = -(-k // chunk)
    partial = cla.empty(queue, (nb * splits, m, n), a.dtype, allocator=allocator)
    _launch(queue, t, a, b, partial, m, n, k, nb, trans_a, trans_b, splits, chunk)
    from .reduce import (
        reduce,  # here: the benchmark imports this module without reduce's dependencies
    )
    reduce(queue, partial.reshape(nb, splits, m * n), "sum", (1,), allocator=allocator,
           out=out.reshape(nb, m * n))
    return out


def matmul(queue: cl.CommandQueue, a: cla.Array, b: cla.Array, out: cla.Array | None = None,
           allocator=None, trans_a: bool = False, trans_b: bool = False,
           tiling: Tiling | None = None, splits: int | None = None) -> cla.Array:
    """C = op(a) @ op(b) for 2-D operands of any sizes: a [m, k] (or [k, m] with trans_a),
    b [k, n] (or [n, k] with trans_b). Returns C [m, n]. `tiling` and `splits` (pieces of K summed
    afterwards) are chosen from the shapes and the device unless given."""
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul needs 2-D operands, got {a.shape} and {b.shape}")
    out3 = None if out is None else out.reshape((1,) + out.shape)
    c = batched_matmul(queue, a.reshape((1,) + a.shape), b.reshape((1,) + b.shape), out3, allocator,
                       trans_a, trans_b, tiling, splits)
    return c.reshape(c.shape[1:])


def _launch(queue, t: Tiling, a, b, out, m, n, k, nb, trans_a, trans_b, splits: int, chunk: int) -> None:
    opts = dtype_options(a.dtype) + (f"-DTRANS_A={int(trans_a)}", f"-DTRANS_B={int(trans_b)}") + t.options()
    knl = kernel(queue.context, "gemm", "gemm_tiled", opts)
    lda, ldb = a.shape[-1], b.shape[-1]
    a_batch = a.shape[-2] * a.shape[-1] if a.ndim == 3 else 0
    b_batch = b.shape[-2] * b.shape[-1] if b.ndim == 3 else 0
    lx, ly, _ = t.local_size
    gsize = (round_up(n, t.tsn) // t.wptn, round_up(m, t.tsm) // t.wptm, nb * splits)
    i32, i64 = np.int32, np.int64
    knl(queue, gsize, (lx, ly, 1), i32(m), i32(n), i32(k),
        a.base_data, i64(_elems(a.offset, a.dtype)), i32(lda), i64(a_batch),
        b.base_data, i64(_elems(b.offset, b.dtype)), i32(ldb), i64(b_batch),
        out.base_data, i64(_elems(out.offset, out.dtype)), i32(n), i64(m * n), i32(splits), i32(chunk))


def naive_matmul(queue: cl.CommandQueue, a: cla.Array, b: cla.Array, out: cla.Array | None = None,
                 allocator=None) -> cla.Array:
    """The book's listing 10-3 (one work-item per element of C, no local memory): the baseline the
    tiled kernel is measured against. Not used by the backend."""
    (m, k), (k2, n) = a.shape, b.shape
    if k != k2 or a.dtype != b.dtype:
        raise ValueError(f"naive_matmul: cannot multiply {a.shape} {a.dtype} by {b.shape} {b.dtype}")
    check_dtype(queue, a.dtype)
    if out is None:
        out = cla.empty(queue, (m, n), a.dtype, allocator=allocator)
    knl = kernel(queue.context, "gemm", "gemm_naive", dtype_options(a.dtype))
    knl(queue, (n, m), None, np.int32(m), np.int32(n), np.int32(k), a.data, b.data, out.data)
    return out
