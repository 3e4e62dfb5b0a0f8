"""The executor and the Wengert list: evaluation order, unrolled loops, lazy `if`, source
positions, random streams, params as copies, feeding errors, the CLI's inputs and JSON,
and freeing of intermediates."""
from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import wengert
from wengert.cli import main
from wengert.runtime import executor

ROOT = Path(__file__).resolve().parent.parent
CH04 = ROOT / "models" / "ch04"
L9_1 = ROOT / "models" / "ch09" / "listing_9_01.dl"

DIAG = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+):(?P<col>\d+): error: ", re.MULTILINE)


def compile_(text: str) -> wengert.Program:
    return wengert.compile(textwrap.dedent(text).lstrip("\n"))


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def cli_error(*args) -> str:
    """A command that must fail as a user mistake: exit 2, diagnostics on stderr, no traceback."""
    r = cli(*args)
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    assert r.stdout == ""
    assert "error:" in r.stderr
    return r.stderr


def line_of(path_or_text, needle: str) -> tuple[int, int]:
    """(line, column), counting from 1, of the first occurrence of `needle` in code."""
    text = Path(path_or_text).read_text() if isinstance(path_or_text, Path) else path_or_text
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line.split("#")[0]:  # code, not comments
            return n, line.index(needle) + 1
    raise AssertionError(f"{needle!r} not found")


# ---------------------------------------------------------------------------- the Wengert list
def test_listing_9_1_wengert_list_is_the_books():
    """v1 = x1; v2 = x2; v3 = v1**2; v4 = v2**2; v5 = v3 + v4; v6 = sqrt(v5), one entry each, in order."""
    t = wengert.load(L9_1).trace("f", x1=1.0, x2=2.0)
    entries = list(t)
    assert len(t) == len(entries) == 8  # the six of the book + the two exponent constants
    assert [e.index for e in entries] == list(range(len(t)))
    assert [e.op for e in entries if e.op != "const"] == ["input", "pow", "input", "pow", "add", "sqrt"]
    real = [e for e in entries if e.op != "const"]
    np.testing.assert_allclose([float(e.primal) for e in real], [1, 1, 2, 4, 5, math.sqrt(5)], rtol=1e-15)
    x1, p1, x2, p2, add, sqrt = real
    assert (x1.name, x2.name, sqrt.name) == ("x1", "x2", "f")
    assert p1.operands[0] == x1.index and p2.operands[0] == x2.index
    assert t[p1.operands[1]].op == "const" and float(t[p1.operands[1]].primal) == 2.0
    assert add.operands == (p1.index, p2.index)
    assert sqrt.operands == (add.index,)
    for e in entries:
        assert e.shape == () and e.dtype == "f64"
        assert all(0 <= o < e.index for o in e.operands)  # operands are evaluated first
    assert t.outputs["f"] == sqrt.index


def test_trace_entry_per_primitive_evaluation_with_shapes():
    prog = compile_("""
        input x: f32[b, 3]
        param W: f32[3, 2] = 1
        h = x @ W
        s = sum(h, axis=1)
        m = mean(s)
    """)
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    t = prog.trace("m", x=x)
    ops = [e.op for e in t]
    assert ops.count("input") == 1 and ops.count("param") == 1
    by_name = {e.name: e for e in t if e.name}
    assert by_name["h"].shape == (4, 2) and by_name["s"].shape == (4,) and by_name["m"].shape == ()
    assert by_name["h"].dtype == by_name["m"].dtype == "f32"
    assert by_name["x"].index < by_name["h"].index < by_name["s"].index < by_name["m"].index
    np.testing.assert_allclose(by_name["h"].primal, x @ np.ones((3, 2)))
    np.testing.assert_allclose(by_name["m"].primal, (x @ np.ones((3, 2))).sum(1).mean())
    # only what `m` needs is evaluated
    t2 = prog.trace("h", x=x)
    assert len(t2) < len(t) and "m" not in {e.name for e in t2}


def test_trace_str_lists_every_entry():
    t = wengert.load(L9_1).trace("f", x1=1.0, x2=2.0)
    text = str(t)
    lines = text.splitlines()
    assert len(lines) == len(t) + 2  # header + rule
    assert lines[0].split()[:2] == ["#", "op"]
    assert lines[-1].split()[:3] == [f"v{len(t) - 1}", "sqrt", "f"]
    assert lines[-1].split()[-1] == "2.23607"


