"""Where generated native code lives: one Python file per source under the cache directory,
imported as a module so numba's on-disk cache (`cache=True`) keeps its machine code between
processes (numba cannot cache a function made by `exec`: numba issue 3501).

The directory is `$WENGERT_CACHE`, else `$XDG_CACHE_HOME/wengert`, else `~/.cache/wengert`;
its `native/` folder is keyed by wengert's version, numba's version and the CPU, so a new
release or another machine never reads stale code. `wengert cache info|clear` shows or
removes it. A file that does not import (a torn write, a corrupt entry) is rewritten.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

_LOADED: dict[str, ModuleType] = {}


def root() -> Path:
    base = os.environ.get("WENGERT_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "wengert"


def machine_key() -> str:
    """wengert's version, numba's version and the CPU the code is compiled for."""
    import llvmlite.binding as llvm
    import numba

    from .. import __version__
    raw = f"{__version__}|{numba.__version__}|{llvm.get_host_cpu_name()}|{llvm.get_host_cpu_features()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def native_dir() -> Path:
    return root() / "native" / machine_key()


def load_module(source: str) -> ModuleType:
    """The module of a generated source, written on first use and imported from its file."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    if digest in _LOADED:
        return _LOADED[digest]
    folder = native_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"w{digest}.py"
    if not path.exists() or path.read_text(errors="replace") != source:
        _write(path, source)
    try:
        module = _import(digest, path)
    except Exception:  # noqa: BLE001 - a corrupt entry (its file or numba's index): rebuilt, not fatal
        shutil.rmtree(folder / "__pycache__", ignore_errors=True)
        _write(path, source)
        module = _import(digest, path)
    _LOADED[digest] = module
    return module


def _write(path: Path, source: str) -> None:
    """Atomically: another process importing the same file never sees half of it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(source)
    os.replace(tmp, path)


def _import(digest: str, path: Path) -> ModuleType:
    name = f"wengert_native_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # numba's cache locates functions through their module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def info() -> dict[str, object]:
    """What the cache holds: its directory, files and bytes."""
    base = root()
    files = [p for p in base.rglob("*") if p.is_file()] if base.exists() else []
    return {"directory": str(base), "files": len(files), "bytes": sum(p.stat().st_size for p in files),
            "sources": sum(1 for p in files if p.suffix == ".py")}


def clear() -> int:
    """Remove every generated file; returns how many there were."""
    count = int(info()["files"])
    shutil.rmtree(root() / "native", ignore_errors=True)
    _LOADED.clear()
    return count
