"""A run's output directory (`--out`): the only place a training run writes.

- `resolve` confines a path a program names (`checkpoint = "..."`) to the directory: a path that leaves
  it (`..`, an absolute path, a symlink pointing out) is an error at its line unless the user allowed a
  directory holding it (`--allow-path DIR`, `Trainer(allow_paths=...)`).
- `RunDir.open` takes the directory's lock (`flock` on `.lock`: the kernel drops it when its process
  dies, even by SIGKILL, so a lock is never stale), removes the temporary files a killed run left, and
  checks, before the first epoch, that the directories are writable and have room for one checkpoint.
- `rescue` writes a checkpoint that could not be written where it belongs (a full or read-only disk) to
  the first other directory that takes it, so no trained epoch is lost.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import attrs

from ..diagnostics import Diagnostic, DiagnosticError, Span

LOCK = ".lock"
OUTPUTS = ("history.csv", "params.npz")  # written next to the checkpoint by every run
HEADROOM = 1.05  # zip headers and the JSON metadata on top of the arrays' bytes


class RunDirError(DiagnosticError):
    """The output directory cannot take the run: locked, not writable, full, or it holds a checkpoint."""

    def __init__(self, where: str | Path, message: str, span: Span | None = None):
        super().__init__([Diagnostic(span, message) if span is not None else Diagnostic.plain(str(where), message)])


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def resolve(path: str, base: Path, allowed: Iterable[str | Path] = (), span: Span | None = None,
            what: str = "checkpoint") -> Path:
    """`path` relative to `base` (the run's directory); it must stay inside `base` or an allowed directory.
    Symlinks are followed before comparing, so a link inside the run cannot point the write elsewhere."""
    if "\0" in path or not path:
        raise RunDirError(base, f"the {what} path {path!r} is not a file name", span)
    target = Path(os.path.realpath(base / path))
    roots = [Path(os.path.realpath(base))] + [Path(os.path.realpath(d)) for d in allowed]
    if not any(_inside(target, root) for root in roots):
        how = "is absolute" if Path(path).is_absolute() else f"leaves the run's directory {base}"
        raise RunDirError(base, f"the {what} path \"{path}\" {how}; a run writes only under its --out directory "
                                f"(write it as a path inside {base}, or allow the directory with "
                                f"--allow-path {target.parent})", span)
    return target


def stale_temporaries(directory: Path, names: Iterable[str]) -> list[Path]:
    """The temporary files `checkpoint.save` and `write_history` leave when their process is killed."""
    found: list[Path] = []
    for name in names:
        found += sorted(directory.glob(f"{name}.*.tmp")) + sorted(directory.glob(f"{name}.tmp"))
    return found


@attrs.define
class RunDir:
    """The directories a run writes to, held (locked) while it trains."""

    out: Path
    checkpoint: Path | None
    _lock: Any = None

    @property
    def directories(self) -> list[Path]:
        dirs = [self.out]
        if self.checkpoint is not None and self.checkpoint.parent != self.out:
            dirs.append(self.checkpoint.parent)
        return dirs

    def open(self) -> list[Path]:
        """Create and lock the directory, then remove stale temporaries; returns the files removed."""
        try:
            for d in self.directories:
                d.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.out / LOCK, "a+")
        except OSError as e:
            raise RunDirError(self.out, f"cannot create the run's directory {self.out}: {e.strerror}") from None
        _take_lock(self._lock, self.out)
        removed = []
        names = {d: list(OUTPUTS) if d == self.out else [] for d in self.directories}
        if self.checkpoint is not None:
            names[self.checkpoint.parent].append(self.checkpoint.name)
        for d, ns in names.items():
            for stale in stale_temporaries(d, ns):
                try:
                    stale.unlink()
                    removed.append(stale)
                except OSError:
                    pass  # not ours to remove (another user's file): leave it
        return removed

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None

    def check_space(self, needed: int) -> None:
        """Each directory must be writable and have `needed` bytes free (one checkpoint with its outputs)."""
        for d in self.directories:
            try:
                fd, probe = tempfile.mkstemp(prefix=".wengert-probe.", dir=d)
                os.close(fd)
                os.unlink(probe)
            except OSError as e:
                raise RunDirError(d, f"cannot write to the run's directory {d}: {e.strerror}; "
                                     "choose another with --out") from None
            free = shutil.disk_usage(d).free
            if free < needed:
                raise RunDirError(d, f"not enough free space in {d}: one checkpoint needs {_size(needed)}, "
                                     f"{_size(free)} is free; free some space or choose another --out")

    def refuse_overwrite(self, describe: Callable[[Path], str]) -> None:
        """A run that is not resumed must not silently replace an earlier run's checkpoint."""
        if self.checkpoint is not None and self.checkpoint.exists():
            raise RunDirError(self.checkpoint, f"{self.checkpoint} holds {describe(self.checkpoint)}; continue it "
                                               "with --resume, or start again and replace it with --overwrite "
                                               "(or --restart; from Python, Trainer(..., overwrite=True))")


def _take_lock(handle, out: Path) -> None:
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunDirError(out, f"another training run ({holder}) is writing to {out}; wait for it to finish, "
                               "or choose another --out") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()


def _size(n: float) -> str:
    if n < 1000:
        return f"{n:.0f} bytes"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1000
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}"
    return ""


def needed_bytes(arrays: Iterable[Any]) -> int:
    return int(sum(getattr(a, "nbytes", 0) for a in arrays) * HEADROOM) + 4096


RESCUE_ENV = "WENGERT_RESCUE_DIR"


def rescue_directories() -> list[Path]:
    """Where a checkpoint goes when its own directory cannot take it: $WENGERT_RESCUE_DIR, the system's
    temporary directory, the home directory (most likely on another file system than the run's)."""
    dirs = [os.environ.get(RESCUE_ENV), tempfile.gettempdir(), os.path.expanduser("~")]
    return [Path(d) for d in dirs if d]


def rescue(save: Callable[[Path], None], name: str) -> tuple[Path | None, list[str]]:
    """Try `save(path)` in each rescue directory: (the path written, or None; why the others failed)."""
    failures = []
    for d in rescue_directories():
        path = d / name
        try:
            save(path)
            return path, failures
        except OSError as e:
            failures.append(f"{d}: {e.strerror or e}")
    return None, failures
