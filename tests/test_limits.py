"""Every size checked before allocation, every initializer argument and literal validated (issue 19):
diagnostics at the line, never a MemoryError, a wrap-around or a traceback."""
from __future__ import annotations

import gzip
import io
import re
import struct
import time
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

import wengert
from wengert.cli import main
from wengert.diagnostics import DiagnosticError
from wengert.train import data, npzfile


def load_pipeline(tmp_path, pipeline: str) -> data.Dataset:
    module = wengert.compile(f"data d = {pipeline}\n", path=str(tmp_path / "t.dl")).module
    return data.load(module.data["d"])["d"]


def one(tmp_path, pipeline: str) -> data.Dataset:
    return load_pipeline(tmp_path, pipeline)


def fails(tmp_path, pipeline: str) -> str:
    """The message of the DataError loading `data d = PIPELINE` raises (at line 1)."""
    with pytest.raises(data.DataError) as e:
        load_pipeline(tmp_path, pipeline)
    (d,) = e.value.diagnostics
    assert d.span.line == 1
    return d.message


def error_of(source: str) -> str:
    """The first diagnostic of checking `source` (file t.dl), as `LINE:COL: message`."""
    with pytest.raises(DiagnosticError) as e:
        wengert.compile(source, path="t.dl")
    d = e.value.diagnostics[0]
    return f"{d.span.line}:{d.span.column}: {d.message}"


@pytest.mark.parametrize("source, expected", [
    ("input x: f64[batch, -1]\ny = x[:, 0:2]\n", "1:21: a dimension cannot be negative, got -1"),
    ("y = zeros([100000, 100000])\n", "1:5: this value (f64[100000, 100000]) needs 80.0 GB, more than this machine"),
    ("y = arange(10**12)\n", "1:5: this value (i64[1000000000000]) needs 8.0 TB"),
    ("input r: f64[3]\ny = pad(r, 2**32)\n", "2:5: this value (f64[8589934595]) needs 68.7 GB"),
    ("input r: f64\ny = pad(r, 2)\n", "2:5: pad needs a tensor with at least one axis, got a scalar"),
    ("y = unit_forget_bias(10**9)\n", "1:5: unit_forget_bias: 4 gates of 1,000,000,000 units make 4,000,000,000"),
    ("input x: f64[b, 3, 4]\ny = LSTM(x, 10**9)\n", "2:5: in `LSTM`: param `y.W` (f64[4, 4000000000]) needs 128.0 GB"),
    ("input x: f64\ny = x\nfor i in 0..2**70 {\n  y = y + 1\n}\n", "3:13: integer result too large"),
    ("param w: f64[3] = normal(std=-3)\ny = sum(w)\n", "1:19: `normal`: `std` must be positive, got std=-3"),
    ("param w: f64[3] = normal(0, 0)\ny = sum(w)\n", "1:19: `normal`: `std` must be positive, got mean=0, std=0"),
    ("param w: f64[3] = uniform(low=2, high=1)\ny = sum(w)\n", "1:19: `uniform`: `low` must be less than `high`"),
    ("param w: f64[3] = normal(std=10**400)\ny = sum(w)\n", "1:30: integer result too large"),
    ("state y: f64 = [[4, 5]]\nz = y + 1\n", "1:16: the initial value does not fit the declared type f64[]"),
    ("param w: f64[2] = [1, 2, 3]\ny = sum(w)\n", "1:19: the initial value does not fit the declared type f64[2]"),
])
def test_check_time_sizes_and_arguments(source, expected, monkeypatch):
    from wengert.dsl import limits
    monkeypatch.setattr(limits, "physical_memory", lambda: 32 << 30)  # the same figures on every machine
    assert error_of(source).startswith(expected)


def test_a_literal_of_the_right_shape_still_broadcasts():
    prog = wengert.compile("param w: f64[2, 3] = [1, 2, 3]\nstate s: f64[4] = 0\ny = sum(w) + sum(s)\n")
    assert prog.run("y") == 12.0