@pytest.mark.parametrize("k", [3, 6])
def test_for_loop_is_unrolled(k):
    prog = wengert.load(CH04 / "listing_4_14.dl")
    t = prog.trace("final_result", a=2.0, k=k)
    muls = [e for e in t if e.op == "mul"]
    iters = [e for e in t if e.op == "iter"]
    assert len(muls) == k - 1
    assert [int(e.primal) for e in iters] == list(range(1, k))
    np.testing.assert_array_equal([float(e.primal) for e in muls], [2.0 ** j for j in range(2, k + 1)])
    a = next(e for e in t if e.name == "a")
    # a chain: each step multiplies the previous step's result by a
    assert muls[0].operands == (a.index, a.index)
    for prev, cur in itertools.pairwise(muls):
        assert cur.operands == (prev.index, a.index)
    assert t.outputs["final_result"] == muls[-1].index


def test_trace_length_grows_with_trip_count():
    prog = wengert.load(CH04 / "listing_4_14.dl")
    lengths = {k: len(prog.trace("final_result", a=2.0, k=k)) for k in (1, 3, 6)}
    per_iter = (lengths[6] - lengths[3]) / 3
    assert per_iter >= 1 and per_iter == int(per_iter)
    assert lengths[3] - lengths[1] == 2 * per_iter
    assert lengths[1] < lengths[3] < lengths[6]


def test_reversed_loop_runs_backwards():
    prog = compile_("""
        input n: i64
        acc = 0.0
        for t in reversed(0..n) {
          acc = acc * 10 + t
        }
        out = acc
    """)
    assert float(prog.run("out", n=3)) == 210.0  # t = 2, 1, 0
    t = prog.trace("out", n=3)
    assert [int(e.primal) for e in t if e.op == "iter"] == [2, 1, 0]


def test_only_taken_branch_is_recorded():
    path = CH04 / "listing_4_13.dl"
    prog = wengert.load(path)
    text = path.read_text()
    line, _ = line_of(path, "fn hinge_b")
    src = text.splitlines()[line - 1]
    then_col = src.index("then 0 * u") + len("then ") + 1
    else_col = src.index("else 1 - u * v") + len("else ") + 1

    def after_condition(x):
        t = prog.trace("z2", x=x, y=1.0)
        lt = [e.index for e in t if e.op == "lt"]
        assert len(lt) == 1
        return t, list(t)[lt[0] + 1:]

    t_neg, br_neg = after_condition(-2.0)  # 1 - x*y = 3, not < 0: else branch
    t_pos, br_pos = after_condition(2.0)   # 1 - x*y = -1 < 0: then branch
    assert [e.op for e in br_neg if e.op != "const"] == ["mul", "sub"]
    assert [e.op for e in br_pos if e.op != "const"] == ["mul"]
    assert "sub" not in [e.op for e in br_pos]
    assert {e.span.column for e in br_pos} == {then_col}
    assert all(e.span.column >= else_col for e in br_neg)
    assert float(t_neg[t_neg.outputs["z2"]].primal) == 3.0
    assert float(t_pos[t_pos.outputs["z2"]].primal) == 0.0
    # `where` (z3) evaluates both sides every time
    t3 = prog.trace("z3", x=2.0, y=1.0)
    assert [e.op for e in t3].count("sub") == 2 and "where" in [e.op for e in t3]


def test_untaken_branch_does_not_run():
    prog = compile_("""
        input i: i64
        input v: f64[3]
        z = if i < 3 then v[i] else 0 * v[0]
    """)
    assert float(prog.run("z", i=1, v=[1.0, 2.0, 3.0])) == 2.0
    assert float(prog.run("z", i=5, v=[1.0, 2.0, 3.0])) == 0.0  # v[5] would be out of range
    prog2 = compile_("""
        input i: i64
        input v: f64[3]
        z = v[i]
    """)
    with pytest.raises(wengert.DiagnosticError, match="out of range"):
        prog2.run("z", i=5, v=[1.0, 2.0, 3.0])


