"""Crafted checkpoints (issue 19): every field is validated before anything is used; each broken kind is
a diagnostic naming the file and what differs, the file is left alone, nothing is allocated from a
header's claims; a changed optimizer says how to start fresh or keep the params."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import wengert
from wengert.cli import main
from wengert.diagnostics import DiagnosticError
from wengert.train import checkpoint, npzfile
from wengert.train.loop import Trainer

SMALL = """
seed 1
input x: f64[batch, 2]
input y: f64[batch, 2]
logits = Dense(tanh(Dense(x, 8)), 2)
loss   = mean(softmax_crossentropy(logits, y))
data tr = moons(examples=64, noise=0.1, seed=3) |> onehot(y, 2)
train {
  data = tr
  minimize = loss
  optimizer = adam(lr=0.05)
  epochs = 2
  batch = 16
}
"""


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("good")
    Trainer(wengert.compile(SMALL), None, {}, out_dir=out).run()
    return out / "checkpoint.npz"


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def npy_bytes(value: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, value, allow_pickle=False)
    return buf.getvalue()


def raw_npy(header: str, data: bytes = b"") -> bytes:
    """A .npy member with the header text as written (padded as format 1.0 wants)."""
    text = header.encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data


def write(path: Path, parts: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in parts.items():
            zf.writestr(name, blob)


def with_meta(good: Path, change) -> dict[str, bytes]:
    parts = members(good)
    with np.load(good, allow_pickle=False) as archive:
        meta = json.loads(str(archive["meta"]))
    change(meta)
    parts["meta.npy"] = npy_bytes(np.array(json.dumps(meta)))
    return parts


def crafted(good: Path, kind: str, path: Path) -> str:
    """Write the crafted file `kind` at `path`; returns what its diagnostic must say."""
    parts = members(good)
    weight = next(k for k in parts if k.startswith("param/") and k.endswith(".W.npy"))
    if kind == "empty":
        path.write_bytes(b"")
        return "an empty file (0 bytes)"
    if kind == "garbage":
        path.write_bytes(b"\x00\xffnot a checkpoint at all" * 10)
        return "not an .npz archive"
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        return "corrupt or incomplete"
    if kind == "no meta":
        del parts["meta.npy"]
    elif kind == "meta not json":
        parts["meta.npy"] = npy_bytes(np.array("{not json"))
    elif kind == "meta not a string":
        parts["meta.npy"] = npy_bytes(np.zeros(3))
    elif kind == "meta deeply nested":
        parts["meta.npy"] = npy_bytes(np.array("[" * 200_000 + "]" * 200_000))
    elif kind == "meta a list":
        parts["meta.npy"] = npy_bytes(np.array("[1, 2]"))
    elif kind == "meta missing keys":
        parts = with_meta(good, lambda m: [m.pop("epoch"), m.pop("rng")])
    elif kind == "meta wrong types":
        parts = with_meta(good, lambda m: m.update(epoch="twenty", history={"a": 1}))
    elif kind == "meta bad rng":
        parts = with_meta(good, lambda m: m["rng"].update(shuffle={"bit_generator": "MT19937", "state": 3}))
    elif kind == "unknown format":
        parts = with_meta(good, lambda m: m.update(format=99))
    elif kind == "wrong shape":
        parts[weight] = npy_bytes(np.zeros((3, 8)))
    elif kind == "strings":
        parts[weight] = npy_bytes(np.array([["a"] * 8] * 2))
    elif kind == "huge header":
        parts[weight] = raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000, 400), }")
    elif kind == "header with a call":
        parts[weight] = raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': __import__('os').getpid(), }")
    elif kind == "long header":
        parts[weight] = b"\x93NUMPY\x02\x00" + (200_000).to_bytes(4, "little") + b" " * 200_000
    elif kind == "objects":
        parts[weight] = raw_npy("{'descr': '|O', 'fortran_order': False, 'shape': (2, 8), }", b"\x80\x04." * 8)
    elif kind == "missing param":
        del parts[weight]
    elif kind == "extra array":
        parts["param/intruder.npy"] = npy_bytes(np.zeros(2))
    elif kind == "missing slot":
        del parts[next(k for k in parts if k.startswith("optim/slots/"))]
    elif kind == "bad optimizer rng":
        parts["optim/rng.npy"] = npy_bytes(np.array('{"bit_generator": "nope"}'))
    elif kind == "not npy member":
        parts["readme.txt"] = b"hello"
    write(path, parts)
    return {"no meta": "has no `meta` record", "meta not json": "not valid JSON", "meta not a string":
            "not one JSON string", "meta deeply nested": "not valid JSON", "meta a list": "not a JSON object",
            "meta missing keys": "`epoch` should be a non-negative integer; `rng` should be",
            "meta wrong types": "`epoch` should be a non-negative integer; `history` should be",
            "meta bad rng": "`rng` should be the states", "unknown format": "unknown checkpoint format",
            "wrong shape": f"`{weight[:-4]}` is float64[3, 8], expected float64[2, 8]",
            "strings": f"`{weight[:-4]}` is <U1[2, 8], expected float64[2, 8]",
            "huge header": "is truncated: its header declares float64[1000000, 1000000, 400]",
            "header with a call": "is not a valid .npy array", "long header": "is not a valid .npy array",
            "objects": "holds Python objects", "missing param": f"`{weight[:-4]}` is missing",
            "extra array": "it has arrays the program does not: `param/intruder`",
            "missing slot": "is missing", "bad optimizer rng": "`optim/rng` is not a random generator's state",
            "not npy member": "member `readme.txt` is not a .npy array"}[kind]


KINDS = ["empty", "garbage", "truncated", "no meta", "meta not json", "meta not a string", "meta deeply nested",
         "meta a list", "meta missing keys", "meta wrong types", "meta bad rng", "unknown format", "wrong shape",
         "strings", "huge header", "header with a call", "long header", "objects", "missing param", "extra array",
         "missing slot", "bad optimizer rng", "not npy member"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_crafted_checkpoint_is_refused_naming_the_file_and_the_difference(good, tmp_path, kind):
    path = tmp_path / "checkpoint.npz"
    expected = crafted(good, kind, path)
    before = path.read_bytes()
    prog = wengert.compile(SMALL)
    params = prog.params
    with pytest.raises(DiagnosticError) as e:
        Trainer(prog, None, {}, out_dir=tmp_path).run(resume_from=path)
    text = e.value.diagnostics[0].render()
    assert text.startswith(f"{path}: error: ") and expected in text, text
    assert path.read_bytes() == before  # left alone
    for k, v in prog.params.items():  # and nothing of it was used
        assert np.array_equal(v, params[k])


@pytest.mark.parametrize("kind", ["truncated", "huge header", "meta deeply nested", "strings"])
def test_cli_resume_from_a_crafted_checkpoint_exits_2(good, tmp_path, kind):
    source = tmp_path / "small.dl"
    source.write_text(SMALL)
    out = tmp_path / "out"
    out.mkdir()
    crafted(good, kind, out / "checkpoint.npz")
    result = CliRunner().invoke(main, ["train", str(source), "--out", str(out), "--resume"])
    assert result.exit_code == 2 and "Traceback" not in result.output and "Aborted" not in result.output
    assert f"{out / 'checkpoint.npz'}: error:" in result.output


def test_a_changed_optimizer_says_how_to_go_on(tmp_path):
    source = tmp_path / "small.dl"
    source.write_text(SMALL)
    out = tmp_path / "out"
    runner = CliRunner()
    assert runner.invoke(main, ["train", str(source), "--out", str(out)]).exit_code == 0
    trained = {k: v for k, v in np.load(out / "params.npz").items() if k != "meta"}
    source.write_text(SMALL.replace("adam(lr=0.05)", "sgd(lr=0.1, momentum=0.9)"))
    result = runner.invoke(main, ["train", str(source), "--out", str(out), "--resume"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "trained with the optimizer `adam`, but the program now uses `sgd`" in result.output
    assert "--restart" in result.output and "--resume-params" in result.output
    # --resume-params: the trained params, a fresh sgd from epoch 1
    prog = wengert.load(source)
    trainer = Trainer(prog, None, {"epochs": 0}, out_dir=out, overwrite=True)
    trainer.run(resume_from=out / "checkpoint.npz", params_only=True)
    for k, v in trained.items():
        assert np.array_equal(prog.params[k], v), k
    result = runner.invoke(main, ["train", str(source), "--out", str(out), "--resume-params", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "resuming" not in result.output and checkpoint.read_meta(out / "checkpoint.npz")["epoch"] == 1
    assert runner.invoke(main, ["train", str(source), "--out", str(out), "--restart"]).exit_code == 0


def test_headers_are_read_without_loading_and_members_memory_mapped(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, small=np.arange(6.0).reshape(2, 3), other=np.zeros(4, np.int32))
    headers = npzfile.npz_headers(path)
    assert headers["small"].shape == (2, 3) and headers["small"].dtype == np.float64
    assert npzfile.shape_problem(headers["small"], (2, 3), "float64") is None
    assert npzfile.shape_problem(headers["other"], (4,), "float64") == "`other` is int32[4], expected float64[4]"
    mapped = npzfile.read_member(path, headers["small"], mmap=True)
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, np.arange(6.0).reshape(2, 3))
    np.savez_compressed(tmp_path / "c.npz", small=np.arange(6.0))
    compressed = npzfile.npz_headers(tmp_path / "c.npz")["small"]
    assert compressed.offset == -1 and np.array_equal(npzfile.read_member(tmp_path / "c.npz", compressed, mmap=True),
                                                      np.arange(6.0))


@pytest.mark.parametrize("kind", ["empty", "garbage", "huge header", "header with a call", "objects", "strings"])
def test_a_crafted_params_file_is_refused_without_allocating(good, tmp_path, kind):
    """Params files (wengert/train/params.py) read through the same header checks (npzfile.py)."""
    path = tmp_path / "params.npz"
    crafted(good, kind, path)
    prog = wengert.compile(SMALL)
    with pytest.raises(DiagnosticError) as e:
        prog.load_params(path)
    assert e.value.diagnostics[0].render().startswith(f"{path}: error: ")