@pytest.mark.parametrize("dtype, value, shown", [("i64", 1e300, "1e+300"), ("i32", 2 ** 40, "1.09951e+12"),
                                                  ("i64", -1e19, "-1e+19"), ("i32", np.array([1, -2 ** 33]), "-8.58993e+09")])
def test_ints_fed_out_of_range_are_refused_not_wrapped(dtype, value, shown):
    prog = wengert.compile(f"input k: {dtype}[n]\ny = sum(k)\n".replace("[n]", "" if np.ndim(value) == 0 else "[n]"),
                           path="t.dl")
    with pytest.raises(DiagnosticError, match=re.escape(f"input `k` is {dtype}, but the value given holds {shown}, outside")):
        prog.run("y", k=value)
    assert prog.run("y", k=np.zeros(np.shape(value)) + 7) == 7 * max(np.size(value), 1)


@pytest.mark.parametrize("name", ["self", "of", "wrt", "mode", "name", "inputs", "cotangent", "vector"])
def test_inputs_named_like_api_keywords_work(name):
    prog = wengert.compile(f"input {name}: f64\ninput other: f64\ny = {name} * {name} * other\n")
    feed = {name: 3.0, "other": 2.0}
    assert prog.run("y", inputs=feed) == 18.0
    assert prog.grad("y", wrt=[name], inputs=feed)[name] == 12.0
    assert prog.grad("y", wrt=[name], mode="forward", inputs=feed)[name] == 12.0
    assert prog.vjp("y", None, [name], inputs=feed)[name] == 12.0
    assert prog.hvp("y", [name], {name: 1.0}, inputs=feed)[name] == 4.0
    value, tangent = prog.jvp("y", {name: 1.0}, inputs=feed)
    assert (value, tangent) == (18.0, 12.0)
    if name not in ("inputs",):
        assert prog.run("y", **feed) == 18.0 and prog.grad("y", [name], other=2.0, inputs={name: 3.0})


def test_cli_inputs_named_like_options(tmp_path):
    path = tmp_path / "k.dl"
    path.write_text("input mode: f64\ninput wrt: f64\ny = mode * wrt\n")
    result = CliRunner().invoke(main, ["grad", str(path), "--of", "y", "--wrt", "mode,wrt", "-i", "mode=3",
                                       "-i", "wrt=5", "--json"])
    assert result.exit_code == 0, result.output
    assert '"mode": 5.0' in result.output and '"wrt": 3.0' in result.output
    result = CliRunner().invoke(main, ["gradcheck", str(path), "--of", "y", "-i", "mode=3", "-i", "wrt=5"])
    assert result.exit_code == 0, result.output


