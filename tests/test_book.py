"""The book's numbers (models/ch04, models/ch09), through the CLI and the Python API.

Expected values are those of models/ch04/EXPECTED.md and models/ch09/EXPECTED.md;
inputs are the ones in each listing's header comment.
"""
from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import wengert
from wengert.cli import main

ROOT = Path(__file__).resolve().parent.parent
CH04 = ROOT / "models" / "ch04"
CH09 = ROOT / "models" / "ch09"
L9_1 = CH09 / "listing_9_01.dl"

RTOL = 1e-10  # EXPECTED.md: 1e-10 relative for the closed-form rows


def cli(*args: str):
    """Invoke the `wengert` command in-process; the click Result."""
    return CliRunner().invoke(main, [str(a) for a in args])


def cli_ok(*args: str) -> str:
    result = cli(*args)
    assert result.exception is None or (isinstance(result.exception, SystemExit) and result.exit_code == 0), \
        result.output
    assert result.exit_code == 0, result.output
    return result.stdout


def inputs_args(inputs: dict[str, str]) -> list[str]:
    out: list[str] = []
    for k, v in inputs.items():
        out += ["-i", f"{k}={v}"]
    return out


def run_json(path: Path, names: list[str], inputs: dict[str, str]) -> dict:
    text = cli_ok("run", path, "--eval", ",".join(names), *inputs_args(inputs), "--json")
    return json.loads(text)


def grad_json(path: Path, of: str, wrt: list[str], inputs: dict[str, str], mode: str = "reverse") -> dict:
    text = cli_ok("grad", path, "--of", of, "--wrt", ",".join(wrt), "--mode", mode, *inputs_args(inputs), "--json")
    return json.loads(text)


def close(actual, expected, rtol=RTOL):
    a = np.asarray(actual, dtype=float)
    e = np.asarray(expected, dtype=float)
    assert a.shape == e.shape, f"shape {a.shape} != {e.shape}"
    np.testing.assert_allclose(a, e, rtol=rtol, atol=1e-12)


def _break_sqrt(monkeypatch):
    """Give sqrt a wrong derivative (0.25 / sqrt(x) instead of 0.5 / sqrt(x)) in both modes."""
    from wengert.runtime import ops
    from wengert.runtime.primitives import REGISTRY
    prim = REGISTRY["sqrt"]
    monkeypatch.setattr(prim, "jvp", lambda primals, tangents, out, **_: None if tangents[0] is None
                        else tangents[0] * (0.25 / out))
    monkeypatch.setattr(prim, "vjp", lambda g, out, x, **_: (ops.mul(g, ops.div(ops.const_like(0.25, x), out)),))


# ---------------------------------------------------------------------------- the headline numbers
class TestListing9_1:
    def test_value_and_gradient_api(self):
        prog = wengert.load(L9_1)
        f = prog.run("f", x1=1, x2=2)
        assert round(float(f), 3) == 2.236
        close(f, math.sqrt(5))
        for mode in ("reverse", "forward"):
            g = prog.grad("f", wrt=["x1", "x2"], mode=mode, x1=1, x2=2)
            assert set(g) == {"x1", "x2"}
            assert round(float(g["x1"]), 3) == 0.447 and round(float(g["x2"]), 3) == 0.894
            close(g["x1"], 0.4472135954999579)
            close(g["x2"], 0.8944271909999159)

    def test_value_and_gradient_cli(self):
        out = run_json(L9_1, ["f"], {"x1": "1", "x2": "2"})
        close(out["f"], 2.23606797749979)
        for mode in ("reverse", "forward"):
            g = grad_json(L9_1, "f", ["x1", "x2"], {"x1": "1", "x2": "2"}, mode=mode)
            close(g["x1"], 0.4472135954999579)
            close(g["x2"], 0.8944271909999159)

    def test_grad_text_output(self):
        text = cli_ok("grad", L9_1, "--of", "f", "--wrt", "x1", "-i", "x1=1", "-i", "x2=2")
        m = re.search(r"df/dx1 = ([-0-9.e]+)", text)
        assert m, text
        assert abs(float(m.group(1)) - 0.4472136) < 1e-6

    def test_gradcheck_cli(self):
        result = cli("gradcheck", L9_1, "--of", "f", "--wrt", "x1,x2", "-i", "x1=1", "-i", "x2=2")
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("ok:")
        assert "`f`" in result.stdout

    def test_gradcheck_cli_detects_a_wrong_derivative(self, monkeypatch):
        _break_sqrt(monkeypatch)
        assert float(wengert.load(L9_1).grad("f", wrt=["x1"], x1=1, x2=2)["x1"]) == pytest.approx(0.2236068)
        result = cli("gradcheck", L9_1, "--of", "f", "--wrt", "x1,x2", "-i", "x1=1", "-i", "x2=2")
        assert result.exit_code == 1
        assert "gradcheck failed" in result.stderr and "mismatch" in result.stderr

    def test_gradcheck_cli_default_wrt_detects_a_wrong_derivative(self, monkeypatch):
        _break_sqrt(monkeypatch)
        result = cli("gradcheck", L9_1, "--of", "f", "-i", "x1=1", "-i", "x2=2")
        assert result.exit_code != 0, result.output

    def test_gradcheck_api_agrees(self):
        # reverse, forward and central differences agree (raises GradCheckError otherwise)
        wengert.check_grads(wengert.load(L9_1), "f", wrt=["x1", "x2"], x1=1.0, x2=2.0)

    @staticmethod
    def _rows(text: str) -> dict[str, list[str]]:
        """Trace table rows keyed by `op name` label -> the row's tokens."""
        rows = {}
        for line in text.splitlines()[2:]:
            tok = line.split()
            rows[" ".join(tok[1:3]) if tok[1] in ("input", "sqrt") else f"{tok[0]}"] = tok
        return rows

    def test_trace_adjoints_cli(self):
        out = cli_ok("trace", L9_1, "--of", "f", "-i", "x1=1", "-i", "x2=2", "--adjoints")
        header = out.splitlines()[0].split()
        assert header[-2:] == ["value", "adjoint"]
        for needle in ("input x1", "input x2", "sqrt f", "2.23607", "0.447214", "0.894427"):
            assert needle in out
        rows = self._rows(out)
        # last two columns are value and adjoint
        assert rows["input x1"][-2:] == ["1", "0.447214"]
        assert rows["input x2"][-2:] == ["2", "0.894427"]
        assert rows["sqrt f"][-2:] == ["2.23607", "1"]
        values = [line.split()[-2] for line in out.splitlines()[2:]]
        adds = [line.split() for line in out.splitlines()[2:] if line.split()[1] == "add"]
        assert len(adds) == 1 and adds[0][-2:] == ["5", "0.223607"]  # 1 / (2 sqrt 5)
        pows = [line.split()[-2] for line in out.splitlines()[2:] if line.split()[1] == "pow"]
        assert pows == ["1", "4"]
        assert {"1", "2", "5", "2.23607"} <= set(values)

    def test_trace_adjoints_subprocess(self):
        # the real console script, as a user types it
        proc = subprocess.run(["wengert", "trace", str(L9_1), "--of", "f", "-i", "x1=1", "-i", "x2=2", "--adjoints"],
                              capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        for needle in ("1", "2", "5", "2.23607", "0.447214", "0.894427"):
            assert re.search(rf"(?<![\d.]){re.escape(needle)}(?![\d.])", proc.stdout), needle

    def test_trace_tangents_cli(self):
        out = cli_ok("trace", L9_1, "--of", "f", "-i", "x1=1", "-i", "x2=2", "--tangents", "--wrt", "x1")
        rows = self._rows(out)
        assert out.splitlines()[0].split()[-1] == "tangent"
        assert rows["input x1"][-1] == "1"
        assert rows["input x2"][-1] == "-"  # not seeded
        assert rows["sqrt f"][-2:] == ["2.23607", "0.447214"]

    def test_trace_with_derivatives_api(self):
        prog = wengert.load(L9_1)
        t = prog.trace_with_derivatives("f", {"x1": 1.0, "x2": 2.0}, adjoints=True)
        by_name = {e.name: e for e in t if e.name}
        close(by_name["x1"].adjoint, 0.4472135954999579)
        close(by_name["x2"].adjoint, 0.8944271909999159)
        close(by_name["f"].primal, math.sqrt(5))
        close(by_name["f"].adjoint, 1.0)
        t = prog.trace_with_derivatives("f", {"x1": 1.0, "x2": 2.0}, tangents={"x2": 1.0})
        close(np.ravel(t[len(t) - 1].tangent), [0.8944271909999159])


class TestListing4_6:
    X = ((1, 2, 3),)

    def test_api_book_values_and_set_params(self):
        prog = wengert.load(CH04 / "listing_4_06.dl")
        close(prog.params["y"], [[4, 5, 6]])
        close(prog.run("z", x=self.X), 68.0)
        close(prog.grad("z", wrt=["x"], x=self.X)["x"], [[7, 17, 33]])
        close(prog.grad("z", wrt=["x"], mode="forward", x=self.X)["x"], [[7, 17, 33]])
        prog.set_params({"y": [[1, 1, 1]]})
        close(prog.params["y"], [[1, 1, 1]])
        close(prog.run("z", x=self.X), 42.0)
        close(prog.grad("z", wrt=["x"], x=self.X)["x"], [[4, 13, 28]])
        close(prog.grad("z", wrt=["x"], mode="forward", x=self.X)["x"], [[4, 13, 28]])

    def test_grad_wrt_state(self):
        # dz/dy = x (z = sum(x**3 + y*x))
        prog = wengert.load(CH04 / "listing_4_06.dl")
        close(prog.grad("z", wrt=["y"], x=self.X)["y"], [[1, 2, 3]])

    def test_cli(self):
        path = CH04 / "listing_4_06.dl"
        close(run_json(path, ["z"], {"x": "[[1,2,3]]"})["z"], 68.0)
        close(grad_json(path, "z", ["x"], {"x": "[[1,2,3]]"})["x"], [[7, 17, 33]])
        close(grad_json(path, "z", ["x"], {"x": "[[1,2,3]]"}, mode="forward")["x"], [[7, 17, 33]])
        text = cli_ok("grad", path, "--of", "z", "--wrt", "x", "-i", "x=[[1,2,3]]")
        assert "dz/dx" in text and "7." in text and "17." in text and "33." in text


def test_listing_4_7_losses_api_and_cli():
    inputs = {"p": [[0.01, 0.01, 0.01]], "y": [[0.99, 0.99, 0.01]]}
    prog = wengert.load(CH04 / "listing_4_07.dl")
    bce = prog.run("f_bce", **inputs)
    cce = prog.run("f_cce", **inputs)
    assert f"{float(bce):.7f}" == "3.0581465"
    assert cce.shape == (1,) and f"{float(cce[0]):.7f}" == "9.1642887"
    out = run_json(CH04 / "listing_4_07.dl", ["f_bce", "f_cce"], {"p": "[[0.01,0.01,0.01]]", "y": "[[0.99,0.99,0.01]]"})
    close(out["f_bce"], 3.058146503109446)
    close(out["f_cce"], [9.164288670116301])
    text = cli_ok("run", CH04 / "listing_4_07.dl", "--eval", "f_bce,f_cce",
                  "-i", "p=[[0.01,0.01,0.01]]", "-i", "y=[[0.99,0.99,0.01]]")
    assert "f_bce = 3.0581465" in text
    assert "f_cce = [9.16428867]" in text


HINGE = [(-2, 3.0), (-1, 2.0), (0, 1.0), (1, 0.0), (2, 0.0)]


@pytest.mark.parametrize("x,expected", HINGE)
def test_listing_4_13_hinge_three_ways(x, expected):
    path = CH04 / "listing_4_13.dl"
    prog = wengert.load(path)
    api = prog.run(["z1", "z2", "z3"], x=x, y=1)
    out = run_json(path, ["z1", "z2", "z3"], {"x": str(x), "y": "1"})
    for z in ("z1", "z2", "z3"):
        close(api[z], expected)
        close(out[z], expected)


@pytest.mark.parametrize("x,grads", [(-2, (-1, -1, -1)), (-1, (-1, -1, -1)), (0, (-1, -1, -1)),
                                     (1, (-0.5, -1, -1)), (2, (0, 0, 0))])
def test_listing_4_13_hinge_gradients(x, grads):
    prog = wengert.load(CH04 / "listing_4_13.dl")
    for z, g in zip(("z1", "z2", "z3"), grads):
        close(prog.grad(z, wrt=["x"], x=x, y=1)["x"], g)
        close(prog.grad(z, wrt=["x"], mode="forward", x=x, y=1)["x"], g)
    out = grad_json(CH04 / "listing_4_13.dl", "z1", ["x"], {"x": str(x), "y": "1"})
    close(out["x"], grads[0])


def test_listing_4_14_power_by_loop():
    path = CH04 / "listing_4_14.dl"
    prog = wengert.load(path)
    close(prog.run("final_result", a=2, k=5), 32.0)
    assert 2 ** 5 == 32
    close(prog.grad("final_result", wrt=["a"], a=2, k=5)["a"], 80.0)
    close(prog.grad("final_result", wrt=["a"], mode="forward", a=2, k=5)["a"], 80.0)
    close(prog.run("final_result", a=2, k=1), 2.0)  # the loop runs zero times
    close(prog.grad("final_result", wrt=["a"], a=2, k=1)["a"], 1.0)
    close(prog.run("final_result", a=3, k=4), 81.0)
    close(prog.grad("final_result", wrt=["a"], a=3, k=4)["a"], 4 * 27.0)
    close(run_json(path, ["final_result"], {"a": "2", "k": "5"})["final_result"], 32.0)
    close(grad_json(path, "final_result", ["a"], {"a": "2", "k": "5"})["a"], 80.0)
    close(run_json(path, ["final_result"], {"a": "2", "k": "1"})["final_result"], 2.0)


# ---------------------------------------------------------------------------- every ch04 program via the CLI
A4 = {"a": "[[1,1],[1,1]]", "b": "[[2,2],[2,2]]", "c": "[[5,5],[5,5]]", "d": "[[3,3],[3,3]]"}

CLI_ROWS = [
    ("listing_4_01.dl", {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}, {"f": 1.6}),
    ("listing_4_02.dl", A4, {"e": [[-6, -6], [-6, -6]]}),
    ("listing_4_03.dl", {**A4, "p": "1", "q": "2", "r": "3", "s": "4", "u": "5"},
     {"e": [[-26.25, -26.25], [-26.25, -26.25]]}),
    ("listing_4_04.dl", {"x": "[[-1,0,1]]"}, {
        "f_sigmoid": [[0.2689414213699951, 0.5, 0.7310585786300049]],
        "f_tanh": [[-0.7615941559557649, 0.0, 0.7615941559557649]],
        "f_fast_sigmoid": [[0.25, 0.5, 0.75]],
        "f_softplus": [[0.31326168751822286, 0.6931471805599453, 1.3132616875182228]],
        "f_relu": [[0.0, 0.0, 1.0]],
        "f_softmax": [[0.09003057317038046, 0.24472847105479767, 0.6652409557748219]],
    }),
    ("listing_4_05.dl", {"x": "[[1,2,3]]"}, {"z": [[5, 7, 9]]}),
    ("listing_4_06.dl", {"x": "[[1,2,3]]"}, {"z": 68.0, "gz": [[7.0, 17.0, 33.0]]}),
    ("listing_4_07.dl", {"p": "[[0.01,0.01,0.01]]", "y": "[[0.99,0.99,0.01]]"}, {
        "f_bce": 3.058146503109446,
        "f_cce": [9.164288670116301],
        "f_squared_error": [[0.9604, 0.9604, 0.0]],
    }),
    ("listing_4_08.dl", {"x": "[[0,1,3]]"}, {"f_l1": 4.0, "f_l2": 10.0}),
    ("listing_4_13.dl", {"x": "-2", "y": "1"}, {"z1": 3.0, "z2": 3.0, "z3": 3.0}),
    ("listing_4_13.dl", {"x": "0", "y": "1"}, {"z1": 1.0, "z2": 1.0, "z3": 1.0}),
    ("listing_4_13.dl", {"x": "2", "y": "1"}, {"z1": 0.0, "z2": 0.0, "z3": 0.0}),
    ("listing_4_14.dl", {"a": "2", "k": "5"}, {"final_result": 32.0}),
    ("listing_4_14.dl", {"a": "2", "k": "1"}, {"final_result": 2.0}),
]


@pytest.mark.parametrize("file,inputs,expected", CLI_ROWS, ids=[f"{r[0]}-{i}" for i, r in enumerate(CLI_ROWS)])
def test_cli_run_expected(file, inputs, expected):
    out = run_json(CH04 / file, list(expected), inputs)
    assert list(out) == list(expected)
    for name, value in expected.items():
        close(out[name], value)


@pytest.mark.parametrize("file,inputs,expected", CLI_ROWS[:8], ids=[r[0] for r in CLI_ROWS[:8]])
def test_cli_text_output_matches_json(file, inputs, expected):
    """The plain `run` output prints every requested value as `name = ...` with the same numbers."""
    text = cli_ok("run", CH04 / file, "--eval", ",".join(expected), *inputs_args(inputs))
    for name, value in expected.items():
        m = re.search(rf"^{name} =\s*(.*?)(?=^\w+ =|\Z)", text, re.DOTALL | re.MULTILINE)
        assert m, text
        nums = [float(t) for t in re.findall(r"-?\d+(?:\.\d*)?(?:e[-+]?\d+)?", m.group(1))]
        np.testing.assert_allclose(nums, np.ravel(value), rtol=1e-7, atol=1e-8)


def test_listing_4_5_state_set_value():
    prog = wengert.load(CH04 / "listing_4_05.dl")
    close(prog.run("z", x=[[1, 2, 3]]), [[5, 7, 9]])
    prog.set_params({"y": [[5, 6, 7]]})
    close(prog.run("z", x=[[1, 2, 3]]), [[6, 8, 10]])
    # x has a symbolic batch dim: two rows broadcast against the [1, 3] state
    close(prog.run("z", x=[[1, 2, 3], [0, 0, 0]]), [[6, 8, 10], [5, 6, 7]])


def test_listing_4_9_random_stream_cli():
    path = CH04 / "listing_4_09.dl"
    out1 = run_json(path, ["a", "f1"], {"b": "[[1,1,1]]"})
    assert np.shape(out1["f1"]) == (1, 3)
    assert out1["f1"] == out1["a"]  # bit for bit
    # a fresh run (seed 42) repeats the first draw bit for bit
    out2 = run_json(path, ["a", "f1"], {"b": "[[2,2,2]]"})
    assert out2["a"] == out1["a"]
    close(out2["f1"], 2 * np.asarray(out2["a"]), rtol=0)
    assert np.all(np.isfinite(out1["a"])) and len(set(np.ravel(out1["a"]))) == 3


def test_listing_4_9_random_stream_api():
    path = CH04 / "listing_4_09.dl"
    prog = wengert.load(path)
    seq = [prog.run(["a", "f1"], b=[[1, 1, 1]]) for _ in range(3)]
    for s in seq:
        assert s["f1"].shape == (1, 3)
        np.testing.assert_array_equal(s["f1"], s["a"])
    draws = [s["a"] for s in seq]
    assert not np.array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[1], draws[2])
    assert not np.array_equal(draws[0], draws[2])
    again = wengert.load(path)
    for d in draws:
        np.testing.assert_array_equal(again.run("a", b=[[1, 1, 1]]), d)
    s = again.run(["a", "f1"], b=[[2, 2, 2]])
    np.testing.assert_array_equal(s["f1"], 2 * s["a"])