def test_source_positions_point_at_the_right_line():
    text = "input x: f64\na = exp(x)\nb = a * x\n\nc = sin(b)\n"
    t = wengert.compile(text).trace("c", x=1.0)
    by_name = {e.name: e for e in t if e.name}
    for name, needle in [("a", "exp(x)"), ("b", "a * x"), ("c", "sin(b)")]:
        assert (by_name[name].span.line, by_name[name].span.column) == line_of(text, needle)
    np.testing.assert_allclose(float(by_name["c"].primal), math.sin(math.e))
    assert by_name["x"].op == "input"


def test_source_positions_listing_9_1_and_4_14():
    t = wengert.load(L9_1).trace("f", x1=1.0, x2=2.0)
    pows = [e for e in t if e.op == "pow"]
    assert (pows[0].span.line, pows[0].span.column) == line_of(L9_1, "x1 ** 2")
    assert (pows[1].span.line, pows[1].span.column) == line_of(L9_1, "x2 ** 2")
    sqrt = t[t.outputs["f"]]
    assert (sqrt.span.line, sqrt.span.column) == line_of(L9_1, "sqrt(")
    path = CH04 / "listing_4_14.dl"
    t = wengert.load(path).trace("final_result", a=2.0, k=4)
    for e in t:
        if e.op == "mul":
            assert (e.span.line, e.span.column) == line_of(path, "result * a")
        if e.op == "iter":
            assert e.span.line == line_of(path, "for i in")[0]


# ---------------------------------------------------------------------------- random streams
SEEDED = "seed {s}\nr = normal([4])\n"


def test_random_op_fresh_draw_per_run():
    prog = wengert.compile(SEEDED.format(s=3))
    draws = [prog.run("r") for _ in range(4)]
    for d in draws:
        assert d.shape == (4,) and d.dtype == np.float64 and np.all(np.isfinite(d))
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(draws[i], draws[j])


def test_same_seed_same_sequence_different_seed_differs():
    a, b, c = (wengert.compile(SEEDED.format(s=s)) for s in (3, 3, 4))
    seq_a = [a.run("r") for _ in range(3)]
    seq_b = [b.run("r") for _ in range(3)]
    seq_c = [c.run("r") for _ in range(3)]
    for x, y in zip(seq_a, seq_b):
        np.testing.assert_array_equal(x, y)  # bit for bit
    for x, y in zip(seq_a, seq_c):
        assert not np.allclose(x, y)


def test_random_draw_is_one_value_per_evaluation():
    prog = compile_("""
        seed 1
        r = uniform([3])
        d = r - r
        s = r + 0
    """)
    np.testing.assert_array_equal(prog.run("d"), np.zeros(3))
    out = prog.run(["r", "s"])
    np.testing.assert_array_equal(out["r"], out["s"])
    assert np.all((out["r"] >= 0) & (out["r"] < 1))


# ---------------------------------------------------------------------------- params and state
def test_params_are_copies():
    prog = wengert.load(CH04 / "listing_4_05.dl")
    p = prog.params
    np.testing.assert_array_equal(p["y"], [[4, 5, 6]])
    p["y"][:] = 100.0
    p["y"] = np.zeros((1, 3))
    np.testing.assert_array_equal(prog.params["y"], [[4, 5, 6]])
    np.testing.assert_array_equal(prog.run("z", x=[[1, 2, 3]]), [[5, 7, 9]])
    assert prog.params["y"] is not prog.params["y"]


def test_set_params_copies_its_argument_and_checks_shape():
    prog = wengert.load(CH04 / "listing_4_05.dl")
    new = np.array([[5.0, 6.0, 7.0]])
    prog.set_params({"y": new})
    new[:] = -1
    np.testing.assert_array_equal(prog.run("z", x=[[1, 2, 3]]), [[6, 8, 10]])
    with pytest.raises(wengert.DiagnosticError, match=r"`y`.*\[1, 2\]"):
        prog.set_params({"y": [[1, 2]]})
    with pytest.raises(wengert.DiagnosticError, match=r"did you mean `y`"):
        prog.set_params({"yy": [[1, 2, 3]]})
    np.testing.assert_array_equal(prog.params["y"], [[5, 6, 7]])


