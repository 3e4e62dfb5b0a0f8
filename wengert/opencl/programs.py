"""Building OpenCL programs: kernel sources from `kernels/*.cl`, one in-process cache, build logs
in errors.

Compiled binaries are cached twice:
- in process, per (context devices, source, options), so a program is built once per run and its
  kernel objects are reused (pyopencl makes a new `cl.Kernel` on every attribute access);
- on disk by pyopencl itself (`PYOPENCL_CACHE_DIR`, default ~/.cache/pyopencl), keyed by the source,
  the options and the device + driver version, so a second run skips the compiler and a driver
  upgrade rebuilds. We rely on that cache instead of keeping our own.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyopencl as cl

KERNEL_DIR = Path(__file__).parent / "kernels"

# OpenCL C type names of the NumPy dtypes the runtime uses (bool is stored as one byte 0/1).
C_TYPE = {np.dtype(np.float32): "float", np.dtype(np.float64): "double", np.dtype(np.int32): "int",
          np.dtype(np.int64): "long", np.dtype(np.bool_): "uchar", np.dtype(np.uint32): "uint",
          np.dtype(np.uint8): "uchar"}


class KernelBuildError(RuntimeError):
    """A kernel did not compile; the message carries the compiler's build log."""


def c_type(dtype) -> str:
    dt = np.dtype(dtype)
    if dt not in C_TYPE:
        raise TypeError(f"no OpenCL kernel type for dtype {dt}")
    return C_TYPE[dt]


def needs_fp64(dtype) -> bool:
    return np.dtype(dtype) == np.float64


def check_dtype(queue: cl.CommandQueue, dtype) -> None:
    """f64 only where the device has cl_khr_fp64: a clear error, never a silent down-cast."""
    if needs_fp64(dtype) and "cl_khr_fp64" not in queue.device.extensions:
        raise TypeError(f"the OpenCL device {queue.device.name!r} has no f64 support (cl_khr_fp64); use f32")


def dtype_options(dtype, name: str = "T") -> tuple[str, ...]:
    """Build options that define the element type `T` (and ENABLE_FP64 for doubles)."""
    opts = (f"-D{name}={c_type(dtype)}",)
    if needs_fp64(dtype):
        opts += ("-DENABLE_FP64=1",)
    return opts


def load_source(name: str) -> str:
    """The text of kernels/<name> (`.cl` added when missing)."""
    path = KERNEL_DIR / (name if name.endswith(".cl") else name + ".cl")
    return path.read_text()


_PROGRAMS: dict[tuple, cl.Program] = {}
_KERNELS: dict[tuple, cl.Kernel] = {}


def _resolve(source_or_name: str) -> str:
    if "\n" not in source_or_name and (KERNEL_DIR / (source_or_name if source_or_name.endswith(".cl")
                                                     else source_or_name + ".cl")).is_file():
        return load_source(source_or_name)
    return source_or_name


def build(ctx: cl.Context, source_or_name: str, options: Sequence[str] = ()) -> cl.Program:
    """Compile (or fetch from the cache) the program `source_or_name` — an OpenCL C source, or the
    name of a file under kernels/ — with `options` (e.g. `-DT=float`)."""
    source = _resolve(source_or_name)
    options = tuple(options)
    key = (tuple(d.int_ptr for d in ctx.devices), ctx.int_ptr, source, options)
    prg = _PROGRAMS.get(key)
    if prg is None:
        if any("-DENABLE_FP64" in o for o in options):
            source = "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" + source
        try:
            prg = cl.Program(ctx, source).build(options=list(options))
        except cl.RuntimeError as e:  # pyopencl's message holds each device's build log
            first = source_or_name if "\n" not in source_or_name else "<generated source>"
            raise KernelBuildError(f"OpenCL build of {first} failed (options {' '.join(options) or 'none'}):\n"
                                   f"{e}") from None
        _PROGRAMS[key] = prg
    return prg


def kernel(ctx: cl.Context, source_or_name: str, kernel_name: str, options: Sequence[str] = ()) -> cl.Kernel:
    """One cached kernel object of a cached program."""
    key = (ctx.int_ptr, source_or_name, tuple(options), kernel_name)
    k = _KERNELS.get(key)
    if k is None:
        k = _KERNELS[key] = getattr(build(ctx, source_or_name, options), kernel_name)
    return k


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple
