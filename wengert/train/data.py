"""Data pipelines (docs/language.md §9): a source yields named columns, transforms reshape them.

`load(spec)` runs one checked `data` statement and returns one `Dataset` per bound name.
The row transforms (`shuffle`, `split`, `take`) run first, in their written order; then
the value transforms (`standardize`, `scale`, `onehot`, `cast`) run in their written order
on every part. Value transforms act row by row, so they commute with row selection, with
one deliberate exception: `standardize` takes its mean and std from the first (training)
part only, wherever it is written, so that validation data never leaks into training.

Memory-mapped columns (`npy`) are never read whole by a row transform: a slice of a
memmap is still a memmap, and a shuffled one becomes a `RowView` that reads only the rows
a minibatch asks for (`Dataset.rows`).

The checker reads what each source and transform accepts from its signature (the
parameters after `/`; a default makes a keyword optional, `**columns` takes column names),
so a new source is one function added to `SOURCES`.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import gzip
import math
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Union

import attrs
import numpy as np

from ..diagnostics import Diagnostic, DiagnosticError, did_you_mean, file_problem
from ..runtime.ir import DataSpec, InputDecl
from ..runtime.types import NUMPY_DTYPE, DimEnv, format_type
from . import npzfile


class DataError(DiagnosticError):
    """A mistake in a data set or pipeline: reported at the `data` statement, naming the file."""

    @classmethod
    def at(cls, spec: DataSpec, message: str) -> DataError:
        return cls([Diagnostic(spec.span, message)])


# ----------------------------------------------------------------------------- data sets
@attrs.frozen
class RowView:
    """The rows `index` of a memory-mapped array, read only when asked for (a shuffled file)."""

    base: np.ndarray
    index: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index),) + self.base.shape[1:]

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return self.base.ndim

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, rows: slice | np.ndarray) -> np.ndarray:
        return np.array(self.base[self.index[rows]])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self[:]
        return values if dtype is None else values.astype(dtype)


Column = Union[np.ndarray, RowView]  # noqa: UP007 -- in memory, an np.memmap, or a RowView of one
Rows = Union[slice, np.ndarray]  # noqa: UP007


@attrs.define
class Dataset:
    """Named columns of equal length along axis 0."""

    columns: dict[str, Column]
    name: str = ""
    span: Any = attrs.field(default=None, eq=False, repr=False)  # the `data` statement

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def rows(self, index: Rows) -> dict[str, np.ndarray]:
        """The rows `index` (an index array or a slice) of every column, as in-memory arrays."""
        return {name: _read(column, index) for name, column in self.columns.items()}

    def select(self, rows: Rows) -> Dataset:
        """A data set of the rows `rows`, leaving memory-mapped columns on disk."""
        return attrs.evolve(self, columns={name: _select(c, rows) for name, c in self.columns.items()})


def _read(column: Column, rows: Rows) -> np.ndarray:
    if isinstance(column, np.memmap):
        return np.array(column[rows])  # a copy, out of the file
    return np.asarray(column[rows])


def _select(column: Column, rows: Rows) -> Column:
    if isinstance(column, RowView):
        return RowView(column.base, column.index[rows])
    if isinstance(column, np.memmap) and not isinstance(rows, slice):
        return RowView(column, np.arange(len(column))[rows])
    return column[rows]


# ----------------------------------------------------------------------------- load
def load(spec: DataSpec, needed: set[str] | None = None) -> dict[str, Dataset]:
    """Run a data statement: one Dataset per name of `spec.names` (the first is the training part).
    `needed` (the program's inputs) lets a source leave other columns unread (an .npz's other members)."""
    source, kwargs = spec.source
    if source not in SOURCES:
        raise DataError.at(spec, f"unknown data source `{source}`" + did_you_mean(source, SOURCES))
    if needed is not None:
        used = {str(args.get("column")) for _, args in spec.transforms if "column" in args}
        spec = attrs.evolve(spec, needed=frozenset(needed) | used)
    parts = [Dataset(SOURCES[source](spec, **kwargs))]
    for name, _ in spec.transforms:
        if name not in ROW_TRANSFORMS and name not in VALUE_TRANSFORMS:
            raise DataError.at(spec, f"unknown data transform `{name}`")
    for name, args in spec.transforms:
        if name in ROW_TRANSFORMS:
            parts = ROW_TRANSFORMS[name](spec, parts, **args)
    for name, args in spec.transforms:
        if name in VALUE_TRANSFORMS:
            parts = _transform_column(spec, parts, name, dict(args))
    if len(parts) != len(spec.names):
        raise DataError.at(spec, f"the pipeline yields {len(parts)} data sets for {len(spec.names)} names")
    return {name: attrs.evolve(part, name=name, span=spec.span) for name, part in zip(spec.names, parts)}


def _transform_column(spec: DataSpec, parts: list[Dataset], name: str, args: dict[str, Any]) -> list[Dataset]:
    column = args.pop("column")
    known = parts[0].columns
    if column not in known:
        raise DataError.at(spec, f"`{name}`: the data has no column `{column}`" + did_you_mean(str(column), known)
                           + f"; columns: {', '.join(known)}")
    values = VALUE_TRANSFORMS[name](spec, [p.columns[column] for p in parts], column, **args)
    return [attrs.evolve(p, columns={**p.columns, column: v}) for p, v in zip(parts, values)]


# ----------------------------------------------------------------------------- files
MISSING_HINTS = {"/usr/share/datasets/fashion-mnist": "dataset-fashion-mnist"}  # directory -> apt package


def _resolve(spec: DataSpec, path: Any, what: str = "path") -> tuple[str, Path]:
    """(the path as written, the file it names relative to the .dl file)."""
    if not isinstance(path, str) or not path:
        raise DataError.at(spec, f"`{spec.source[0]}`: the {what} must be a file name string, got {path!r}")
    resolved = Path(spec.base_dir) / path
    problem = file_problem(resolved)
    if problem is not None:
        raise DataError.at(spec, f"{path}: {problem}")
    return path, resolved


def _missing_message(file: str, resolved: Path) -> str:
    message = f"{file}: no such file"
    if str(resolved) != file:
        message += f" (looked for {resolved})"
    for directory, package in MISSING_HINTS.items():
        if str(resolved).startswith(directory + "/"):
            message += f"; `apt-get install {package}` provides it"
    return message


@contextlib.contextmanager
def _reading(spec: DataSpec, file: str, resolved: Path) -> Iterator[None]:
    """Turn the ways reading a file fails into DataErrors that name the file."""
    try:
        yield
    except FileNotFoundError:
        raise DataError.at(spec, _missing_message(file, resolved)) from None
    except IsADirectoryError:
        raise DataError.at(spec, f"{file}: is a directory, not a data file") from None
    except PermissionError:
        raise DataError.at(spec, f"{file}: permission denied") from None
    except UnicodeDecodeError as e:
        raise DataError.at(spec, f"{file}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})") \
            from None
    except EOFError as e:
        raise DataError.at(spec, f"{file}: the file is truncated ({e})") from None
    except zlib.error as e:
        raise DataError.at(spec, f"{file}: corrupt compressed data ({e})") from None
    except (OSError, ValueError, zipfile.BadZipFile, csv.Error, struct.error) as e:
        raise DataError.at(spec, f"{file}: cannot read it ({e})") from None


def _check_columns(spec: DataSpec, columns: dict[str, Column], files: dict[str, str]) -> dict[str, Column]:
    """Columns read from files must be numbers with one row per example, equally many in each."""
    if not columns:
        raise DataError.at(spec, f"`{spec.source[0]}` yields no columns")
    for name, column in columns.items():
        if column.ndim == 0:
            raise DataError.at(spec, f"{files[name]}: column `{name}` is a single number, not one row per example")
        if column.dtype.kind not in "biuf":
            raise DataError.at(spec, f"{files[name]}: column `{name}` holds {column.dtype} values, not numbers")
    first = next(iter(columns))
    for name, column in columns.items():
        if len(column) != len(columns[first]):
            raise DataError.at(spec, f"column `{first}` ({files[first]}) has {len(columns[first])} rows but column "
                                     f"`{name}` ({files[name]}) has {len(column)}")
    if len(columns[first]) == 0:
        raise DataError.at(spec, f"{files[first]}: the data has no rows")
    return columns


# ----------------------------------------------------------------------------- file sources
NPY_MAGIC = npzfile.NPY_MAGIC


def _npz(spec: DataSpec, /, path: str) -> dict[str, Column]:
    """The arrays of an archive, by name: every header checked first, then only the members the program
    reads (`spec.needed`) opened, memory-mapped when stored uncompressed (np.savez), else read if they fit."""
    file, resolved = _resolve(spec, path)
    with _reading(spec, file, resolved):
        with open(resolved, "rb") as f:
            head = f.read(len(NPY_MAGIC))
        if head == NPY_MAGIC:
            raise DataError.at(spec, f"{file}: a .npy file, not an .npz archive; read it with npy(x=\"{file}\")")
        if not head.startswith(b"PK"):
            raise DataError.at(spec, f"{file}: not an .npz archive (a zip file of .npy arrays)")
        try:
            headers = npzfile.npz_headers(resolved)
            wanted = [n for n in headers if spec.needed is None or n in spec.needed] or list(headers)
            columns = {n: npzfile.read_member(resolved, headers[n], mmap=True) for n in wanted}
        except npzfile.NpyProblem as e:
            raise DataError.at(spec, f"{file}: {e}") from None
    return _check_columns(spec, columns, {name: file for name in columns})


def _npy(spec: DataSpec, /, **paths: str) -> dict[str, Column]:
    if not paths:
        raise DataError.at(spec, "`npy` needs a file per column, such as npy(x=\"x.npy\", y=\"y.npy\")")
    columns = {name: _npy_column(spec, name, path) for name, path in paths.items()}
    return _check_columns(spec, columns, paths)


def _npy_column(spec: DataSpec, name: str, path: str) -> np.ndarray:
    file, resolved = _resolve(spec, path, f"file of column `{name}`")
    with _reading(spec, file, resolved):
        with open(resolved, "rb") as f:
            if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
                raise DataError.at(spec, f"{file}: not a .npy file")
        try:
            head = npzfile.npy_header(resolved)
        except npzfile.NpyProblem as e:
            raise DataError.at(spec, f"{file}: {e}") from None
        if head.nbytes == 0:
            return np.zeros(head.shape, head.dtype)
        return np.memmap(resolved, dtype=head.dtype, mode="r", offset=head.offset, shape=head.shape,
                         order="F" if head.fortran else "C")


def _csv(spec: DataSpec, /, path: str, header: bool | None = None, delimiter: str = ",",
         **selections: Any) -> dict[str, Column]:
    file, resolved = _resolve(spec, path)
    if not selections:
        raise DataError.at(spec, f"`csv` needs columns, such as csv(\"{file}\", x=0..4, y=4)")
    if not (isinstance(delimiter, str) and len(delimiter) == 1):
        raise DataError.at(spec, f"`csv`: the delimiter must be one character, got {delimiter!r}")
    if header is not None and not isinstance(header, bool):
        raise DataError.at(spec, f"`csv`: header must be true or false, got {header!r}")
    wanted = {name: _csv_selection(spec, name, s) for name, s in selections.items()}
    needed = sorted({c for cols in wanted.values() for c in cols})
    with _reading(spec, file, resolved), open(resolved, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        lines = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    if lines and (header if header is not None else _is_header(lines[0][1], needed)):
        lines = lines[1:]
    if not lines:
        raise DataError.at(spec, f"{file}: no data rows")
    table = np.array([_csv_row(spec, file, line, row, needed) for line, row in lines], dtype=np.float64)
    position = {c: k for k, c in enumerate(needed)}
    columns = {}
    for name, cols in wanted.items():
        values = table[:, [position[c] for c in cols]]  # a copy, one row per example
        columns[name] = values[:, 0] if isinstance(selections[name], int) else values
    return columns


def _csv_selection(spec: DataSpec, name: str, selection: Any) -> list[int]:
    """The CSV columns (0-based) of a `csv` keyword: an int, or a range (start, stop)."""
    def index(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    if index(selection):
        return [selection]
    if isinstance(selection, tuple) and len(selection) == 2 and all(map(index, selection)) \
            and selection[0] < selection[1]:
        return list(range(*selection))
    raise DataError.at(spec, f"`csv`: column `{name}` must be a column number such as 4 or a range such as "
                             f"0..4 (columns count from 0), got {selection!r}")


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_header(row: list[str], needed: list[int]) -> bool:
    """A first row is a header when every cell the program reads is a label: printable text that is not
    a number. A row with an empty, NUL or numeric cell among them is data (and a bad cell is reported)."""
    return all(c < len(row) and _is_label(row[c]) for c in needed)


def _is_label(text: str) -> bool:
    return bool(text.strip()) and text.isprintable() and not is_number(text)


def _csv_row(spec: DataSpec, file: str, line: int, row: list[str], needed: list[int]) -> list[float]:
    if needed[-1] >= len(row):
        raise DataError.at(spec, f"{file}: row {line} has {len(row)} columns, but column {needed[-1] + 1} is read")
    return [_csv_cell(spec, file, line, c, row[c]) for c in needed]


def _csv_cell(spec: DataSpec, file: str, line: int, column: int, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise DataError.at(spec, f"{file}: row {line}, column {column + 1}: `{text}` is not a number") from None


IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"


def _idx(spec: DataSpec, /, **paths: str) -> dict[str, Column]:
    if not paths:
        raise DataError.at(spec, "`idx` needs a file per column, such as idx(x=\"images-idx3-ubyte\", "
                                 "y=\"labels-idx1-ubyte\")")
    columns = {name: _idx_column(spec, name, path) for name, path in paths.items()}
    return _check_columns(spec, columns, paths)


def _idx_column(spec: DataSpec, name: str, path: str) -> np.ndarray:
    """An IDX file, plain or gzipped: the header is read first and the data read only up to the size it
    declares, after comparing that size with the file's (a plain file) and with the memory available."""
    file, resolved = _resolve(spec, path, f"file of column `{name}`")
    with _reading(spec, file, resolved), open(resolved, "rb") as raw:
        zipped = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if zipped else raw
        head = stream.read(4)
        _idx_magic(spec, file, head)
        dims = stream.read(4 * head[3])
        if len(dims) < 4 * head[3]:
            raise DataError.at(spec, f"{file}: truncated in its header ({4 + len(dims)} bytes)")
        sizes = struct.unpack(f">{head[3]}I", dims)
        dtype = np.dtype(IDX_DTYPES[head[2]])
        expected = math.prod(sizes) * dtype.itemsize
        shown = "x".join(map(str, sizes))
        if not zipped:
            found = resolved.stat().st_size - 4 - len(dims)
            if found != expected:
                raise DataError.at(spec, _idx_size_message(file, shown, expected, found))
        limit = npzfile.available_memory() * npzfile.MEMORY_FRACTION
        if expected > limit:
            raise DataError.at(spec, f"{file}: the header declares {shown} values ({expected / 1e9:,.1f} GB), more "
                                     f"than the {limit / 1e9:,.1f} GB of memory available")
        data = stream.read(expected + 1)  # one byte more tells a longer file; a gzip bomb stops here
        if len(data) != expected:
            raise DataError.at(spec, _idx_size_message(file, shown, expected, len(data), exact=not zipped))
    values = np.frombuffer(data, dtype=dtype, count=math.prod(sizes)).reshape(sizes)
    return values.astype(dtype.newbyteorder("="))


