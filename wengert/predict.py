"""`wengert predict`: a named value for every row of new inputs, in batches, written to a file.

Inputs come from files (`.npy`, memory-mapped so that only the rows of the batch being computed
are read; `.npz`; `.csv`, with or without a header row) or from one of the program's `data`
pipelines (its transforms included). Rows are computed `batch` at a time with training off and
written as they come (`.npy` through a memory-mapped output, `.csv` row by row, `.npz` from a
memory-mapped temporary), so memory holds one batch; the output appears atomically at the end.
Mistakes in the inputs are `PredictError`s that name the file and the input.
"""
from __future__ import annotations

import csv
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from .diagnostics import Diagnostic, DiagnosticError, did_you_mean
from .runtime.types import format_type
from .train import data as data_module


class PredictError(DiagnosticError):
    """An input file or an output that does not fit: reported naming the file and the input."""

    @classmethod
    def about(cls, file: str, message: str) -> PredictError:
        return cls([Diagnostic.plain(file, message)])


# ---------------------------------------------------------------- reading inputs
def _read_npy(path: Path, key: str | None) -> np.ndarray:
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _read_npz(path: Path, key: str | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        names = archive.files
        if key is None and len(names) == 1:
            key = names[0]
        if key not in names:
            wanted = f"no array `{key}`" if key is not None else "several arrays"
            raise ValueError(f"{wanted} (it has {', '.join(names) or 'none'}); name one as FILE.npz:KEY")
        return archive[key]


def _read_csv(path: Path, key: str | None) -> np.ndarray:
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [(n, row) for n, row in enumerate(csv.reader(f), 1) if any(cell.strip() for cell in row)]
    if rows and not all(map(data_module.is_number, rows[0][1])):
        rows = rows[1:]  # a header row: a cell that is not a number
    if not rows:
        raise ValueError("no data rows")
    width = len(rows[0][1])
    values = np.empty((len(rows), width))
    for k, (line, row) in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"row {line} has {len(row)} columns, but the first row has {width}")
        for c, cell in enumerate(row):
            try:
                values[k, c] = float(cell)
            except ValueError:
                raise ValueError(f"row {line}, column {c + 1}: `{cell}` is not a number") from None
    return values


READERS: dict[str, Callable[[Path, str | None], np.ndarray]] = {".npy": _read_npy, ".npz": _read_npz,
                                                                  ".csv": _read_csv}


def read_input(text: str) -> np.ndarray:
    """The rows in a file named by `-i NAME=FILE` (FILE.npz:KEY names an array of an archive);
    `.npy` stays on disk (memory-mapped). Raises ValueError/OSError for the caller to report."""
    path, key = text, None
    if ".npz:" in text:
        path, _, key = text.rpartition(":")
    suffix = Path(path).suffix.lower()
    if suffix not in READERS:
        raise ValueError(f"unknown kind of file `{suffix or path}`; inputs are read from "
                         + ", ".join(READERS))
    return READERS[suffix](Path(path), key)


@attrs.frozen
class Feed:
    """Where an input's rows come from: a file (or an array of a data set) and its rows."""

    name: str
    origin: str  # the file, or `data NAME`
    rows: Any  # an array or memmap with one row per example; Dataset columns keep theirs on disk


def file_feeds(prog, items: dict[str, str]) -> dict[str, Feed]:
    feeds = {}
    for name, text in items.items():
        decl = prog.module.inputs.get(name)
        if decl is None:
            raise PredictError.about(text, f"the program has no input `{name}`" + did_you_mean(name, prog.module.inputs))
        file = text.rpartition(":")[0] if ".npz:" in text else text
        try:
            rows = read_input(text)
        except FileNotFoundError:
            raise PredictError.about(file, f"no such file (input `{name}`)") from None
        except IsADirectoryError:
            raise PredictError.about(file, f"is a directory, not a file of rows (input `{name}`)") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as e:
            raise PredictError.about(file, f"cannot read input `{name}` from it: {e}") from None
        feeds[name] = Feed(name, file, _shaped(prog, name, file, rows))
    return feeds