# ---------------------------------------------------------------------------- train-only listings
def _batch(tmp_path, n=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 100))
    y = (rng.random(n) > 0.5).astype(np.float64)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return x, y, ["-i", f"x={tmp_path / 'x.npy'}", "-i", f"y={tmp_path / 'y.npy'}"]


def _run_files(path, names, args):
    return json.loads(cli_ok("run", path, "--eval", ",".join(names), *args, "--json"))


def test_listing_4_10_named_values_on_a_batch(tmp_path):
    path = CH04 / "listing_4_10.dl"
    x, y, args = _batch(tmp_path)
    out = _run_files(path, ["p", "error", "loss", "prediction"], args)
    params = wengert.load(path).params  # same seed -> the CLI's initial params
    assert params["w"].shape == (100,) and params["b"].shape == ()
    p = 1 / (1 + np.exp(-(x @ params["w"]) - params["b"]))
    err = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert np.shape(out["p"]) == (5,) and np.shape(out["error"]) == (5,) and np.shape(out["loss"]) == ()
    assert np.all(np.isfinite(out["p"])) and np.all(np.isfinite(out["error"])) and math.isfinite(out["loss"])
    close(out["p"], p, rtol=1e-9)
    close(out["error"], err, rtol=1e-7)
    close(out["loss"], err.mean() + 0.01 * np.sum(params["w"] ** 2), rtol=1e-9)
    assert out["prediction"] == [bool(v) for v in p > 0.5]