def test_run_does_not_change_state_without_update():
    prog = compile_("""
        input x: f64[3]
        state s: f64[3] = [1, 2, 3]
        param w: f64[3] = normal(0, 1)
        z = sum(x * s * w)
    """)
    before = prog.params
    for _ in range(3):
        prog.run("z", x=[1.0, 1.0, 1.0])
        prog.grad("z", wrt=["w"], x=[1.0, 1.0, 1.0])
    after = prog.params
    assert set(before) == {"s", "w"}
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
    np.testing.assert_allclose(prog.run("z", x=[1.0, 1.0, 1.0]), np.sum(after["s"] * after["w"]))


# ---------------------------------------------------------------------------- feeding errors (API)
def test_wrong_shape_names_input_type_and_shape():
    prog = wengert.load(CH04 / "listing_4_05.dl")
    with pytest.raises(wengert.DiagnosticError) as info:
        prog.run("z", x=[[1, 2]])
    msg = str(info.value)
    assert "`x`" in msg and "f64[n, 3]" in msg and "[1, 2]" in msg
    d = info.value.diagnostics[0]
    assert d.severity == "error"
    assert (d.span.line, d.span.column) == line_of(CH04 / "listing_4_05.dl", "input x")
    with pytest.raises(wengert.DiagnosticError, match=r"`x`.*f64\[n, 3\].*\[3\]"):
        prog.run("z", x=[1, 2, 3])  # wrong rank


def test_conflicting_symbolic_dim_names_the_symbol():
    prog = wengert.load(CH04 / "listing_4_02.dl")
    with pytest.raises(wengert.DiagnosticError) as info:
        prog.run("e", a=np.ones((3, 2)), b=np.ones((4, 2)), c=np.ones((3, 2)), d=np.ones((3, 2)))
    msg = str(info.value)
    assert "`n`" in msg and "3" in msg and "4" in msg
    assert "`a`" in msg and "`b`" in msg  # both places


def test_missing_input_is_named():
    prog = wengert.load(CH04 / "listing_4_02.dl")
    with pytest.raises(wengert.DiagnosticError, match=r"input `d` is needed but was not given"):
        prog.run("e", a=[[1.0]], b=[[1.0]], c=[[1.0]])
    # inputs that the value does not need are not required
    p13 = wengert.load(CH04 / "listing_4_14.dl")
    with pytest.raises(wengert.DiagnosticError, match=r"`k`"):
        p13.run("final_result", a=2.0)


def test_unknown_names_did_you_mean():
    prog = wengert.load(CH04 / "listing_4_06.dl")
    x = [[1.0, 2.0, 3.0]]
    with pytest.raises(wengert.DiagnosticError, match=r"unknown value `zz`.*did you mean `z`"):
        prog.run("zz", x=x)
    with pytest.raises(wengert.DiagnosticError, match=r"unknown value `zz`.*did you mean `z`"):
        prog.run(["z", "zz"], x=x)
    with pytest.raises(wengert.DiagnosticError, match=r"unknown input `xx`.*did you mean `x`"):
        prog.run("z", xx=x)
    with pytest.raises(wengert.DiagnosticError, match=r"unknown value `zz`.*did you mean `z`"):
        prog.grad("zz", wrt=["x"], x=x)
    with pytest.raises(wengert.DiagnosticError, match=r"`xx`.*did you mean `x`"):
        prog.grad("z", wrt=["xx"], x=x)


def test_grad_of_non_scalar_is_a_clean_error():
    prog = wengert.load(CH04 / "listing_4_05.dl")
    for mode in ("reverse", "forward"):
        with pytest.raises(wengert.DiagnosticError, match=r"`z` has shape \[1, 3\].*scalar"):
            prog.grad("z", wrt=["x"], mode=mode, x=[[1.0, 2.0, 3.0]])


def test_grad_wrt_integer_is_a_clean_error():
    prog = wengert.load(CH04 / "listing_4_14.dl")
    with pytest.raises(wengert.DiagnosticError, match=r"`k`.*i32"):
        prog.grad("final_result", wrt=["k"], a=2.0, k=3)


# ---------------------------------------------------------------------------- the CLI: errors
def test_cli_wrong_shape_exit_2():
    path = CH04 / "listing_4_05.dl"
    err = cli_error("run", path, "--eval", "z", "-i", "x=[[1,2]]")
    m = DIAG.search(err)
    assert m and m["file"].endswith("listing_4_05.dl")
    assert (int(m["line"]), int(m["col"])) == line_of(path, "input x")
    assert "`x`" in err and "f64[n, 3]" in err and "[1, 2]" in err