def _shaped(prog, name: str, file: str, rows: np.ndarray) -> np.ndarray:
    """The rows as the input's declared shape: a table's row of k numbers becomes the declared
    [28, 28] when 28 * 28 = k (a CSV holds flat rows)."""
    decl = prog.module.inputs[name]
    declared = prog.module.dims.resolve_shape(decl.var.type.shape)
    shown = format_type(decl.var.type.dtype, decl.var.type.shape)
    if rows.ndim == 0:
        raise PredictError.about(file, f"input `{name}` needs one row per example, but the file holds a single "
                                       "number")
    if rows.dtype.kind not in "biuf":
        raise PredictError.about(file, f"input `{name}` needs numbers, but the file holds {rows.dtype} values")
    tail = declared[1:]
    if rows.ndim == 2 and len(declared) > 2 and all(isinstance(d, int) for d in tail) \
            and rows.shape[1] == int(np.prod(tail)):
        rows = rows.reshape((len(rows),) + tuple(tail))
    if rows.ndim != len(declared):
        raise PredictError.about(file, f"input `{name}` is {shown}, but the file's rows have shape "
                                       f"{list(rows.shape[1:])} (the file is {list(rows.shape)})")
    for axis, (d, n) in enumerate(zip(declared[1:], rows.shape[1:]), 1):
        if isinstance(d, int) and d != n:
            what = "columns" if rows.ndim == 2 else f"entries along axis {axis}"
            raise PredictError.about(file, f"input `{name}` is {shown}: {d} {what} per row, but the file has {n}")
    return rows


def data_feeds(prog, which: str, needed: list[str]) -> dict[str, Feed]:
    """The columns of a data set of the program (`data (train, test) = ...`) named like inputs."""
    spec = next((s for s in prog.module.data.values() if which in s.names), None)
    if spec is None:
        known = sorted({n for s in prog.module.data.values() for n in s.names})
        raise PredictError.about(prog.module.path, f"no data set `{which}`" + did_you_mean(which, known)
                                 + (f"; the program's data sets: {', '.join(known)}" if known else
                                    "; the program has no `data` statement"))
    dataset = data_module.load(spec)[which]
    data_module.bind(dataset, prog.module.inputs, prog.module.dims)
    return {n: Feed(n, f"data `{which}`", dataset.columns[n]) for n in needed if n in dataset.columns}


# ---------------------------------------------------------------- writing outputs
class _NpyWriter:
    def __init__(self, path: Path, names: list[str]):
        if len(names) != 1:
            raise PredictError.about(str(path), "a .npy file holds one array: write several values to .npz or .csv")
        self.path, self.out = path, None

    def write(self, start: int, total: int, values: dict[str, np.ndarray]) -> None:
        (value,) = values.values()
        if self.out is None:
            self.out = np.lib.format.open_memmap(self.path, mode="w+", dtype=value.dtype,
                                                 shape=(total,) + value.shape[1:])
        self.out[start:start + len(value)] = value

    def close(self) -> None:
        if self.out is not None:
            self.out.flush()
            del self.out


class _NpzWriter:
    """Each value into a memory-mapped .npy beside the output, zipped at the end (np.savez copies
    a memmap in chunks)."""

    def __init__(self, path: Path, names: list[str]):
        self.path, self.names = path, names
        self.parts: dict[str, _NpyWriter] = {}
        self.tmp = tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent)

    def write(self, start: int, total: int, values: dict[str, np.ndarray]) -> None:
        for n, v in values.items():
            part = self.parts.setdefault(n, _NpyWriter(Path(self.tmp) / f"{len(self.parts)}.npy", [n]))
            part.write(start, total, {n: v})

    def close(self) -> None:
        try:
            for part in self.parts.values():
                part.close()
            arrays = {n: np.load(p.path, mmap_mode="r") for n, p in self.parts.items()}
            with open(self.path, "wb") as f:
                np.savez(f, **arrays)
            del arrays
        finally:
            for p in self.parts.values():
                if p.path.exists():
                    os.unlink(p.path)
            os.rmdir(self.tmp)


class _CsvWriter:
    def __init__(self, path: Path, names: list[str]):
        self.file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 -- closed in close()
        self.writer = csv.writer(self.file)
        self.header = False

    def write(self, start: int, total: int, values: dict[str, np.ndarray]) -> None:
        flat = [v.reshape(len(v), -1) for v in values.values()]
        if not self.header:
            self.writer.writerow([n if f.shape[1] == 1 and v.ndim == 1 else f"{n}_{k}"
                                  for (n, v), f in zip(values.items(), flat) for k in range(f.shape[1])])
            self.header = True
        cells = [[_cell(x) for x in row] for row in np.concatenate([f.astype(object) for f in flat], axis=1)]
        self.writer.writerows(cells)

    def close(self) -> None:
        self.file.close()


