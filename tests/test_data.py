"""Data pipelines (§9): every source and transform on real values, the errors, binding to inputs.

Data statements are checked by the front end (so DataSpecs are real ones); the program
is given a path inside tmp_path, so that relative data files resolve there.
"""
from __future__ import annotations

import gzip
import struct
import textwrap
import zipfile

import numpy as np
import pytest

from wengert.diagnostics import DiagnosticError
from wengert.dsl.lower import lower_source
from wengert.diagnostics import Source
from wengert.train.data import DataError, Dataset, RowView, bind, load


# ----------------------------------------------------------------------------- helpers
def module_of(tmp_path, text: str):
    """Check a program whose .dl file lives in tmp_path."""
    return lower_source(Source(str(tmp_path / "t.dl"), textwrap.dedent(text).lstrip("\n")))


def run(tmp_path, pipeline: str, names: str = "d") -> dict[str, Dataset]:
    """Load `data NAMES = PIPELINE` (the data statement is line 1 of t.dl)."""
    module = module_of(tmp_path, f"data {names} = {pipeline}\n")
    return load(module.data[names.strip("()").split(",")[0].strip()])


def one(tmp_path, pipeline: str) -> Dataset:
    return run(tmp_path, pipeline)["d"]


def fails(tmp_path, pipeline: str, names: str = "d") -> str:
    """The message of the DataError that loading the pipeline raises; checks it points at line 1."""
    with pytest.raises(DataError) as info:
        run(tmp_path, pipeline, names)
    (d,) = info.value.diagnostics
    assert (d.span.line, d.span.column) == (1, 1)
    assert str(info.value).startswith(f"{tmp_path / 't.dl'}:1:1: error: ")
    return d.message


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    """The IDX format of MNIST: 0x0000, a dtype code, ndims, big-endian u32 sizes, big-endian data."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
            np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}[array.dtype]
    raw = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


CSV_ROWS = [[1.0, 2.0, 0.5, 1], [3.0, 4.0, 1.5, 0], [5.0, 6.0, 2.5, 2]]


def write_csv(path, header: str | None = None, rows=CSV_ROWS, delimiter: str = ",") -> None:
    lines = [header] if header else []
    lines += [delimiter.join(f"{v:g}" for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- moons
def test_moons_shapes_balance_and_circles(tmp_path):
    d = one(tmp_path, "moons(101, noise=0, seed=3)")
    x, y = d.columns["x"], d.columns["y"]
    assert len(d) == 101 and x.shape == (101, 2) and x.dtype == np.float64
    assert y.shape == (101,) and y.dtype == np.int64
    assert sorted(np.bincount(y)) == [50, 51]
    # Without noise the points lie on the two half circles.
    outer, inner = x[y == 0], x[y == 1]
    np.testing.assert_allclose(np.hypot(outer[:, 0], outer[:, 1]), 1.0)
    np.testing.assert_allclose(np.hypot(inner[:, 0] - 1, inner[:, 1] - 0.5), 1.0)
    assert (outer[:, 1] >= -1e-12).all() and (inner[:, 1] <= 0.5 + 1e-12).all()
    assert not (np.diff(y) >= 0).all()  # shuffled, not sorted by class


def test_moons_seeded_and_noise(tmp_path):
    a = one(tmp_path, "moons(200, noise=0.2, seed=1)")
    b = one(tmp_path, "moons(200, noise=0.2, seed=1)")
    c = one(tmp_path, "moons(200, noise=0.2, seed=2)")
    np.testing.assert_array_equal(a.columns["x"], b.columns["x"])
    np.testing.assert_array_equal(a.columns["y"], b.columns["y"])
    assert not np.array_equal(a.columns["x"], c.columns["x"])
    # Noise moves the points off the circles by about its standard deviation.
    x, y = a.columns["x"], a.columns["y"]
    off = np.concatenate([np.hypot(*x[y == 0].T) - 1, np.hypot(x[y == 1, 0] - 1, x[y == 1, 1] - 0.5) - 1])
    assert 0.1 < off.std() < 0.3
    clean = one(tmp_path, "moons(200, noise=0, seed=1)")
    assert not np.allclose(clean.columns["x"], x)


def test_moons_rejects_negative_noise(tmp_path):
    assert "noise must be a number >= 0" in fails(tmp_path, "moons(10, noise=-1)")


# ----------------------------------------------------------------------------- random sources
def test_random_classification(tmp_path):
    d = one(tmp_path, "random_classification(examples=300, features=5, classes=3, seed=4)")
    x, y = d.columns["x"], d.columns["y"]
    assert x.shape == (300, 5) and x.dtype == np.float64 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [100, 100, 100]
    again = one(tmp_path, "random_classification(examples=300, features=5, classes=3, seed=4)")
    np.testing.assert_array_equal(again.columns["x"], x)
    other = one(tmp_path, "random_classification(examples=300, features=5, classes=3, seed=5)")
    assert not np.array_equal(other.columns["x"], x)
    # Unit noise around separated class means.
    means = np.stack([x[y == k].mean(axis=0) for k in range(3)])
    within = np.concatenate([x[y == k] - means[k] for k in range(3)])
    assert 0.85 < within.std() < 1.15
    gaps = [np.linalg.norm(means[i] - means[j]) for i in range(3) for j in range(i + 1, 3)]
    assert 2.5 < np.mean(gaps) < 4.5


def test_random_classification_is_learnable_but_not_trivial(tmp_path):
    """A linear classifier (least squares on ±1 targets) gets between 85% and 99.5% on held-out data."""
    d = one(tmp_path, "random_classification(examples=2000, features=100, seed=0)")
    x, y = np.c_[d.columns["x"], np.ones(2000)], d.columns["y"]
    w = np.linalg.lstsq(x[:1500], 2.0 * y[:1500] - 1, rcond=None)[0]
    accuracy = ((x[1500:] @ w > 0) == y[1500:]).mean()
    assert 0.85 < accuracy < 0.995


def test_random_regression(tmp_path):
    exact = one(tmp_path, "random_regression(examples=50, features=4, noise=0, seed=2)")
    x, y = exact.columns["x"], exact.columns["y"]
    assert x.shape == (50, 4) and y.shape == (50,) and y.dtype == np.float64
    w = np.linalg.lstsq(x, y, rcond=None)[0]
    np.testing.assert_allclose(x @ w, y, atol=1e-10)  # y is exactly linear in x
    noisy = one(tmp_path, "random_regression(examples=2000, features=4, noise=0.5, seed=2)")
    x, y = noisy.columns["x"], noisy.columns["y"]
    w = np.linalg.lstsq(x, y, rcond=None)[0]
    assert 0.45 < (y - x @ w).std() < 0.55


# ----------------------------------------------------------------------------- csv
def test_csv_columns_and_ranges(tmp_path):
    write_csv(tmp_path / "train.csv")
    d = one(tmp_path, 'csv("train.csv", x=0..3, y=3)')
    rows = np.array(CSV_ROWS)
    assert d.columns["x"].shape == (3, 3) and d.columns["x"].dtype == np.float64
    np.testing.assert_array_equal(d.columns["x"], rows[:, :3])
    assert d.columns["y"].shape == (3,)
    np.testing.assert_array_equal(d.columns["y"], rows[:, 3])
    d = one(tmp_path, 'csv("train.csv", a=1, b=1..3)')  # overlapping, out of order: fine
    np.testing.assert_array_equal(d.columns["a"], rows[:, 1])
    np.testing.assert_array_equal(d.columns["b"], rows[:, 1:3])


def test_csv_header_detected_or_given(tmp_path):
    write_csv(tmp_path / "h.csv", header="f1,f2,f3,label")
    detected = one(tmp_path, 'csv("h.csv", x=0..3, y=3)')
    assert len(detected) == 3
    np.testing.assert_array_equal(detected.columns["y"], [1, 0, 2])
    given = one(tmp_path, 'csv("h.csv", header=true, x=0..3, y=3)')
    np.testing.assert_array_equal(given.columns["x"], detected.columns["x"])
    # A header row of numbers is only skipped when the program says there is one.
    write_csv(tmp_path / "n.csv")
    assert len(one(tmp_path, 'csv("n.csv", header=true, x=0..3)')) == 2
    assert len(one(tmp_path, 'csv("n.csv", header=false, x=0..3)')) == 3
    message = fails(tmp_path, 'csv("h.csv", header=false, x=0..3)')
    assert message == "h.csv: row 1, column 1: `f1` is not a number"


def test_csv_delimiter_blank_lines_and_text_columns_not_read(tmp_path):
    (tmp_path / "s.csv").write_text("id;a;b\nfirst;1;2\n\nsecond;3;4\n")
    d = one(tmp_path, 'csv("s.csv", delimiter=";", x=1..3)')
    np.testing.assert_array_equal(d.columns["x"], [[1, 2], [3, 4]])


def test_csv_bad_cell_names_row_and_column(tmp_path):
    rows = [[1, 2, 3]] * 20
    write_csv(tmp_path / "train.csv", rows=rows)
    text = (tmp_path / "train.csv").read_text().split("\n")
    text[16] = "1,2,abc"
    (tmp_path / "train.csv").write_text("\n".join(text))
    assert fails(tmp_path, 'csv("train.csv", x=0..2, y=2)') == "train.csv: row 17, column 3: `abc` is not a number"
    text[16] = "1,,3"
    (tmp_path / "train.csv").write_text("\n".join(text))
    assert fails(tmp_path, 'csv("train.csv", x=0..2, y=2)') == "train.csv: row 17, column 2: `` is not a number"


def test_csv_short_row_empty_file_and_bad_selection(tmp_path):
    (tmp_path / "short.csv").write_text("1,2,3\n4,5\n")
    assert fails(tmp_path, 'csv("short.csv", x=0..3)') == "short.csv: row 2 has 2 columns, but column 3 is read"
    (tmp_path / "empty.csv").write_text("a,b\n")
    assert fails(tmp_path, 'csv("empty.csv", x=0..2)') == "empty.csv: no data rows"
    write_csv(tmp_path / "ok.csv")
    assert "column `x` must be a column number" in fails(tmp_path, 'csv("ok.csv", x="a")')
    assert "`csv` needs columns" in fails(tmp_path, 'csv("ok.csv")')


def test_csv_not_text(tmp_path):
    (tmp_path / "bin.csv").write_bytes(b"1,2\n\xff\xfe,3\n")
    assert fails(tmp_path, 'csv("bin.csv", x=0..2)').startswith("bin.csv: not UTF-8 text")


# ----------------------------------------------------------------------------- npz
def test_npz_every_array_is_a_column(tmp_path):
    x = np.arange(12.0).reshape(4, 3)
    y = np.array([0, 1, 1, 0])
    np.savez(tmp_path / "d.npz", x=x, y=y)
    d = one(tmp_path, 'npz("d.npz")')
    assert set(d.columns) == {"x", "y"}
    np.testing.assert_array_equal(d.columns["x"], x)
    np.testing.assert_array_equal(d.columns["y"], y)
    np.savez_compressed(tmp_path / "c.npz", x=x)
    np.testing.assert_array_equal(one(tmp_path, 'npz("c.npz")').columns["x"], x)


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}, None], dtype=object))
    assert fails(tmp_path, 'npz("obj.npz")') == "obj.npz: `x` holds Python objects (it would need pickle, which wengert never loads)"
    np.save(tmp_path / "plain.npy", np.zeros(3))
    assert "a .npy file, not an .npz archive" in fails(tmp_path, 'npz("plain.npy")')
    (tmp_path / "text.npz").write_text("hello")
    assert fails(tmp_path, 'npz("text.npz")') == "text.npz: not an .npz archive (a zip file of .npy arrays)"
    np.savez(tmp_path / "big.npz", x=np.arange(1000.0))
    raw = (tmp_path / "big.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    assert fails(tmp_path, 'npz("cut.npz")').startswith("cut.npz: ")
    np.savez(tmp_path / "ragged.npz", x=np.zeros((4, 2)), y=np.zeros(3))
    assert fails(tmp_path, 'npz("ragged.npz")') == \
        "column `x` (ragged.npz) has 4 rows but column `y` (ragged.npz) has 3"
    np.savez(tmp_path / "scalar.npz", x=np.float64(1.0))
    assert "is a single number" in fails(tmp_path, 'npz("scalar.npz")')
    np.savez(tmp_path / "strings.npz", x=np.array(["a", "b"]))
    assert "not numbers" in fails(tmp_path, 'npz("strings.npz")')


def test_npz_corrupt_member(tmp_path):
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as z:
        z.writestr("x.npy", b"\x93NUMPY garbage")
    assert fails(tmp_path, 'npz("bad.npz")').startswith("bad.npz: ")


# ----------------------------------------------------------------------------- npy (memory-mapped)
def write_npy(tmp_path, n: int = 10):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int64) % 2
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return x, y


def test_npy_columns_are_memory_mapped(tmp_path):
    x, y = write_npy(tmp_path)
    d = one(tmp_path, 'npy(x="x.npy", y="y.npy")')
    assert isinstance(d.columns["x"], np.memmap) and isinstance(d.columns["y"], np.memmap)
    batch = d.rows(slice(2, 5))
    assert type(batch["x"]) is np.ndarray and type(batch["y"]) is np.ndarray
    np.testing.assert_array_equal(batch["x"], x[2:5])
    picked = d.rows(np.array([7, 1]))
    assert type(picked["x"]) is np.ndarray
    np.testing.assert_array_equal(picked["x"], x[[7, 1]])
    np.testing.assert_array_equal(picked["y"], y[[7, 1]])


def test_npy_row_transforms_stay_on_disk(tmp_path):
    x, y = write_npy(tmp_path, 20)
    parts = run(tmp_path, 'npy(x="x.npy", y="y.npy") |> take(15) |> split(0.6) |> cast(y, i64)', "(tr, va)")
    tr, va = parts["tr"], parts["va"]
    assert isinstance(tr.columns["x"], np.memmap) and isinstance(va.columns["y"], np.memmap)
    np.testing.assert_array_equal(tr.rows(slice(None))["x"], x[:9])
    np.testing.assert_array_equal(va.rows(slice(None))["x"], x[9:15])
    shuffled = one(tmp_path, 'npy(x="x.npy", y="y.npy") |> shuffle(1)')
    view = shuffled.columns["x"]
    assert isinstance(view, RowView) and isinstance(view.base, np.memmap)
    assert view.shape == (20, 3) and len(shuffled) == 20
    order = np.random.default_rng(1).permutation(20)
    batch = shuffled.rows(slice(0, 4))
    assert type(batch["x"]) is np.ndarray
    np.testing.assert_array_equal(batch["x"], x[order[:4]])
    np.testing.assert_array_equal(batch["y"], y[order[:4]])
    # A shuffled split of a view stays a view; changing values reads only that part.
    parts = run(tmp_path, 'npy(x="x.npy", y="y.npy") |> shuffle(1) |> split(0.5) |> scale(x, 2)', "(a, b)")
    assert isinstance(parts["a"].columns["y"], RowView)
    assert type(parts["b"].columns["x"]) is np.ndarray
    np.testing.assert_array_equal(parts["b"].columns["x"], 2 * x[order[10:]])


def test_npy_errors(tmp_path):
    write_npy(tmp_path)
    np.save(tmp_path / "short.npy", np.zeros(9))
    assert fails(tmp_path, 'npy(x="x.npy", y="short.npy")') == \
        "column `x` (x.npy) has 10 rows but column `y` (short.npy) has 9"
    raw = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(raw[:-8])
    assert fails(tmp_path, 'npy(x="cut.npy")').startswith("cut.npy: the array is truncated: its header declares float32[10, 3]")
    (tmp_path / "text.npy").write_text("1 2 3")
    assert fails(tmp_path, 'npy(x="text.npy")') == "text.npy: not a .npy file"
    assert "`npy` needs a file per column" in fails(tmp_path, "npy()")


# ----------------------------------------------------------------------------- idx
@pytest.mark.parametrize("compress", [False, True])
def test_idx_images_and_labels(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / f"images-idx3-ubyte{suffix}", images, compress)
    write_idx(tmp_path / f"labels-idx1-ubyte{suffix}", labels, compress)
    d = one(tmp_path, f'idx(x="images-idx3-ubyte{suffix}", y="labels-idx1-ubyte{suffix}")')
    assert d.columns["x"].dtype == np.uint8 and d.columns["x"].shape == (5, 4, 3)
    np.testing.assert_array_equal(d.columns["x"], images)
    np.testing.assert_array_equal(d.columns["y"], labels)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_big_endian_types(tmp_path, dtype):
    values = (np.arange(24).reshape(6, 4) - 7).astype(dtype) * (1.5 if np.dtype(dtype).kind == "f" else 1)
    values = values.astype(dtype)
    write_idx(tmp_path / "v.idx", values)
    column = one(tmp_path, 'idx(v="v.idx")').columns["v"]
    assert column.dtype == np.dtype(dtype) and column.dtype.isnative
    np.testing.assert_array_equal(column, values)


def test_idx_corrupt_files(tmp_path):
    write_idx(tmp_path / "good", np.zeros((4, 2, 2), np.uint8))
    raw = (tmp_path / "good").read_bytes()
    (tmp_path / "cut").write_bytes(raw[:-3])
    assert fails(tmp_path, 'idx(x="cut")') == \
        "cut: truncated: the header declares 4x2x2 values (16 bytes of data) but the file holds 13 bytes"
    (tmp_path / "cut-header").write_bytes(raw[:9])
    assert fails(tmp_path, 'idx(x="cut-header")') == "cut-header: truncated in its header (9 bytes)"
    (tmp_path / "magic").write_bytes(b"\x00\x00\x07\x01" + raw[4:])
    assert fails(tmp_path, 'idx(x="magic")').startswith("magic: not an IDX file (magic number 0x00000701")
    (tmp_path / "text").write_text("P5 not idx")
    assert fails(tmp_path, 'idx(x="text")').startswith("text: not an IDX file")
    (tmp_path / "long").write_bytes(raw + b"\0\0")
    assert "2 bytes after the 4x2x2 values" in fails(tmp_path, 'idx(x="long")')
    (tmp_path / "cut.gz").write_bytes(gzip.compress(raw)[:-10])
    assert fails(tmp_path, 'idx(x="cut.gz")').startswith("cut.gz: ")
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b" + b"\x08\x00" + b"garbage" * 5)
    assert fails(tmp_path, 'idx(x="bad.gz")').startswith("bad.gz: ")
    write_idx(tmp_path / "labels", np.zeros(3, np.uint8))
    assert fails(tmp_path, 'idx(x="good", y="labels")') == \
        "column `x` (good) has 4 rows but column `y` (labels) has 3"


def test_missing_files_are_named(tmp_path):
    message = fails(tmp_path, 'idx(x="nope-idx3-ubyte")')
    assert message == f"nope-idx3-ubyte: no such file (looked for {tmp_path / 'nope-idx3-ubyte'})"
    assert fails(tmp_path, 'npz("gone.npz")').startswith("gone.npz: no such file")
    assert fails(tmp_path, 'npy(x="gone.npy")').startswith("gone.npy: no such file")
    assert fails(tmp_path, 'csv("gone.csv", x=0)').startswith("gone.csv: no such file")
    (tmp_path / "dir.csv").mkdir()
    assert fails(tmp_path, 'csv("dir.csv", x=0)') == "dir.csv: is a directory, not a regular file"


def test_missing_fashion_mnist_says_which_package(tmp_path):
    path = "/usr/share/datasets/fashion-mnist/no-such-file-idx3-ubyte.gz"
    message = fails(tmp_path, f'idx(x="{path}")')
    assert message.startswith(f"{path}: no such file")
    assert "`apt-get install dataset-fashion-mnist` provides it" in message


# ----------------------------------------------------------------------------- row transforms
def test_shuffle_permutes_rows_together_and_is_seeded(tmp_path):
    write_csv(tmp_path / "n.csv", rows=[[k, 10 * k] for k in range(30)])
    plain = one(tmp_path, 'csv("n.csv", a=0, b=1)')
    a = one(tmp_path, 'csv("n.csv", a=0, b=1) |> shuffle(7)')
    again = one(tmp_path, 'csv("n.csv", a=0, b=1) |> shuffle(seed=7)')
    other = one(tmp_path, 'csv("n.csv", a=0, b=1) |> shuffle(8)')
    assert sorted(a.columns["a"]) == list(plain.columns["a"])
    np.testing.assert_array_equal(a.columns["b"], 10 * a.columns["a"])  # rows stay whole
    np.testing.assert_array_equal(a.columns["a"], plain.columns["a"][np.random.default_rng(7).permutation(30)])
    np.testing.assert_array_equal(again.columns["a"], a.columns["a"])
    assert not np.array_equal(other.columns["a"], a.columns["a"])


def test_split_and_take(tmp_path):
    parts = run(tmp_path, "moons(100, seed=1) |> split(0.8)", "(tr, va)")
    whole = one(tmp_path, "moons(100, seed=1)")
    assert list(parts) == ["tr", "va"] and (len(parts["tr"]), len(parts["va"])) == (80, 20)
    np.testing.assert_array_equal(parts["tr"].columns["x"], whole.columns["x"][:80])
    np.testing.assert_array_equal(parts["va"].columns["y"], whole.columns["y"][80:])
    assert parts["tr"].name == "tr" and parts["va"].name == "va"
    three = run(tmp_path, "moons(100, seed=1) |> split(0.5) |> split(0.6)", "(a, b, c)")
    assert [len(p) for p in three.values()] == [50, 30, 20]
    np.testing.assert_array_equal(three["c"].columns["x"], whole.columns["x"][80:])
    taken = one(tmp_path, "moons(100, seed=1) |> take(7)")
    np.testing.assert_array_equal(taken.columns["x"], whole.columns["x"][:7])
    # take after a split takes from every part
    parts = run(tmp_path, "moons(100, seed=1) |> split(0.8) |> take(5)", "(tr, va)")
    assert (len(parts["tr"]), len(parts["va"])) == (5, 5)
    np.testing.assert_array_equal(parts["va"].columns["x"], whole.columns["x"][80:85])
    assert "leaves the second part empty" in fails(tmp_path, "moons(10) |> split(0.99)", "(a, b)")


def test_rows_reads_batches(tmp_path):
    d = one(tmp_path, "moons(10, seed=1)")
    batch = d.rows(np.array([3, 0]))
    np.testing.assert_array_equal(batch["x"], d.columns["x"][[3, 0]])
    assert set(batch) == {"x", "y"}


# ----------------------------------------------------------------------------- value transforms
def test_onehot_cast_scale(tmp_path):
    write_csv(tmp_path / "t.csv")
    d = one(tmp_path, 'csv("t.csv", x=0..2, z=2, y=3) |> onehot(y, 3) |> cast(x, f32) |> scale(z, 10)')
    np.testing.assert_array_equal(d.columns["y"], [[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    assert d.columns["y"].dtype == np.float64
    assert d.columns["x"].dtype == np.float32
    np.testing.assert_array_equal(d.columns["x"], [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(d.columns["z"], [5, 15, 25])
    ints = one(tmp_path, 'csv("t.csv", y=3) |> cast(y, i32)')
    assert ints.columns["y"].dtype == np.int32
    flags = one(tmp_path, 'csv("t.csv", y=3) |> cast(y, bool)')
    np.testing.assert_array_equal(flags.columns["y"], [True, False, True])
    labels = one(tmp_path, "moons(10) |> onehot(y, 2)")
    assert labels.columns["y"].shape == (10, 2)
    np.testing.assert_array_equal(labels.columns["y"].sum(axis=1), np.ones(10))


def test_onehot_label_out_of_range(tmp_path):
    write_csv(tmp_path / "t.csv")
    assert fails(tmp_path, 'csv("t.csv", y=3) |> onehot(y, 2)') == "`onehot(y, 2)`: label 2 is outside 0..1"
    assert fails(tmp_path, 'csv("t.csv", y=2) |> onehot(y, 3)') == "`onehot(y, 3)`: label 0.5 is not a whole number"


def test_transform_of_an_unknown_column(tmp_path):
    message = fails(tmp_path, "moons(10) |> standardize(xx)")
    assert message == "`standardize`: the data has no column `xx` (did you mean `x`?); columns: x, y"


def test_standardize_uses_the_training_part_only(tmp_path):
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(3.0, 2.0, 100), rng.normal(-1.0, 0.5, 100), np.full(100, 4.0)]
    np.save(tmp_path / "x.npy", x)
    # Written before the split, it still takes its statistics from the training part.
    parts = run(tmp_path, 'npy(x="x.npy") |> standardize(x) |> split(0.7)', "(tr, va)")
    tr, va = parts["tr"].columns["x"], parts["va"].columns["x"]
    np.testing.assert_allclose(tr[:, :2].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(tr[:, :2].std(axis=0), 1.0)
    np.testing.assert_array_equal(tr[:, 2], 0.0)  # a constant feature: std 0 counts as 1
    mean, std = x[:70].mean(axis=0), x[:70].std(axis=0)
    std[2] = 1.0
    np.testing.assert_allclose(va, (x[70:] - mean) / std)
    assert abs(va[:, 0].mean()) > 1e-6  # the validation part is not standardized by its own statistics
    after = run(tmp_path, 'npy(x="x.npy") |> split(0.7) |> standardize(x)', "(tr, va)")
    np.testing.assert_allclose(after["va"].columns["x"], va)


def test_standardize_keeps_f32_and_converts_ints(tmp_path):
    np.save(tmp_path / "f.npy", np.arange(10, dtype=np.float32))
    np.save(tmp_path / "i.npy", np.arange(10, dtype=np.int64))
    d = one(tmp_path, 'npy(f="f.npy", i="i.npy") |> standardize(f) |> standardize(i)')
    assert d.columns["f"].dtype == np.float32 and d.columns["i"].dtype == np.float64
    np.testing.assert_allclose(d.columns["i"], (np.arange(10) - 4.5) / np.arange(10).std())


def test_value_transforms_apply_in_written_order(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(10.0))
    scaled_after = one(tmp_path, 'npy(x="x.npy") |> standardize(x) |> scale(x, 2)').columns["x"]
    scaled_before = one(tmp_path, 'npy(x="x.npy") |> scale(x, 2) |> standardize(x)').columns["x"]
    np.testing.assert_allclose(scaled_after.std(), 2.0)
    np.testing.assert_allclose(scaled_before.std(), 1.0)


# ----------------------------------------------------------------------------- bind
PROGRAM = """
input x: f64[batch, 2]
input y: f64[batch]
data (train, valid) = csv("train.csv", x=0..2, y=3) |> shuffle(1) |> split(0.5)
"""


def test_bind_accepts_matching_columns(tmp_path):
    write_csv(tmp_path / "train.csv", rows=[[k, k + 1, 0, k % 2] for k in range(10)])
    module = module_of(tmp_path, PROGRAM)
    parts = load(module.data["train"])
    assert set(parts) == {"train", "valid"} and len(parts["train"]) == 5
    for part in parts.values():
        bind(part, module.inputs, module.dims)
    extra = Dataset({"x": np.zeros((4, 2)), "unused": np.zeros((4, 7, 7))})
    bind(extra, module.inputs, module.dims)  # columns that are not inputs are ignored


def test_bind_rejects_a_column_of_the_wrong_shape(tmp_path):
    write_csv(tmp_path / "train.csv", rows=[[k, k + 1, 0, k % 2] for k in range(10)])
    module = module_of(tmp_path, PROGRAM.replace("x=0..2", "x=0..3"))
    train = load(module.data["train"])["train"]
    with pytest.raises(DataError) as info:
        bind(train, module.inputs, module.dims)
    assert isinstance(info.value, DiagnosticError)
    d = info.value.diagnostics[0]
    assert d.message == "column `x` has shape [5, 3] but input `x` is f64[batch, 2] (data `train`)"
    assert d.span.line == 3  # the data statement
    assert d.notes[0][0].line == 1 and d.notes[0][1] == "input `x` is declared here"


def test_bind_rank_and_symbolic_dims(tmp_path):
    module = module_of(tmp_path, """
        input x: f32[batch, n, 3]
        input k: i64
        data d = moons(10)
    """)
    bind(Dataset({"x": np.zeros((4, 9, 3))}), module.inputs, module.dims)  # `n` takes any size
    with pytest.raises(DataError, match=r"column `x` has shape \[4, 9, 2\] but input `x` is f32\[batch, n, 3\]"):
        bind(Dataset({"x": np.zeros((4, 9, 2))}), module.inputs, module.dims)
    with pytest.raises(DataError, match=r"column `x` has shape \[4, 3\] but input `x` is f32\[batch, n, 3\]"):
        bind(Dataset({"x": np.zeros((4, 3))}), module.inputs, module.dims)
    with pytest.raises(DataError, match=r"column `k` has shape \[4\] but input `k` is i64\[\]"):
        bind(Dataset({"k": np.zeros(4)}), module.inputs, module.dims)


# ----------------------------------------------------------------------------- end to end
def test_end_to_end_through_the_checker(tmp_path):
    (tmp_path / "data").mkdir()
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (40, 4, 4), dtype=np.uint8)
    labels = (np.arange(40) % 10).astype(np.uint8)
    write_idx(tmp_path / "data" / "images-idx3-ubyte.gz", images, compress=True)
    write_idx(tmp_path / "data" / "labels-idx1-ubyte", labels)
    module = module_of(tmp_path, """
        input x: f32[batch, 4, 4]
        input y: f32[batch, 10]
        logits = sum(x, axis=2) @ ones([4, 10])
        data (train, valid) = idx(x="data/images-idx3-ubyte.gz", y="data/labels-idx1-ubyte")
                              |> shuffle(2) |> split(0.75) |> cast(x, f32) |> scale(x, 1 / 255) |> onehot(y, 10)
    """)
    spec = module.data["train"]
    assert module.data["valid"] is spec and spec.base_dir == str(tmp_path)
    parts = load(spec)
    train, valid = parts["train"], parts["valid"]
    assert (len(train), len(valid)) == (30, 10)
    for part in (train, valid):
        bind(part, module.inputs, module.dims)
    order = np.random.default_rng(2).permutation(40)
    batch = train.rows(np.arange(8))
    assert batch["x"].dtype == np.float32 and batch["x"].shape == (8, 4, 4)
    np.testing.assert_allclose(batch["x"], images[order[:8]] / np.float32(255), rtol=1e-6)
    np.testing.assert_array_equal(batch["y"].argmax(axis=1), labels[order[:8]])
    np.testing.assert_array_equal(valid.rows(slice(None))["y"].argmax(axis=1), labels[order[30:]])


def test_negative_seeds_are_data_errors(tmp_path):
    assert fails(tmp_path, "moons(10, seed=-1)") == "`moons`: the seed must be a non-negative integer, got -1"
    assert fails(tmp_path, "moons(10) |> shuffle(-2)") == "`shuffle`: the seed must be a non-negative integer, got -2"