def test_cli_symbolic_dim_conflict_exit_2():
    path = CH04 / "listing_4_02.dl"
    err = cli_error("run", path, "--eval", "e", "-i", "a=[[1,1],[1,1],[1,1]]", "-i", "b=[[1,1],[1,1],[1,1],[1,1]]",
                    "-i", "c=[[1,1],[1,1],[1,1]]", "-i", "d=[[1,1],[1,1],[1,1]]")
    assert DIAG.search(err)
    assert "`n`" in err and "3" in err and "4" in err


def test_cli_missing_and_unknown_names_exit_2():
    path = CH04 / "listing_4_06.dl"
    err = cli_error("run", path, "--eval", "z")
    assert DIAG.search(err) and "input `x`" in err
    err = cli_error("run", path, "--eval", "zz", "-i", "x=[[1,2,3]]")
    assert "`zz`" in err and "did you mean `z`" in err
    err = cli_error("run", path, "--eval", "z", "-i", "xs=[[1,2,3]]")
    assert "`xs`" in err and "did you mean `x`" in err
    err = cli_error("grad", path, "--of", "zz", "--wrt", "x", "-i", "x=[[1,2,3]]")
    assert "did you mean `z`" in err
    err = cli_error("grad", path, "--of", "z", "--wrt", "xx", "-i", "x=[[1,2,3]]")
    assert "did you mean `x`" in err


def test_cli_grad_of_non_scalar_exit_2():
    err = cli_error("grad", CH04 / "listing_4_05.dl", "--of", "z", "--wrt", "x", "-i", "x=[[1,2,3]]")
    assert "listing_4_05.dl" in err and "`z`" in err and "scalar" in err


def test_cli_bad_input_files_exit_2(tmp_path):
    path = CH04 / "listing_4_06.dl"
    err = cli_error("run", path, "--eval", "z", "-i", f"x={tmp_path / 'missing.npy'}")
    assert "input `x`" in err
    np.savez(tmp_path / "d.npz", x=np.array([[1.0, 2.0, 3.0]]))
    err = cli_error("run", path, "--eval", "z", "-i", f"x={tmp_path / 'd.npz'}:nope")
    assert "nope" in err and "x" in err
    err = cli_error("run", path, "--eval", "z", "-i", "x=[[1,2,")
    assert "input `x`" in err


