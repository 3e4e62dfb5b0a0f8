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
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..diagnostics import Diagnostic, DiagnosticError, file_problem
from . import npzfile

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


META_LIMIT = 16_000_000  # bytes of the JSON metadata (a history of a million epochs is far less)
SHOWN = 6  # differences listed in one diagnostic


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _rng_state(v: Any) -> bool:
    """A bit generator's state that numpy accepts (tried on a scratch generator, never on the run's)."""
    if not isinstance(v, dict):
        return False
    try:
        restore_rng(np.random.default_rng(), v)
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError):
        return False
    return True


# each metadata field: (its test, what it must be); checked before any of it is used
META_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "format": (lambda v: v == FORMAT, f"the format number {FORMAT}"),
    "fingerprint": (lambda v: isinstance(v, str), "a string"),
    "params": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of param names"),
    "train": (lambda v: v is None or isinstance(v, str), "a train block's name or null"),
    "epoch": (_count, "a non-negative integer"),
    "history": (lambda v: isinstance(v, list) and all(
        isinstance(r, dict) and all(isinstance(k, str) and _number(x) for k, x in r.items()) for r in v),
        "a list of rows of numbers"),
    "best": (lambda v: isinstance(v, dict) and _number(v.get("loss")) and _count(v.get("wait"))
             and isinstance(v.get("epoch"), int) and not isinstance(v.get("epoch"), bool),
             "{loss, wait, epoch} of early stopping"),
    "rng": (lambda v: isinstance(v, dict) and all(_rng_state(v.get(k)) for k in ("shuffle", "noise", "program")),
            "the states of the shuffle, noise and program generators"),
}


def _refuse(path: Path, message: str) -> CheckpointError:
    return CheckpointError(path, f"{message}; the file was not changed")


def read_meta(path: str | Path, headers: dict[str, npzfile.Header] | None = None) -> dict[str, Any]:
    """A checkpoint's metadata, every field validated (META_FIELDS); raises CheckpointError."""
    path = Path(path)
    try:
        headers = headers if headers is not None else npzfile.npz_headers(path)
        head = headers.get("meta")
        if head is None:
            raise _refuse(path, "the checkpoint is corrupt or incomplete: it has no `meta` record (is it a "
                                "params file? `--resume` needs the checkpoint)")
        if head.dtype.kind != "U" or head.shape != () or head.nbytes > META_LIMIT:
            raise _refuse(path, f"the checkpoint is corrupt: its `meta` record is {head.describe()}, not one "
                                "JSON string")
        text = str(npzfile.read_member(path, head))
        meta = json.loads(text)
    except npzfile.NpyProblem as e:
        raise _refuse(path, f"the checkpoint is corrupt or incomplete: {e}") from None
    except (ValueError, RecursionError) as e:
        raise _refuse(path, f"the checkpoint is corrupt: its metadata is not valid JSON ({str(e)[:120]})") from None
    if not isinstance(meta, dict):
        raise _refuse(path, "the checkpoint is corrupt: its metadata is not a JSON object")
    if meta.get("format") != FORMAT and "format" in meta:
        raise _refuse(path, f"unknown checkpoint format {str(meta.get('format'))[:40]!r} (this wengert reads "
                            f"format {FORMAT})")
    wrong = [f"`{k}` should be {what}" for k, (ok, what) in META_FIELDS.items() if not ok(meta.get(k))]
    if wrong:
        raise _refuse(path, "the checkpoint is corrupt: in its metadata, " + "; ".join(wrong[:SHOWN]))
    return meta


def describe(path: str | Path) -> str:
    """What an existing checkpoint holds, for a message ("a checkpoint of epoch 20 (train block `fast`)")."""
    try:
        meta = read_meta(path)
    except CheckpointError:
        return "a file that is not a readable checkpoint"
    block = f" (train block `{meta['train']}`)" if meta["train"] else ""
    return f"a checkpoint of epoch {meta['epoch']}{block}"


