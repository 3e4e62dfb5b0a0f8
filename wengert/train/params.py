"""Params files: the `.npz` that `wengert train` writes (`params.npz`, one array per param and
state plus the JSON `meta`), read back only into a program they fit.

A file fits when it holds exactly the program's params and state, each with its shape and dtype
(what the fingerprint in `meta`, checkpoint.fingerprint, summarises); when it does not, the error
names each difference. Checkpoints (checkpoint.py) keep their params under `param/`
and can use `differences` for the same message.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..diagnostics import Diagnostic, DiagnosticError
from ..runtime.types import DTYPE_OF_NUMPY
from . import checkpoint, npzfile

KIND = "params"
MAX_LISTED = 6  # differences listed in one message


class ParamsError(DiagnosticError):
    """A params file that cannot be read, or that does not fit the program."""

    def __init__(self, path: str | Path, message: str):
        super().__init__([Diagnostic.plain(str(path), message)])


def describe(store: dict[str, Any]) -> dict[str, tuple[list[int], str]]:
    """name -> (shape, dtype): what a params file must match."""
    return {n: (list(np.shape(v)), str(np.dtype(v.dtype))) for n, v in store.items()}


def save(path: str | Path, store: dict[str, np.ndarray], fingerprint: str | None = None) -> None:
    """Write the params and state atomically, with their fingerprint (computed unless given: the
    Trainer keeps it) and description in `meta`."""
    arrays = {n: np.asarray(v) for n, v in store.items()}
    fingerprint = fingerprint or checkpoint.fingerprint(None, arrays)
    checkpoint.save(path, arrays, {"kind": KIND, "fingerprint": fingerprint,
                                   "params": {n: {"shape": s, "dtype": d} for n, (s, d) in describe(arrays).items()}})


def read(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, meta) of a params file; meta is {} for an .npz written by other means. Every member's
    header is checked first (npzfile.py: no pickles, no header claiming more than the file holds or the
    memory available), so a crafted file is an error, never a MemoryError."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(path, "no such params file")
    if path.is_dir():
        raise ParamsError(path, "is a directory, not a params .npz file")
    try:
        with open(path, "rb") as f:
            if f.read(len(npzfile.NPY_MAGIC)) == npzfile.NPY_MAGIC:
                raise ParamsError(path, "a .npy array, not a params .npz archive (one array per param)")
        headers = npzfile.npz_headers(path)
        head = headers.pop("meta", None)
        if head is not None and (head.dtype.kind != "U" or head.shape != () or head.nbytes > checkpoint.META_LIMIT):
            raise ParamsError(path, f"its `meta` entry is {head.describe()}, not a wengert params description")
        arrays = {k: npzfile.read_member(path, h) for k, h in headers.items()}
        meta = json.loads(str(npzfile.read_member(path, head))) if head is not None else {}
    except npzfile.NpyProblem as e:
        raise ParamsError(path, f"cannot read params from it: {e}") from None
    except (OSError, ValueError, RecursionError) as e:
        raise ParamsError(path, f"cannot read params from it ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict):
        raise ParamsError(path, "its `meta` entry is not a wengert params description")
    return arrays, meta


def differences(expected: dict[str, tuple[list[int], str]], found: dict[str, tuple[list[int], str]],
                what: str = "the file") -> list[str]:
    """Each way `found` (a file's arrays) differs from `expected` (the program's), one phrase each."""
    out = [f"param `{n}` is missing from {what}" for n in expected if n not in found]
    out += [f"{what} has `{n}`, which the program does not declare" for n in found if n not in expected]
    for n, (shape, dtype) in expected.items():
        if n in found:
            got_shape, got_dtype = found[n]
            if list(got_shape) != list(shape):
                out.append(f"`{n}` has shape {list(got_shape)} in {what}, but the program declares {list(shape)}")
            elif got_dtype != dtype:
                out.append(f"`{n}` is {_dsl(got_dtype)} in {what}, but the program declares {_dsl(dtype)}")
    return out


def _dsl(dtype: str) -> str:
    """A NumPy dtype as the language writes it (float32 -> f32)."""
    return DTYPE_OF_NUMPY.get(np.dtype(dtype), dtype)


def load(path: str | Path, store: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of a params file that fits `store` (the program's params and state), or a
    ParamsError naming what differs: a missing or extra param, a shape, a dtype."""
    arrays, meta = read(path)
    if "epoch" in meta:
        raise ParamsError(path, "a training checkpoint (for --resume), not a params file; the params of a run "
                                "are in params.npz beside it")
    if meta.get("kind", KIND) != KIND:
        raise ParamsError(path, f"a wengert {meta['kind']} file, not a params file")
    problems = differences(describe(store), describe(arrays))
    if problems:
        shown = problems[:MAX_LISTED] + ([f"and {len(problems) - MAX_LISTED} more"]
                                         if len(problems) > MAX_LISTED else [])
        raise ParamsError(path, "the params do not fit the program: " + "; ".join(shown))
    return arrays
