"""Checkpoints: one .npz without pickle, written to a temporary file and renamed.

Arrays are stored under prefixed keys (`param/w`, `optim/...`, `best/w`); everything
else (epoch, step, history, random generator states, the program's fingerprint) is one
JSON document in the 0-d unicode array `meta`.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..diagnostics import Diagnostic, DiagnosticError

FORMAT = 1


class CheckpointError(DiagnosticError):
    def __init__(self, path: str | Path, message: str):
        super().__init__([Diagnostic.plain(str(path), message)])


def fingerprint(module, store: dict[str, np.ndarray]) -> str:
    """What makes a checkpoint belong to a program: its params and state, names, shapes, dtypes."""
    desc = [(n, list(v.shape), str(v.dtype)) for n, v in sorted(store.items())]
    return hashlib.sha256(json.dumps(desc).encode()).hexdigest()[:16]


def save(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write atomically: nothing at `path` changes until the new file is complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(arrays)
    payload["meta"] = np.array(json.dumps({"format": FORMAT, **meta}))
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str | Path, expected_fingerprint: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "no checkpoint here to resume from")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError, json.JSONDecodeError) as e:
        raise CheckpointError(path, f"the checkpoint is corrupt or incomplete ({type(e).__name__}: {e}); "
                                    "it was not changed") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(path, f"unknown checkpoint format {meta.get('format')!r}")
    if meta.get("fingerprint") != expected_fingerprint:
        raise CheckpointError(path, f"the checkpoint belongs to another program (its params are "
                                    f"{', '.join(meta.get('params', [])) or 'different'}); refusing to resume")
    return arrays, meta


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return rng.bit_generator.state


def restore_rng(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state