def _cell(x: Any) -> str:
    if isinstance(x, (np.floating, float)):
        return repr(float(x)) if np.asarray(x).dtype == np.float64 else f"{float(x):.9g}"
    return str(int(x)) if isinstance(x, (np.integer, np.bool_, bool, int)) else str(x)


WRITERS: dict[str, type] = {".npy": _NpyWriter, ".npz": _NpzWriter, ".csv": _CsvWriter}


@contextmanager
def _atomic_output(out: Path) -> Iterator[Path]:
    """A temporary path beside `out`, renamed onto it only when everything was written."""
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp" + out.suffix, dir=out.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ---------------------------------------------------------------- predicting
def predict(prog, names: list[str], feeds: dict[str, Feed], out: str | Path, batch: int = 256,
            argmax: bool = False, progress: Callable[[int, int], None] | None = None) -> int:
    """Evaluate `names` (training off) for every row of `feeds` into `out` (.npy, .npz or .csv),
    `batch` rows at a time; `progress(done, total)` after each batch. Returns the number of rows."""
    out = Path(out)
    if out.suffix.lower() not in WRITERS:
        raise PredictError.about(str(out), f"unknown kind of output `{out.suffix or out.name}`; predictions are "
                                           "written to " + ", ".join(WRITERS))
    needed = needed_inputs(prog, names)
    missing = [n for n in needed if n not in feeds]
    if missing:
        decl = prog.module.inputs[missing[0]]
        given = ", ".join(f"`{n}`" for n in feeds) or "none"
        needs = next(n for n in names if missing[0] in needed_inputs(prog, [n]))
        raise DiagnosticError([Diagnostic(decl.span, f"`{needs}` needs input `{missing[0]}`, which was not given "
                                                     f"(given: {given}); give it with -i {missing[0]}=FILE or "
                                                     "--data DATA")])
    feeds = {n: feeds[n] for n in needed}
    total = _row_count(feeds)
    _check_dims(prog, feeds)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_output(out) as tmp:
        writer = WRITERS[out.suffix.lower()](tmp, names)
        try:
            for start in range(0, total, batch):
                stop = min(start + batch, total)
                rows = {n: np.asarray(f.rows[start:stop]) for n, f in feeds.items()}
                values = prog.run(names, inputs=rows)
                writer.write(start, total, {n: _per_row(n, values[n], stop - start, argmax) for n in names})
                if progress is not None:
                    progress(stop, total)
        finally:
            writer.close()
    return total


def needed_inputs(prog, names: list[str]) -> list[str]:
    """The inputs the values `names` read."""
    return sorted({n for name in names for n in prog._needed_inputs([prog._var(name)])})


def _row_count(feeds: dict[str, Feed]) -> int:
    if not feeds:
        return 1  # a value of params only: one row
    first, *rest = feeds.values()
    for f in rest:
        if len(f.rows) != len(first.rows):
            raise PredictError.about(f.origin, f"input `{f.name}` has {len(f.rows)} rows, but input `{first.name}` "
                                               f"({first.origin}) has {len(first.rows)}")
    if not len(first.rows):
        raise PredictError.about(first.origin, f"input `{first.name}`: no rows")
    return len(first.rows)


def _check_dims(prog, feeds: dict[str, Feed]) -> None:
    """Every feed against its declaration before the first batch (symbolic dims shared by
    inputs included), so a mistake is not found after hours of batches."""
    from .program import FeedError
    try:
        prog._bind_dims({n: np.empty((1,) + tuple(f.rows.shape[1:])) for n, f in feeds.items()})
    except FeedError as e:
        span = e.diagnostics[0].span
        name = next(n for n in feeds if prog.module.inputs[n].span == span)
        raise PredictError([Diagnostic.plain(feeds[name].origin, f"does not fit input `{name}`")
                            .with_note(span, e.diagnostics[0].message)]) from None


def _per_row(name: str, value: np.ndarray, rows: int, argmax: bool) -> np.ndarray:
    if value.ndim == 0 or value.shape[0] != rows:
        raise PredictError.about("wengert", f"`{name}` has shape {list(value.shape)} for a batch of {rows} rows: "
                                            "it is not one value per row, so it cannot be predicted row by row")
    if argmax:
        if value.ndim < 2:
            raise PredictError.about("wengert", f"--argmax: `{name}` has one number per row ({list(value.shape)}), "
                                                "not a vector of class scores")
        return value.reshape(rows, -1).argmax(axis=1)
    return value
