"""The OpenCL backend: device discovery (devices.py), device arrays (array.py), the kernel table
and buffer pool (backend.py), generated elementwise kernels over strided views (strided.py) and
their fusion (lazy.py), convolution and pooling (neural.py), random draws (random.py); low-level
kernels: programs.py, gemm.py, reduce.py, philox.py, im2col.py.

`import wengert.opencl` needs no pyopencl; `get_backend` does (`pip install "wengert[opencl]"`).
"""
from __future__ import annotations

from .devices import (
    INSTALL_HINT,
    DeviceInfo,
    NoOpenCLError,
    format_listing,
    list_devices,
    parse,
)


def get_backend(spec: str = "opencl"):
    """The backend of `opencl` (first GPU, else first device) or `opencl:P:D`."""
    from .backend import get_backend as get
    return get(spec)


__all__ = ["INSTALL_HINT", "DeviceInfo", "NoOpenCLError", "format_listing", "get_backend", "list_devices", "parse"]