# ----------------------------------------------------------------------------- data files
def raw_npy(header: str, data: bytes = b"") -> bytes:
    text = header.encode("latin1")
    text += b" " * (64 - (10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data


def test_an_npz_member_declaring_terabytes_is_refused_before_reading(tmp_path):
    with zipfile.ZipFile(tmp_path / "huge.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 400000), }"))
    assert fails(tmp_path, 'npz("huge.npz")') == ("huge.npz: `x` is truncated: its header declares "
                                                   "float64[1000000, 400000] (3,200,000,000,000 bytes) but it holds 0")


def test_an_npy_header_with_a_call_is_refused(tmp_path):
    (tmp_path / "evil.npy").write_bytes(raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (__import__('os'), }"))
    assert fails(tmp_path, 'npy(x="evil.npy")').startswith("evil.npy: the array is not a valid .npy array")
    (tmp_path / "cut.npy").write_bytes(raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3, ")[:80])
    assert fails(tmp_path, 'npy(x="cut.npy")').startswith("cut.npy: the array is not a valid .npy array")


def test_only_the_members_the_program_reads_are_loaded(tmp_path, monkeypatch):
    x, y = np.arange(12.0).reshape(6, 2), np.arange(6.0)
    np.savez_compressed(tmp_path / "c.npz", x=x, y=y, unused=np.zeros((2000, 1000)))
    source = f'input x: f64[b, 2]\ninput y: f64[b]\nloss = sum(x) + sum(y)\ndata d = npz("{tmp_path / "c.npz"}")\n'
    prog = wengert.compile(source, path=str(tmp_path / "t.dl"))
    read = []
    real = npzfile.read_member
    monkeypatch.setattr(npzfile, "read_member", lambda path, h, mmap=False: read.append(h.name) or real(path, h, mmap))
    loaded = data.load(prog.module.data["d"], needed=set(prog.module.inputs))["d"]
    assert sorted(read) == ["x", "y"] and sorted(loaded.columns) == ["x", "y"]
    np.testing.assert_array_equal(loaded.columns["x"], x)
    np.savez(tmp_path / "s.npz", x=x, y=y)  # stored uncompressed: memory-mapped, read by the batches only
    stored = one(tmp_path, f'npz("{tmp_path / "s.npz"}")')
    assert isinstance(stored.columns["x"], np.memmap)
    np.testing.assert_array_equal(stored.rows(slice(1, 3))["x"], x[1:3])


def test_a_compressed_member_larger_than_memory_is_refused(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "z.npz", x=np.zeros((1000, 100)))
    monkeypatch.setattr(npzfile, "available_memory", lambda: 100_000)
    assert "more than the 0.0 GB of memory available" in fails(tmp_path, 'npz("z.npz")')


def idx_header(shape, code=0x08) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def test_idx_headers_are_compared_with_the_file_before_reading(tmp_path):
    (tmp_path / "claims").write_bytes(idx_header((60000, 28, 28)) + b"\0" * 100)
    assert fails(tmp_path, 'idx(x="claims")') == ("claims: truncated: the header declares 60000x28x28 values "
                                                   "(47040000 bytes of data) but the file holds 100 bytes")
    (tmp_path / "huge").write_bytes(idx_header((2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1), 0x0E))
    assert fails(tmp_path, 'idx(x="huge")').startswith("huge: truncated: the header declares")


def test_gzip_output_is_bounded_by_the_idx_header(tmp_path):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as z:
        z.write(idx_header((10,)) + b"\1" * 10)
        for _ in range(20):  # a bomb: 20 MB of zeros after the 10 declared values, a few KB compressed
            z.write(bytes(1 << 20))
    (tmp_path / "bomb.gz").write_bytes(buf.getvalue())
    assert len(buf.getvalue()) < 100_000
    assert fails(tmp_path, 'idx(x="bomb.gz")') == "bomb.gz: more bytes after the 10 values its header declares (a corrupt file)"
    (tmp_path / "huge.gz").write_bytes(gzip.compress(idx_header((2 ** 31, 2 ** 31), 0x0E)))
    assert "more than the" in fails(tmp_path, 'idx(x="huge.gz")')


@pytest.mark.parametrize("first, message", [
    ("1.5,,3", "row 1, column 2: `` is not a number"),
    ("1.5,abc,3", "row 1, column 2: `abc` is not a number"),
    ("1.5,a\0b,3", "row 1, column 2: `a\0b` is not a number"),
])
def test_a_first_csv_row_with_a_bad_cell_is_data_not_a_header(tmp_path, first, message):
    (tmp_path / "t.csv").write_text(f"{first}\n4,5,6\n")
    assert fails(tmp_path, 'csv("t.csv", x=0..3)') == f"t.csv: {message}"


def test_a_csv_header_of_labels_is_still_skipped(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,0\n3,4,1\n")
    d = one(tmp_path, 'csv("t.csv", x=0..2, y=2)')
    np.testing.assert_array_equal(d.columns["x"], [[1, 2], [3, 4]])


# ----------------------------------------------------------------------------- the checker's budget
def test_exponential_inlining_is_refused_at_once():
    lines = ["input x: f64", "fn f0(a) = a + 1"] + [f"fn f{i}(a) = f{i - 1}(a) + f{i - 1}(a)" for i in range(1, 21)]
    started = time.perf_counter()
    message = error_of("\n".join(lines + ["y = f20(x)"]) + "\n")
    assert message.startswith("23:5: this program inlines 2^20 copies of `f0` (fns and layers are copied")
    assert time.perf_counter() - started < 10


def test_exponential_layers_are_refused_too():
    lines = ["input x: f64", "layer L0(x) {\n  param w: f64 = 1\n  return x * w\n}"]
    lines += [f"layer L{i}(x) {{\n  return L{i - 1}(x) + L{i - 1}(x)\n}}" for i in range(1, 19)]
    assert "inlines 2^18 copies of `L0`" in error_of("\n".join(lines + ["y = L18(x)"]) + "\n")


def test_a_call_in_a_loop_body_counts_once():
    lines = ["input x: f64", "fn f0(a) = a + 1"] + [f"fn f{i}(a) = f{i - 1}(a) + f{i - 1}(a)" for i in range(1, 8)]
    source = "\n".join(lines + ["y = x", "for i in 0..TRIPS {", "  y = f7(y)", "}"]) + "\n"
    wengert.compile(source.replace("TRIPS", "100000"))  # 255 calls lowered once, not 100,000 times
    assert wengert.compile(source.replace("TRIPS", "3")).run("y", x=0.0) == 128 * (128 * (128 + 1) + 1)


def test_a_program_too_long_to_check_is_refused_before_parsing(tmp_path):
    path = tmp_path / "long.dl"
    path.write_text("input x: f64\n" + "".join(f"v{i} = tanh(x * 1.5 + {i})\n" for i in range(40_000)))
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 2 and "tokens long, more than the 250,000 the checker takes" in result.output
    assert time.perf_counter() - started < 10


def test_a_literal_array_of_a_million_numbers_checks_quickly(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.integers(-9, 10, 1_000_000)
    path = tmp_path / "lit.dl"
    path.write_text("x = [" + ", ".join(map(str, values)) + "]\ny = sum(x)\n")
    started = time.perf_counter()
    prog = wengert.load(path)
    assert time.perf_counter() - started < 45  # ~3 s on an idle machine (it took 68 s before NUMBERS)
    assert prog.run("y") == values.sum()


@pytest.mark.parametrize("items", ["1.5, -2, 3e2, 4.25e-1", "0, 1", "-7"])
def test_long_number_lists_mean_the_same_as_short_ones(items):
    long = ", ".join([items] * 40)
    prog = wengert.compile(f"x = [{long}]\nm = [[{long}],\n  [{long}],]\ny = sum(x)\nz = sum(m)\n")
    expected = sum(float(v) for v in items.split(",")) * 40
    assert np.isclose(prog.run("y"), expected) and np.isclose(prog.run("z"), 2 * expected)
    short = wengert.compile(f"x = [{items}]\ny = sum(x)\n")
    assert np.isclose(short.run("y") * 40, expected)
    assert wengert.compile(f"x = [{long}]\n").module.type_of(prog.module.values["x"]).dtype in ("f64", "i64")


def test_an_import_with_a_bad_escape_is_a_diagnostic():
    assert error_of('import "a\\qb"\nx = 1\n').startswith("1:1: invalid string literal")


def test_slice_lengths_are_exact_for_any_size():
    from wengert.runtime.primitives.shape import slice_length
    assert slice_length(0, 10 ** 30, 7) == 10 ** 30 // 7 + 1  # a float division overflowed here
    assert [slice_length(0, 5, 2), slice_length(5, 0, -1), slice_length(5, 0, -2), slice_length(3, 1, 1)] == [3, 5, 3, 0]


def test_a_symbolic_size_is_checked_by_its_least_value(monkeypatch):
    from wengert.dsl import limits
    monkeypatch.setattr(limits, "physical_memory", lambda: 32 << 30)
    assert error_of("input x: f64[b, 12]\ny = pad(x, [[4294967296, 0], [1, 1]])\n").startswith(
        "2:5: this value (f64[(b+4294967296), 14]) needs at least 481.0 GB")
