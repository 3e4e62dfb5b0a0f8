"""Random numbers generated on the device by Philox4x32-10 (kernels/philox.cl), a counter-based
generator: the numbers of a draw are a pure function of (key, counter, element index), so dropout
and noise need no host transfers and a seed reproduces a run exactly.

Element j of a draw comes from block j // per_block, whose 128-bit counter is
(block index: 64 bits, `counter`: 64 bits) and whose key is `key` (64 bits). Giving each draw of a
program its own `counter` (e.g. a step-and-site number) keeps draws independent whatever their sizes.
Floats use 4 words per block (24-bit uniforms), doubles 2 (53-bit uniforms).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyopencl as cl
import pyopencl.array as cla

from .programs import check_dtype, dtype_options, kernel

MASK64 = (1 << 64) - 1


def _per_block(dtype) -> int:
    return 2 if np.dtype(dtype) == np.float64 else 4


def _run(queue: cl.CommandQueue, name: str, shape: Sequence[int] | int, dtype, key: int, counter: int,
         allocator, opts: tuple[str, ...], per_block: int, first_block: int = 0) -> cla.Array:
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    out = cla.empty(queue, shape, dtype, allocator=allocator)
    n = out.size
    if n == 0:
        return out
    blocks = -(-n // per_block)
    local = min(64, queue.device.max_work_group_size)
    knl = kernel(queue.context, "philox", name, opts)
    args = [np.uint64(n), np.uint64(counter & MASK64), np.uint64(key & MASK64), out.base_data]
    args.append(np.uint64(first_block & MASK64) if name == "philox_bits" else np.uint64(out.offset // out.dtype.itemsize))
    knl(queue, (-(-blocks // local) * local,), (local,), *args)
    return out


def bits(queue: cl.CommandQueue, n: int, key: int, counter: int, allocator=None, first_block: int = 0) -> cla.Array:
    """The raw uint32 words of blocks first_block, first_block + 1, ... (4 per block): what the
    known-answer tests check."""
    return _run(queue, "philox_bits", (n,), np.uint32, key, counter, allocator, ("-DT=float",), 4, first_block)


def uniform(queue: cl.CommandQueue, shape: Sequence[int] | int, dtype, key: int, counter: int,
            allocator=None) -> cla.Array:
    """Uniform numbers in [0, 1) of `dtype` (f32 or f64); bit-identical on every device."""
    check_dtype(queue, dtype)
    return _run(queue, "philox_uniform", shape, np.dtype(dtype), key, counter, allocator,
                dtype_options(dtype), _per_block(dtype))


def normal(queue: cl.CommandQueue, shape: Sequence[int] | int, dtype, key: int, counter: int,
           allocator=None) -> cla.Array:
    """Standard normal numbers (Box-Muller on the uniforms of the same (key, counter)); identical
    across runs on a device (across devices up to the last bits of log/sin/cos)."""
    check_dtype(queue, dtype)
    return _run(queue, "philox_normal", shape, np.dtype(dtype), key, counter, allocator,
                dtype_options(dtype), _per_block(dtype))


# ---------------------------------------------------------------- a NumPy reference

_M0, _M1, _W0, _W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85


def philox4x32_10_reference(ctr: Sequence[int], key: Sequence[int]) -> np.ndarray:
    """Philox4x32-10 of counters [n, 4] under keys [n, 2] in plain NumPy (uint64 products), an
    independent check of the device kernel."""
    c = np.array(ctr, dtype=np.uint64).reshape(-1, 4).copy()
    k = np.array(key, dtype=np.uint64).reshape(-1, 2).copy()
    m32 = np.uint64(0xFFFFFFFF)
    for _ in range(10):
        p0 = np.uint64(_M0) * c[:, 0]
        p1 = np.uint64(_M1) * c[:, 2]
        hi0, lo0 = p0 >> np.uint64(32), p0 & m32
        hi1, lo1 = p1 >> np.uint64(32), p1 & m32
        c = np.stack([hi1 ^ c[:, 1] ^ k[:, 0], lo1, hi0 ^ c[:, 3] ^ k[:, 1], lo0], axis=1)
        k = (k + np.array([_W0, _W1], dtype=np.uint64)) & m32
    return c.astype(np.uint32)
