"""Reading .npy and .npz files a user or a hostile party may have crafted: headers first.

Every member's header is read and checked (a .npy magic, a header under numpy's size limit with
only literals in it, no Python objects, as many bytes in the file as the header declares, a size
that fits in memory) before any array is allocated; then only the members the caller asks for are
read, memory-mapped where the archive stores them uncompressed. Used by data sources, checkpoints
and params files; errors are `NpyProblem`s with a sentence the caller reports at its own place.
"""
from __future__ import annotations

import math
import os
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path

import attrs
import numpy as np
from numpy.lib import format as npformat

from ..diagnostics import file_problem

NPY_MAGIC = b"\x93NUMPY"
MAX_HEADER = 10_000  # bytes of a .npy header (numpy's own default limit)
MEMORY_FRACTION = 0.8  # of the available memory an array read into memory may take


class NpyProblem(Exception):
    """Why a file or member cannot be read; `str()` is a sentence for a diagnostic."""


@attrs.frozen
class Header:
    """One array's header: what it would be, before it is read."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int  # of the data in the file, for a stored (uncompressed) member or a .npy; -1 if compressed

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def describe(self) -> str:
        return f"{self.dtype}[{', '.join(map(str, self.shape))}]"


def available_memory() -> int:
    """Bytes of memory available now (Linux's MemAvailable; else the physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def _read_header(f, label: str, size: int) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """(shape, dtype, fortran order, header length) of the .npy stream `f` holding `size` bytes."""
    try:
        version = npformat.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(f, max_header_size=MAX_HEADER)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npformat.read_array_header_2_0(f, max_header_size=MAX_HEADER)
        else:
            raise NpyProblem(f"{label} has an unknown .npy format version {version}")
    except NpyProblem:
        raise
    except (ValueError, EOFError, SyntaxError, tokenize.TokenError, RecursionError, MemoryError, TypeError,
            struct.error, OSError, zlib.error, zipfile.BadZipFile) as e:
        raise NpyProblem(f"{label} is not a valid .npy array ({_first_line(e)})") from None
    if dtype.hasobject:
        raise NpyProblem(f"{label} holds Python objects (it would need pickle, which wengert never loads)")
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise NpyProblem(f"{label} has an invalid shape {shape!r}")
    header_len = f.tell()
    declared = math.prod(shape) * dtype.itemsize
    if size - header_len < declared:
        raise NpyProblem(f"{label} is truncated: its header declares {dtype}[{', '.join(map(str, shape))}] "
                         f"({declared:,} bytes) but it holds {max(size - header_len, 0):,}")
    return shape, dtype, fortran, header_len


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def _check_file(path: Path) -> int:
    problem = file_problem(path)
    if problem is not None:
        raise NpyProblem(problem)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise NpyProblem("no such file") from None
    if size == 0:
        raise NpyProblem("an empty file (0 bytes)")
    return size


def npy_header(path: str | Path) -> Header:
    """The header of a .npy file."""
    path = Path(path)
    size = _check_file(path)
    try:
        with open(path, "rb") as f:
            shape, dtype, fortran, header_len = _read_header(f, "the array", size)
    except OSError as e:
        raise NpyProblem(f"cannot read it: {e.strerror}") from None
    return Header(path.name, shape, dtype, fortran, header_len)


def npz_headers(path: str | Path) -> dict[str, Header]:
    """Every member's header of an .npz archive, by array name (`meta` for `meta.npy`), reading no data."""
    path = Path(path)
    _check_file(path)
    out: dict[str, Header] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise NpyProblem(f"member `{info.filename}` is not a .npy array")
                name = info.filename[:-4]
                with zf.open(info) as f:
                    shape, dtype, fortran, header_len = _read_header(f, f"`{name}`", info.file_size)
                offset = _data_offset(path, info, header_len) if info.compress_type == zipfile.ZIP_STORED else -1
                out[name] = Header(name, shape, dtype, fortran, offset)
    except NpyProblem:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError,
            zlib.error, struct.error) as e:
        raise NpyProblem(f"not an .npz archive, or a truncated one ({_first_line(e)})") from None
    return out


def _data_offset(path: Path, info: zipfile.ZipInfo, header_len: int) -> int:
    """Where a stored member's array data starts in the archive (after the local file header)."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise NpyProblem(f"member `{info.filename}` has a corrupt local header")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    return info.header_offset + 30 + name_len + extra_len + header_len


def check_memory(header: Header, what: str) -> None:
    """Refuse an array that would not fit in the memory available now (before allocating it)."""
    limit = available_memory() * MEMORY_FRACTION
    if header.nbytes > limit:
        raise NpyProblem(f"{what} `{header.name}` is {header.describe()} ({header.nbytes / 1e9:,.1f} GB), "
                         f"more than the {limit / 1e9:,.1f} GB of memory available")


def read_member(path: str | Path, header: Header, mmap: bool = False) -> np.ndarray:
    """One member's array, whose header has been checked: a read-only memmap when `mmap` and the member
    is stored uncompressed, else in memory (refused if it does not fit)."""
    path = Path(path)
    if mmap and header.offset >= 0:
        if header.nbytes == 0:
            return np.zeros(header.shape, header.dtype)
        return np.memmap(path, dtype=header.dtype, mode="r", offset=header.offset, shape=header.shape,
                         order="F" if header.fortran else "C")
    check_memory(header, "array")
    try:
        with zipfile.ZipFile(path) as zf, zf.open(header.name + ".npy") as f:
            return npformat.read_array(f, allow_pickle=False, max_header_size=MAX_HEADER)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error, KeyError) as e:
        raise NpyProblem(f"`{header.name}` cannot be read ({_first_line(e)})") from None


def shape_problem(header: Header, shape: tuple[int, ...], dtype: np.dtype | str) -> str | None:
    """How a member differs from a declared shape and dtype, or None when it fits exactly."""
    want = np.dtype(dtype)
    if tuple(header.shape) != tuple(shape) or header.dtype != want:
        return f"`{header.name}` is {header.describe()}, expected {want}[{', '.join(map(str, shape))}]"
    return None