def test_listing_4_11_named_values_on_a_batch(tmp_path):
    path = CH04 / "listing_4_11.dl"
    x, y, args = _batch(tmp_path, n=4, seed=1)
    out = _run_files(path, ["p", "error", "loss"], args)
    params = wengert.load(path).params
    p = x @ params["w"] + params["b"]
    assert np.shape(out["p"]) == (4,) and np.shape(out["error"]) == (4,) and np.shape(out["loss"]) == ()
    assert np.all(np.isfinite(out["error"])) and math.isfinite(out["loss"])
    close(out["p"], p, rtol=1e-9)
    close(out["error"], (p - y) ** 2, rtol=1e-9)
    close(out["loss"], np.mean((p - y) ** 2) + 0.01 * np.sum(params["w"] ** 2), rtol=1e-9)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_listing_4_12_named_values_on_a_batch(tmp_path):
    path = CH04 / "listing_4_12.dl"
    x, y, args = _batch(tmp_path, n=6, seed=0)
    out = _run_files(path, ["p1", "p2", "prediction", "error", "loss"], args)
    P = wengert.load(path).params
    assert {k: v.shape for k, v in P.items()} == {"w1": (100, 10), "b1": (10,), "w2": (10,), "b2": ()}
    p1 = np.tanh(x @ P["w1"] + P["b1"])
    p2 = np.tanh(p1 @ P["w2"] + P["b2"])
    assert np.shape(out["p1"]) == (6, 10) and np.shape(out["p2"]) == (6,) and np.shape(out["loss"]) == ()
    assert np.all(np.isfinite(out["p1"])) and np.all(np.isfinite(out["p2"]))
    close(out["p1"], p1, rtol=1e-9)
    close(out["p2"], p2, rtol=1e-9)
    assert out["prediction"] == [bool(v) for v in p2 > 0.5]
    # the book's note: BCE of a tanh output is NaN wherever p2 <= 0, finite elsewhere
    err = np.asarray(out["error"], dtype=float)
    neg = p2 <= 0
    assert neg.any() and (~neg).any(), "the batch should have both signs of p2"
    assert np.all(np.isnan(err[neg]))
    ok = ~neg
    close(err[ok], -(y[ok] * np.log(p2[ok]) + (1 - y[ok]) * np.log(1 - p2[ok])), rtol=1e-7)
    assert math.isnan(out["loss"])


