"""OpenCL device discovery and choice (the book's listing 10-1, and `--device opencl[:P:D]`).

`opencl` picks the first GPU of any platform, else the first device; `opencl:P:D` picks device D
of platform P (indices as `wengert devices` prints them). Without pyopencl or without any
platform, `NoOpenCLError` says how to get one.
"""
from __future__ import annotations

from typing import Any

import attrs

INSTALL_HINT = 'pip install "wengert[opencl]" installs pyopencl with PoCL, an OpenCL driver for the CPU'


class NoOpenCLError(RuntimeError):
    """No usable OpenCL: pyopencl missing, no platform, or no device matching the choice."""


@attrs.frozen
class DeviceInfo:
    """The fields of listing 10-1 for one device."""

    platform_index: int
    device_index: int
    platform: str
    name: str
    type: str
    max_clock_mhz: int
    compute_units: int
    local_memory: int
    constant_memory: int
    global_memory: int
    fp64: bool
    driver: str


def _cl():
    try:
        import pyopencl as cl
    except ImportError:  # pragma: no cover - the opencl extra is not installed
        raise NoOpenCLError(f"pyopencl is not installed; {INSTALL_HINT}") from None
    return cl


def platforms() -> list[Any]:
    """Every OpenCL platform; [] when the ICD loader finds none."""
    cl = _cl()
    try:
        return list(cl.get_platforms())
    except cl.LogicError:  # CL_PLATFORM_NOT_FOUND_KHR: the loader has no platform at all
        return []


def _devices(platform) -> list[Any]:
    try:
        return list(platform.get_devices())
    except Exception:  # a platform without devices raises DEVICE_NOT_FOUND
        return []


def describe(platform_index: int, device_index: int, platform, device) -> DeviceInfo:
    cl = _cl()
    kind = cl.device_type.to_string(device.type).replace("ALL | ", "")
    return DeviceInfo(platform_index, device_index, platform.name.strip(), device.name.strip(), kind,
                      int(device.max_clock_frequency), int(device.max_compute_units), int(device.local_mem_size),
                      int(device.max_constant_buffer_size), int(device.global_mem_size),
                      "cl_khr_fp64" in device.extensions, device.driver_version)


def list_devices() -> list[DeviceInfo]:
    """Every device of every platform; raises NoOpenCLError when there is none."""
    found = [describe(p, d, plat, dev) for p, plat in enumerate(platforms()) for d, dev in enumerate(_devices(plat))]
    if not found:
        raise NoOpenCLError(f"no OpenCL platform or device was found; {INSTALL_HINT}")
    return found


def parse(spec: str) -> tuple[int, int] | None:
    """`opencl` -> None (automatic choice), `opencl:P:D` -> (P, D); ValueError otherwise."""
    if spec == "opencl":
        return None
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] != "opencl" or not all(p.isdigit() for p in parts[1:]):
        raise ValueError(f"`{spec}` is not a device; use cpu, opencl or opencl:PLATFORM:DEVICE")
    return int(parts[1]), int(parts[2])


def choose(spec: str) -> tuple[Any, DeviceInfo]:
    """The pyopencl device named by `spec` and its description."""
    cl = _cl()
    where = parse(spec)
    plats = platforms()
    if not plats:
        raise NoOpenCLError(f"no OpenCL platform was found; {INSTALL_HINT}")
    if where is not None:
        p, d = where
        devs = _devices(plats[p]) if p < len(plats) else []
        if d >= len(devs):
            raise NoOpenCLError(f"there is no OpenCL device {p}:{d} (see `wengert devices`)")
        return devs[d], describe(p, d, plats[p], devs[d])
    candidates = [(p, d, plat, dev) for p, plat in enumerate(plats) for d, dev in enumerate(_devices(plat))]
    if not candidates:
        raise NoOpenCLError(f"no OpenCL device was found; {INSTALL_HINT}")
    gpus = [c for c in candidates if c[3].type & cl.device_type.GPU]
    p, d, plat, dev = (gpus or candidates)[0]
    return dev, describe(p, d, plat, dev)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def format_listing(infos: list[DeviceInfo]) -> str:
    """Listing 10-1's report, one block per device."""
    lines = []
    for i in infos:
        lines += [f"[{i.platform_index}:{i.device_index}] {i.name}  (platform: {i.platform})",
                  f"    type:              {i.type}",
                  f"    max clock:         {i.max_clock_mhz} MHz",
                  f"    compute units:     {i.compute_units}",
                  f"    local memory:      {_size(i.local_memory)}",
                  f"    constant memory:   {_size(i.constant_memory)}",
                  f"    global memory:     {_size(i.global_memory)}",
                  f"    fp64:              {'yes' if i.fp64 else 'no'}",
                  f"    driver:            {i.driver}",
                  f"    use:               --device opencl:{i.platform_index}:{i.device_index}"]
    return "\n".join(lines)