def test_cli_user_mistake_subprocess_no_traceback():
    proc = subprocess.run(["wengert", "run", str(CH04 / "listing_4_05.dl"), "--eval", "z", "-i", "x=[[1,2]]"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert DIAG.search(proc.stderr) and "f64[n, 3]" in proc.stderr


def test_cli_trace_bad_range_exit_2():
    err = cli_error("trace", CH04 / "listing_4_14.dl", "--of", "final_result", "-i", "a=2", "-i", "k=4",
                    "--range", "x..y")
    assert "--range" in err or "range" in err


# ---------------------------------------------------------------------------- the CLI: inputs and JSON
def test_cli_npy_and_npz_inputs(tmp_path):
    path = CH04 / "listing_4_02.dl"
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "rest.npz", b=np.full((2, 2), 2.0), c=np.full((2, 2), 5.0), d=np.array([[1.0, 2.0], [3.0, 4.0]]))
    r = cli("run", path, "--eval", "e", "-i", f"a={tmp_path / 'a.npy'}", "-i", f"b={tmp_path / 'rest.npz'}:b",
            "-i", f"c={tmp_path / 'rest.npz'}:c", "-i", f"d={tmp_path / 'rest.npz'}:d", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    np.testing.assert_array_equal(out["e"], (a + 2 - 5) * a)


def test_cli_npy_integer_and_float32_inputs_are_cast(tmp_path):
    path = CH04 / "listing_4_14.dl"
    np.save(tmp_path / "a.npy", np.array(3.0, dtype=np.float32))
    np.save(tmp_path / "k.npy", np.array(4, dtype=np.int64))
    r = cli("run", path, "--eval", "final_result", "-i", f"a={tmp_path / 'a.npy'}", "-i", f"k={tmp_path / 'k.npy'}",
            "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"final_result": 81.0}


def test_cli_json_output():
    r = cli("run", CH04 / "listing_4_04.dl", "--eval", "f_relu,f_softmax", "-i", "x=[[-1,0,1]]", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert list(out) == ["f_relu", "f_softmax"]
    assert out["f_relu"] == [[0.0, 0.0, 1.0]]
    e = np.exp([-1.0, 0.0, 1.0])
    np.testing.assert_allclose(out["f_softmax"], [e / e.sum()], rtol=1e-12)
    r = cli("grad", L9_1, "--of", "f", "--wrt", "x1,x2", "-i", "x1=3", "-i", "x2=4", "--json")
    assert r.exit_code == 0, r.output
    g = json.loads(r.stdout)
    assert g == pytest.approx({"x1": 0.6, "x2": 0.8}, rel=1e-12)
    r = cli("run", L9_1, "--eval", "f", "-i", "x1=3", "-i", "x2=4", "--json")
    assert json.loads(r.stdout) == {"f": 5.0}


def test_cli_json_bool_and_int_outputs():
    prog_path = CH04 / "listing_4_14.dl"
    r = cli("run", prog_path, "--eval", "final_result", "-i", "a=-1.5", "-i", "k=3", "--json")
    assert json.loads(r.stdout) == {"final_result": -3.375}


def test_cli_trace_range_and_no_values():
    r = cli("trace", CH04 / "listing_4_14.dl", "--of", "final_result", "-i", "a=2", "-i", "k=4", "--no-values")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert "value" not in lines[0].split()
    assert len(lines) - 2 == len(wengert.load(CH04 / "listing_4_14.dl").trace("final_result", a=2.0, k=4))
    assert sum(1 for line in lines[2:] if line.split()[1] == "mul") == 3


# ---------------------------------------------------------------------------- freeing intermediates
def _chain(n: int) -> wengert.Program:
    lines = ["input x: f64[3]", "v0 = x + 1"] + [f"v{i} = v{i - 1} * 1.01 + 0.5" for i in range(1, n)]
    return wengert.compile("\n".join(lines) + "\n")


def _reference(n: int, x):
    v = np.asarray(x, dtype=float) + 1
    for _ in range(1, n):
        v = v * 1.01 + 0.5
    return v


def test_intermediates_freed_after_last_use():
    n = 200
    prog = _chain(n)
    x = [1.0, 2.0, 3.0]
    evaluation, (out,) = prog._evaluate([f"v{n - 1}"], {"x": x}, record=False)
    assert isinstance(evaluation, executor.Evaluation)
    np.testing.assert_allclose(out, _reference(n, x), rtol=1e-12)
    assert len(evaluation.env) < 10, len(evaluation.env)  # 200 named values and ~600 ops ran
    assert len(evaluation.trace) == 0
    # recording keeps everything (the trace needs it)
    recorded, _ = prog._evaluate([f"v{n - 1}"], {"x": x}, record=True)
    assert len(recorded.env) >= 2 * n and len(recorded.trace) >= 2 * n
    np.testing.assert_allclose(prog.run(f"v{n - 1}", x=x), _reference(n, x), rtol=1e-12)


def test_evaluation_directly_frees_values():
    """Build an Evaluation by hand, as Program does, and run it without recording."""
    n = 200
    prog = _chain(n)
    module = prog.module
    x = np.array([1.0, 2.0, 3.0])
    roots = {module.inputs["x"].var.id: ("input", "x", x)}
    ctx = executor.Context(np.random.default_rng(0), False, {})
    ev = executor.Evaluation(module, roots, ctx, record=False)
    (out,) = ev.run([module.values[f"v{n - 1}"]])
    np.testing.assert_allclose(out, _reference(n, x), rtol=1e-12)
    assert len(ev.env) < 10
    # several wanted outputs stay alive until the end
    ev2 = executor.Evaluation(module, roots, ctx, record=False)
    outs = ev2.run([module.values["v10"], module.values[f"v{n - 1}"]])
    np.testing.assert_allclose(outs[0], _reference(11, x), rtol=1e-12)
    np.testing.assert_allclose(outs[1], _reference(n, x), rtol=1e-12)
    assert len(ev2.env) < 12


def test_run_of_many_values_returns_each():
    prog = _chain(50)
    x = [0.0, 1.0, -1.0]
    out = prog.run(["v0", "v25", "v49"], x=x)
    assert list(out) == ["v0", "v25", "v49"]
    for name in out:
        np.testing.assert_allclose(out[name], _reference(int(name[1:]) + 1, x), rtol=1e-12)


@pytest.mark.parametrize("src,inputs,expected,dx", [
    ("""
     input x: f64[3]
     input n: i64
     w = x * 2
     h = x
     for t in 0..n {
       h = h + w
     }
     u = w + h
     out = sum(u)
     """, {"n": 3}, 9 * 2.0, [9.0, 9.0, 9.0]),  # h = 7x, u = 9x
    ("""
     input x: f64[3]
     input n: i64
     w = x * 2
     h = x
     for t in 0..n {
       for s in 0..2 {
         h = h * 0.5 + w
       }
       h = h + t
     }
     out = sum(h) + sum(w)
     """, {"n": 3}, 3.953125 * 2 + 6.75 + 4, [5.953125] * 3),  # h = 3.953125 x + 2.25
    ("""
     input x: f64[3]
     input c: f64
     w = x * 2
     v = exp(x)
     z = if c > 0 then sum(w * v) else sum(v)
     out = z + sum(w)
     """, {"c": 1.0}, float(np.sum(2 * np.array([1.0, 2.0, -1.0]) * np.exp([1.0, 2.0, -1.0]))) + 4,
     list(2 * np.exp([1.0, 2.0, -1.0]) * (1 + np.array([1.0, 2.0, -1.0])) + 2)),
])
def test_values_used_across_loops_and_branches_are_not_freed_early(src, inputs, expected, dx):
    prog = compile_(src)
    x = np.array([1.0, 2.0, -1.0])
    np.testing.assert_allclose(prog.run("out", x=x, **inputs), expected, rtol=1e-12)
    t = prog.trace("out", x=x, **inputs)
    np.testing.assert_allclose(t[t.outputs["out"]].primal, expected, rtol=1e-12)
    for mode in ("reverse", "forward"):
        np.testing.assert_allclose(prog.grad("out", wrt=["x"], mode=mode, x=x, **inputs)["x"], dx, rtol=1e-12)
    evaluation, _ = prog._evaluate(["out"], {"x": x, **inputs}, record=False)
    assert len(evaluation.env) < len(t)


def test_cli_trace_range():
    r = cli("trace", CH04 / "listing_4_14.dl", "--of", "final_result", "-i", "a=2", "-i", "k=4", "--range", "2..5")
    assert r.exit_code == 0, r.output
    rows = [line.split() for line in r.stdout.splitlines()[2:]]
    assert [row[0] for row in rows] == ["v2", "v3", "v4"]
    assert rows[1][1] == "mul" and rows[1][-1] == "4"


# ---------------------------------------------------------------- update statements
UPDATES = """
input x: f64[3]
state count: f64 = 0
state total: f64[3] = 0
param w: f64[3] = 1
y = sum(w * x)
update count = count + 1
update total = total + x * w
update w = w - 0.1 * x
"""


def test_updates_are_applied_simultaneously():
    prog = wengert.compile(UPDATES)
    for _ in range(3):
        prog.apply_updates({"x": [1.0, 2.0, 3.0]})
    p = prog.params
    assert p["count"] == 3.0
    # Each step reads the values from before the step: w was 1, 0.9, 0.8 times x.
    np.testing.assert_allclose(p["total"], [2.7, 4.8, 6.3])
    np.testing.assert_allclose(p["w"], [0.7, 0.4, 0.1])
    assert prog.run("y", x=[1.0, 1.0, 1.0]) == pytest.approx(1.2)


def test_run_update_from_the_cli(tmp_path):
    path = tmp_path / "upd.dl"
    path.write_text(UPDATES)
    result = CliRunner().invoke(main, ["run", str(path), "--eval", "y", "-i", "x=[1,2,3]", "--update", "--json"])
    assert result.exit_code == 0, result.output
    values = json.loads(result.output)
    assert values["y"] == 6.0 and values["count"] == 1.0 and values["w"] == pytest.approx([0.9, 0.8, 0.7])