def test_listing_4_12_gradient_finite_despite_nan_loss():
    """EXPECTED.md: the reverse-mode gradient of the NaN loss is finite (that is why Theano trains it)."""
    path = CH04 / "listing_4_12.dl"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 100))
    y = np.zeros(6)  # y = 0: d/dp of y*log(p) is 0 * (1/p) = 0
    prog = wengert.load(path)
    with np.errstate(all="ignore"):
        p2 = prog.run("p2", x=x, y=y)
        assert (p2 <= 0).any()
        g = prog.grad("loss", wrt=["w1", "b1", "w2", "b2"], x=x, y=y)
    for name, v in g.items():
        assert v.shape == prog.params[name].shape
        assert np.all(np.isfinite(v)), name
    assert np.any(g["w2"] != 0)


def test_every_ch04_listing_is_covered():
    """Every program in models/ch04 and listing 9-1 checks and is exercised above."""
    files = sorted(p.name for p in CH04.glob("*.dl"))
    covered = {r[0] for r in CLI_ROWS} | {"listing_4_09.dl", "listing_4_10.dl", "listing_4_11.dl", "listing_4_12.dl"} \
        | {f"listing_4_{n}_grad.dl" for n in (10, 11, 12)}  # tests/test_grad_language.py
    assert files == sorted(covered)
    result = cli("check", *[CH04 / f for f in files], L9_1)
    assert result.exit_code == 0, result.output
    assert result.stdout.count(": ok;") == len(files) + 1


def test_chapter9_moons_named_values_on_a_batch():
    path = CH09 / "chapter9_autograd_moons.dl"
    prog = wengert.load(path)
    close(prog.params["weights"], [1.0, 1.0])
    x = np.array([[0.5, -1.0], [1.5, 0.2], [-0.3, 0.4]])
    y = np.array([1.0, 0.0, 1.0])
    out = prog.run(["preds", "label_probabilities", "loss"], x=x, y=y)
    preds = 0.5 * (np.tanh(x @ np.ones(2)) + 1)
    lp = preds * y + (1 - preds) * (1 - y)
    close(out["preds"], preds)
    close(out["label_probabilities"], lp)
    close(out["loss"], -np.sum(np.log(lp)))
    g = prog.grad("loss", x=x, y=y)
    assert set(g) == {"weights"} and np.all(np.isfinite(g["weights"]))
