"""`wengert predict`: a trained program's values for new rows from files or a data set, batch by
batch, equal to `Program.run` after `load_params`."""
from __future__ import annotations

import csv
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

import wengert
from wengert import predict as predicting
from wengert.cli import main

from test_params import trained  # noqa: F401 -- the fixture trains the program once

NEW = np.random.default_rng(7).normal(size=(103, 2))


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def _predict(program, run, *args: str):
    return cli("predict", str(program), "--params", str(run / "params.npz"), *args)


def test_predict_from_npy_and_csv_equals_run_after_load_params(trained, tmp_path):  # noqa: F811
    program, run = trained
    prog = wengert.load(program)
    prog.load_params(run / "params.npz")
    expected = prog.run("probs", x=NEW)
    np.save(tmp_path / "new.npy", NEW)
    r = _predict(program, run, "--of", "probs", "-i", f"x={tmp_path / 'new.npy'}", "--batch", "10",
                 "-o", str(tmp_path / "p.npy"))
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "(103 rows)" in r.output
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, rtol=1e-12)
    # a CSV with a header row in, a CSV with the header NAME_0..NAME_k out
    with open(tmp_path / "new.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b"])
        w.writerows(NEW.tolist())
    r = _predict(program, run, "--of", "probs", "-i", f"x={tmp_path / 'new.csv'}", "-o", str(tmp_path / "p.csv"))
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(open(tmp_path / "p.csv")))
    assert rows[0] == ["probs_0", "probs_1"]
    np.testing.assert_allclose(np.array(rows[1:], dtype=float), expected, rtol=1e-12)
    # and without a header, to .npz with class indices
    np.savetxt(tmp_path / "plain.csv", NEW, delimiter=",")
    r = _predict(program, run, "--of", "probs", "-i", f"x={tmp_path / 'plain.csv'}", "--argmax",
                 "-o", str(tmp_path / "p.npz"))
    assert r.exit_code == 0, r.output
    with np.load(tmp_path / "p.npz") as out:
        np.testing.assert_array_equal(out["probs"], expected.argmax(axis=1))


def test_predict_over_a_data_set_of_the_program(trained, tmp_path):  # noqa: F811
    program, run = trained
    prog = wengert.load(program, params=run / "params.npz")
    from wengert.train import data
    valid = data.load(prog.module.data["valid"])["valid"]
    r = _predict(program, run, "--of", "probs", "--data", "valid", "--argmax", "-o", str(tmp_path / "v.csv"))
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(open(tmp_path / "v.csv")))
    assert rows[0] == ["probs"]
    got = np.array(rows[1:], dtype=int)[:, 0]
    expected = prog.run("probs", x=valid.columns["x"]).argmax(axis=1)
    np.testing.assert_array_equal(got, expected)
    assert np.mean(got == np.asarray(valid.columns["y"]).argmax(axis=1)) > 0.8  # it is a trained model


def test_a_memory_mapped_input_is_streamed_in_bounded_memory(tmp_path):
    program = tmp_path / "wide.dl"
    program.write_text("seed 0\ninput x: f64[n, 16]\nparam W: f64[16, 4] = normal(mean=0, std=1)\n"
                       "out = tanh(x @ W)\n")
    rows = 200_000  # 25.6 MB in, 6.4 MB out
    big = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float64, shape=(rows, 16))
    big[:] = np.random.default_rng(0).normal(size=(rows, 16))
    big.flush()
    del big
    prog = wengert.load(program)
    feeds = predicting.file_feeds(prog, {"x": str(tmp_path / "big.npy")})
    assert isinstance(feeds["x"].rows, np.memmap)
    tracemalloc.start()
    try:
        predicting.predict(prog, ["out"], feeds, tmp_path / "out.npy", batch=2000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"predict over a 25.6 MB memory-mapped input: peak traced memory {peak / 1e6:.2f} MB")
    assert peak < 3_000_000, f"peak {peak / 1e6:.1f} MB for a 25.6 MB input"  # a few batches, not the file
    x = np.load(tmp_path / "big.npy", mmap_mode="r")
    out = np.load(tmp_path / "out.npy", mmap_mode="r")
    for k in (0, 12345, rows - 1):
        np.testing.assert_allclose(out[k], np.tanh(x[k] @ prog.params["W"]), rtol=1e-12)


@pytest.mark.parametrize("make, args, expected", [
    (None, ["-i", "x={d}/nope.npy"], "{d}/nope.npy: error: no such file (input `x`)"),
    (lambda d: np.save(d / "three.npy", np.zeros((4, 3))), ["-i", "x={d}/three.npy"],
     "{d}/three.npy: error: input `x` is f64[batch, 2]: 2 columns per row, but the file has 3"),
    (lambda d: np.save(d / "flat.npy", np.zeros(4)), ["-i", "x={d}/flat.npy"],
     "{d}/flat.npy: error: input `x` is f64[batch, 2], but the file's rows have shape []"),
    (lambda d: (d / "ragged.csv").write_text("1,2\n3\n"), ["-i", "x={d}/ragged.csv"],
     "{d}/ragged.csv: error: cannot read input `x` from it: row 2 has 1 columns, but the first row has 2"),
    (lambda d: (d / "words.csv").write_text("a,b\n1,x\n"), ["-i", "x={d}/words.csv"],
     "{d}/words.csv: error: cannot read input `x` from it: row 2, column 2: `x` is not a number"),
    (lambda d: np.save(d / "ok.npy", np.zeros((4, 2))), ["-i", "z={d}/ok.npy"],
     "{d}/ok.npy: error: the program has no input `z`"),
    (lambda d: np.savez(d / "two.npz", a=np.zeros((4, 2)), b=np.zeros((4, 2))), ["-i", "x={d}/two.npz"],
     "{d}/two.npz: error: cannot read input `x` from it: several arrays (it has a, b); name one as FILE.npz:KEY"),
    (None, ["--data", "test"], "error: no data set `test`; the program's data sets: train, valid"),
    (lambda d: np.save(d / "ok.npy", np.zeros((4, 2))), ["-i", "x={d}/ok.npy", "--of", "loss"],
     "error: `loss` needs input `y`, which was not given"),
])
def test_bad_inputs_are_exit_2_naming_the_file_and_the_input(trained, tmp_path, make, args, expected):  # noqa: F811
    program, run = trained
    if make is not None:
        make(tmp_path)
    args = [a.format(d=tmp_path) for a in args]
    of = [] if "--of" in args else ["--of", "probs"]
    r = _predict(program, run, *of, *args, "-o", str(tmp_path / "out.npy"))
    assert r.exit_code == 2, r.output
    assert expected.format(d=tmp_path) in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "out.npy").exists()  # nothing half-written


def test_a_failed_predict_leaves_an_existing_output_alone(trained, tmp_path):  # noqa: F811
    program, run = trained
    (tmp_path / "out.csv").write_text("keep me\n")
    np.save(tmp_path / "ok.npy", NEW)
    r = _predict(program, run, "--of", "loss", "-i", f"x={tmp_path / 'ok.npy'}", "-i", f"y={tmp_path / 'ok.npy'}",
                 "-o", str(tmp_path / "out.csv"))
    assert r.exit_code == 2, r.output
    assert "`loss` has shape [] for a batch of" in r.output
    assert (tmp_path / "out.csv").read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.npy", "out.csv"]