def _idx_magic(spec: DataSpec, file: str, head: bytes) -> None:
    """The IDX format: 0x00 0x00, a dtype code, the number of dims, big-endian u32 sizes, the data."""
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in IDX_DTYPES or head[3] == 0:
        raise DataError.at(spec, f"{file}: not an IDX file (magic number 0x{head[:4].hex()}, expected 0x0000 "
                                 f"followed by a type code 08 09 0b 0c 0d 0e and the number of dimensions)")


def _idx_size_message(file: str, shown: str, expected: int, found: int, exact: bool = True) -> str:
    if found < expected:
        return (f"{file}: truncated: the header declares {shown} values ({expected} bytes of data) but the file "
                f"holds {found} bytes")
    extra = f"{found - expected} bytes" if exact else "more bytes"
    return f"{file}: {extra} after the {shown} values its header declares (a corrupt file)"


# ----------------------------------------------------------------------------- generated sources
def _rng(spec: DataSpec, seed: Any, user: str = "") -> np.random.Generator:
    """A generator for the source (or the transform `user`) seeded with `seed`."""
    if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        raise DataError.at(spec, f"`{user or spec.source[0]}`: the seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng(int(seed))


def _noise_level(spec: DataSpec, noise: Any) -> float:
    if not (isinstance(noise, (int, float)) and not isinstance(noise, bool) and noise >= 0):
        raise DataError.at(spec, f"`{spec.source[0]}`: noise must be a number >= 0, got {noise!r}")
    return float(noise)


def _moons(spec: DataSpec, /, examples: int, noise: float = 0.1, seed: int = 0) -> dict[str, Column]:
    """Two interleaving half circles, as sklearn.datasets.make_moons."""
    rng, noise = _rng(spec, seed), _noise_level(spec, noise)
    outer = np.linspace(0, np.pi, examples // 2)
    inner = np.linspace(0, np.pi, examples - examples // 2)
    x = np.concatenate([np.stack([np.cos(outer), np.sin(outer)], axis=1),
                        np.stack([1 - np.cos(inner), 0.5 - np.sin(inner)], axis=1)])
    y = np.concatenate([np.zeros(len(outer), np.int64), np.ones(len(inner), np.int64)])
    order = rng.permutation(examples)
    x, y = x[order], y[order]
    return {"x": x + rng.normal(0.0, noise, x.shape), "y": y}


CLASS_SEPARATION = 3.5  # mean distance between two class means, in noise standard deviations


def _random_classification(spec: DataSpec, /, examples: int, features: int, classes: int = 2,
                           seed: int = 0) -> dict[str, Column]:
    """Gaussian blobs of unit variance around a random mean per class (labels balanced, shuffled).

    The means are drawn N(0, 1) per feature, then scaled so that two class means lie
    CLASS_SEPARATION apart on average: a linear model gets ~90-98% right with 2 classes.
    """
    rng = _rng(spec, seed)
    means = _separated(rng.normal(size=(classes, features)))
    y = rng.permutation(np.arange(examples) % classes).astype(np.int64)
    return {"x": means[y] + rng.normal(size=(examples, features)), "y": y}


def _separated(means: np.ndarray) -> np.ndarray:
    """`means` scaled so that their mean pairwise distance is CLASS_SEPARATION."""
    pairs = [np.linalg.norm(a - b) for k, a in enumerate(means) for b in means[k + 1:]]
    return means * (CLASS_SEPARATION / np.mean(pairs)) if pairs else means


def _random_regression(spec: DataSpec, /, examples: int, features: int, noise: float = 0.1,
                       seed: int = 0) -> dict[str, Column]:
    """x ~ N(0, 1), y = x @ w + noise * N(0, 1) with true weights w ~ N(0, 1)."""
    rng, noise = _rng(spec, seed), _noise_level(spec, noise)
    x = rng.normal(size=(examples, features))
    w = rng.normal(size=features)
    return {"x": x, "y": x @ w + noise * rng.normal(size=examples)}


WORDS_DIR = Path("/usr/share/dict")
WORDS_LISTS = (  # (language, file under WORDS_DIR, the Debian package that provides it); label = position
    ("english", "american-english", "wamerican"),
    ("german", "ngerman", "wngerman"),
    ("french", "french", "wfrench"),
    ("italian", "italian", "witalian"),
    ("spanish", "spanish", "wspanish"),
)
# The fixed alphabet of `words`: every character of the five Debian lists (lowercased), sorted.
# Id k + 1 is WORDS_ALPHABET[k]; 0 pads. Fixed, so that ids never depend on the lists' versions,
# on max_len or on the sample; words with any other character are dropped. Vocabulary: 53 ids.
WORDS_ALPHABET = "-.abcdefghijklmnopqrstuvwxyz\u00df\u00e0\u00e1\u00e2\u00e4\u00e5\u00e7\u00e8\u00e9\u00ea" \
                 "\u00eb\u00ec\u00ed\u00ee\u00ef\u00f1\u00f2\u00f3\u00f4\u00f6\u00f9\u00fa\u00fb\u00fc"
WORDS_VOCAB = len(WORDS_ALPHABET) + 1


def _words(spec: DataSpec, /, per_language: int, max_len: int, seed: int = 0) -> dict[str, Column]:
    """Character-level language identification: `x` i64[n, max_len] character ids (0-padded on
    the right), `y` i64[n] (0 english, 1 german, 2 french, 3 italian, 4 spanish), per_language
    words of each list drawn without replacement; words in two lists are dropped; rows shuffled."""
    for name, value in (("per_language", per_language), ("max_len", max_len)):
        if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0):
            raise DataError.at(spec, f"`words`: {name} must be a positive integer, got {value!r}")
    rng = _rng(spec, seed)
    lists = _word_lists(spec)
    ids = {c: k + 1 for k, c in enumerate(WORDS_ALPHABET)}
    words, labels = [], []
    for label, ((language, _, _), candidates) in enumerate(zip(WORDS_LISTS, lists)):
        fitting = [w for w in candidates if len(w) <= max_len]
        if len(fitting) < per_language:
            raise DataError.at(spec, f"`words`: the {language} list has {len(fitting)} words of at most {max_len} "
                                     f"characters (in no other list), fewer than per_language={per_language}")
        words += [fitting[k] for k in rng.choice(len(fitting), size=int(per_language), replace=False)]
        labels += [label] * int(per_language)
    x = np.zeros((len(words), int(max_len)), dtype=np.int64)
    for row, word in enumerate(words):
        x[row, :len(word)] = [ids[c] for c in word]
    order = rng.permutation(len(words))
    return {"x": x[order], "y": np.array(labels, dtype=np.int64)[order]}


def _word_lists(spec: DataSpec) -> tuple[tuple[str, ...], ...]:
    """Each language's words (sorted) that occur in no other list, read once per set of files."""
    keys = []
    for language, name, package in WORDS_LISTS:
        file = WORDS_DIR / name
        try:
            stat = file.stat()
        except FileNotFoundError:
            raise DataError.at(spec, f"`words`: {file}: no such file (the {language} word list); "
                                     f"`apt-get install {package}` provides it") from None
        keys.append((str(file), stat.st_mtime_ns, stat.st_size))
    try:
        return _read_word_lists(tuple(keys))
    except OSError as e:
        raise DataError.at(spec, f"`words`: {e.filename}: cannot be read ({e.strerror})") from None


@functools.lru_cache(maxsize=4)
def _read_word_lists(keys: tuple[tuple[str, int, int], ...]) -> tuple[tuple[str, ...], ...]:
    alphabet = set(WORDS_ALPHABET)
    sets = []
    for file, _, _ in keys:
        raw = Path(file).read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        lines = {line.strip() for line in text.lower().splitlines()}
        sets.append({w for w in lines if w and alphabet.issuperset(w)})  # drops "cat's", "a b" and empty lines
    seen: set[str] = set()
    shared: set[str] = set()
    for words in sets:
        shared |= seen & words
        seen |= words
    return tuple(tuple(sorted(words - shared)) for words in sets)


SOURCES: dict[str, Callable[..., dict[str, Column]]] = {
    "npz": _npz,
    "npy": _npy,
    "csv": _csv,
    "idx": _idx,
    "moons": _moons,
    "random_classification": _random_classification,
    "random_regression": _random_regression,
    "words": _words,
}


# ----------------------------------------------------------------------------- row transforms
def _shuffle(spec: DataSpec, parts: list[Dataset], /, seed: int = 0) -> list[Dataset]:
    return [p.select(_rng(spec, seed, "shuffle").permutation(len(p))) for p in parts]


def _split(spec: DataSpec, parts: list[Dataset], /, fraction: float) -> list[Dataset]:
    """The first round(fraction * n) rows of the last part, and the rest."""
    last = parts[-1]
    k = round(fraction * len(last))
    if not 0 < k < len(last):
        raise DataError.at(spec, f"`split({fraction})` of {len(last)} rows leaves "
                                 f"{'the first' if k <= 0 else 'the second'} part empty")
    return parts[:-1] + [last.select(slice(0, k)), last.select(slice(k, None))]


def _take(spec: DataSpec, parts: list[Dataset], /, n: int) -> list[Dataset]:
    """The first n rows of every part (all of them when a part has fewer)."""
    return [p.select(slice(0, n)) for p in parts]


ROW_TRANSFORMS: dict[str, Callable[..., list[Dataset]]] = {"shuffle": _shuffle, "split": _split, "take": _take}


# ----------------------------------------------------------------------------- value transforms
# Each takes the column of every part (the first is the training part) and returns the new ones.
def _float_dtype(values: Column) -> np.dtype:
    return values.dtype if values.dtype.kind == "f" else np.dtype(np.float64)


def _standardize(spec: DataSpec, parts: list[Column], /, column: str) -> list[Column]:
    """Zero mean, unit std per feature, with the statistics of the training part."""
    train = np.asarray(parts[0], dtype=np.float64)
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std == 0, 1.0, std)
    return [((np.asarray(p, dtype=np.float64) - mean) / std).astype(_float_dtype(p)) for p in parts]


def _scale(spec: DataSpec, parts: list[Column], /, column: str, factor: float) -> list[Column]:
    if not (isinstance(factor, (int, float)) and not isinstance(factor, bool)):
        raise DataError.at(spec, f"`scale({column}, ...)`: the factor must be a number, got {factor!r}")
    return [np.asarray(p) * factor for p in parts]


def _onehot(spec: DataSpec, parts: list[Column], /, column: str, classes: int) -> list[Column]:
    return [_onehot_part(spec, column, np.asarray(p), classes) for p in parts]


def _onehot_part(spec: DataSpec, column: str, labels: np.ndarray, classes: int) -> np.ndarray:
    where = f"`onehot({column}, {classes})`"
    if labels.dtype.kind == "f":
        fractional = labels != np.round(labels)
        if fractional.any():
            raise DataError.at(spec, f"{where}: label {labels[fractional][0]} is not a whole number")
    outside = (labels < 0) | (labels >= classes)
    if outside.any():
        raise DataError.at(spec, f"{where}: label {_number(labels[outside][0])} is outside 0..{classes - 1}")
    return np.eye(classes, dtype=np.float64)[labels.astype(np.int64)]


def _number(value: Any) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _cast(spec: DataSpec, parts: list[Column], /, column: str, dtype: str) -> list[Column]:
    if dtype not in NUMPY_DTYPE:
        raise DataError.at(spec, f"`cast({column}, ...)`: unknown dtype {dtype!r}; known: {', '.join(NUMPY_DTYPE)}")
    target = np.dtype(NUMPY_DTYPE[dtype])
    return [p if p.dtype == target else np.asarray(p).astype(target) for p in parts]


VALUE_TRANSFORMS: dict[str, Callable[..., list[Column]]] = {
    "standardize": _standardize,
    "scale": _scale,
    "onehot": _onehot,
    "cast": _cast,
}


# ----------------------------------------------------------------------------- binding to inputs
def bind(dataset: Dataset, inputs: dict[str, InputDecl], dims: DimEnv | None = None) -> None:
    """Check that every column named like an input fits it (rank and the non-batch dims)."""
    for name, column in dataset.columns.items():
        decl = inputs.get(name)
        if decl is None:
            continue
        declared = decl.var.type.shape
        if dims is not None:
            declared = dims.resolve_shape(declared)
        if not _fits(tuple(column.shape), declared):
            shape = ", ".join(map(str, column.shape))
            message = (f"column `{name}` has shape [{shape}] but input `{name}` is "
                       f"{format_type(decl.var.type.dtype, declared)}")
            if dataset.name:
                message += f" (data `{dataset.name}`)"
            raise DataError([Diagnostic(dataset.span, message).with_note(decl.span, f"input `{name}` is declared here")])


def _fits(shape: tuple[int, ...], declared: tuple[Any, ...]) -> bool:
    """Same rank, and every non-batch dim that is a number is the same number."""
    if len(shape) != len(declared):
        return False
    return all(not isinstance(d, int) or d == s for s, d in zip(shape[1:], declared[1:]))