def differences(headers: dict[str, npzfile.Header], layout: dict[str, np.ndarray],
                optional: tuple[str, ...] = ()) -> list[str]:
    """How an archive's members differ from `layout` (key -> an array of the expected shape and dtype);
    members under an `optional` prefix may be absent, and other members than the layout's are extra."""
    problems = []
    for key, want in layout.items():
        head = headers.get(key)
        if head is None:
            if not key.startswith(optional):
                problems.append(f"`{key}` is missing")
        elif want.dtype.kind == "U":  # a string: its length may differ
            if head.dtype.kind != "U" or head.shape != want.shape or head.nbytes > META_LIMIT:
                problems.append(f"`{key}` is {head.describe()}, expected a string")
        else:
            problem = npzfile.shape_problem(head, want.shape, want.dtype)
            if problem is not None:
                problems.append(problem)
    extra = [k for k in headers if k != "meta" and k not in layout]
    if extra:
        problems.append(f"it has arrays the program does not: {', '.join(f'`{k}`' for k in extra[:SHOWN])}")
    return problems


def load(path: str | Path, expected_fingerprint: str, layout: dict[str, np.ndarray] | None = None,
         only: str | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint, validating every field before anything is used: the metadata (META_FIELDS),
    each array's header against `layout` (the run's own checkpoint arrays: shapes, dtypes, optimizer
    slots), then the fingerprint. `only="param/"` reads just the params (`--resume-params`)."""
    path = Path(path)
    problem = file_problem(path)
    if problem is not None:
        raise CheckpointError(path, problem)
    if not path.exists():
        raise CheckpointError(path, "no checkpoint here to resume from")
    try:
        headers = npzfile.npz_headers(path)
    except npzfile.NpyProblem as e:
        raise _refuse(path, f"the checkpoint is corrupt or incomplete: {e}") from None
    meta = read_meta(path, headers)
    if only is not None:
        headers = {k: h for k, h in headers.items() if k.startswith(only) or k == "meta"}
    if layout is not None:
        if only is not None:
            layout = {k: v for k, v in layout.items() if k.startswith(only)}
        _check_optimizer(path, headers, layout)
        problems = differences(headers, layout, optional=("best/",))
        if problems:
            raise _refuse(path, "the checkpoint belongs to another program or is damaged: "
                          + "; ".join(problems[:SHOWN])
                          + (f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""))
    if meta["fingerprint"] != expected_fingerprint:
        raise _refuse(path, f"the checkpoint belongs to another program (its params are "
                            f"{', '.join(meta['params'][:SHOWN]) or 'none'})")
    try:
        arrays = {k: npzfile.read_member(path, h) for k, h in headers.items() if k != "meta"}
    except npzfile.NpyProblem as e:
        raise _refuse(path, f"the checkpoint is corrupt or incomplete: {e}") from None
    if "optim/rng" in arrays and only is None:
        try:
            state = json.loads(str(arrays["optim/rng"]))
        except (ValueError, RecursionError):
            state = None
        if not _rng_state(state):
            raise _refuse(path, "the checkpoint is corrupt: `optim/rng` is not a random generator's state")
    return arrays, meta


def _check_optimizer(path: Path, headers: dict[str, npzfile.Header], layout: dict[str, np.ndarray]) -> None:
    """A changed optimizer is a decision for the user, not a list of missing slots."""
    head, want = headers.get("optim/name"), layout.get("optim/name")
    if head is None or want is None or head.dtype.kind != "U" or head.nbytes > 1000 or head.shape != ():
        return  # `differences` reports it
    try:
        saved = str(npzfile.read_member(path, head))
    except npzfile.NpyProblem:
        return
    if saved != str(want):
        raise _refuse(path, f"the checkpoint was trained with the optimizer `{saved[:40]}`, but the program now "
                            f"uses `{want}`, whose state differs; start from scratch with --restart, or keep "
                            f"the trained params and start `{want}` afresh with --resume-params")


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return rng.bit_generator.state


def restore_rng(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state
