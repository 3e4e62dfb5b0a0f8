"""Linear algebra with derivatives (issue 16): inv, solve, det, slogdet, cholesky, triangular_solve,
lstsq — values against numpy.linalg, derivatives against numerical differentiation in both modes
and at order 2 (check_grads), ill-conditioned matrices, grad of grad in the language, and the
chapter 2 programs (closed-form least squares and ridge regression)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import wengert
from conftest import errors, where
from wengert.runtime.gradcheck import check_grads

CH02 = Path(__file__).resolve().parent.parent / "models" / "ch02"
RNG = np.random.default_rng(7)

DECLS = """
input A: f64[3, 3]
input S: f64[3, 3]
input B: f64[3, 2]
input v: f64[3]
input X: f64[6, 3]
input y: f64[6]
input Y: f64[6, 2]
input As: f64[4, 3, 3]
"""


def _inputs():
    a = RNG.standard_normal((3, 3)) + 3 * np.eye(3)
    m = RNG.standard_normal((3, 3))
    return {"A": a, "S": m @ m.T + np.eye(3), "B": RNG.standard_normal((3, 2)), "v": RNG.standard_normal(3),
            "X": RNG.standard_normal((6, 3)), "y": RNG.standard_normal(6), "Y": RNG.standard_normal((6, 2)),
            "As": RNG.standard_normal((4, 3, 3)) + 3 * np.eye(3)}


VALUES = {
    "inv(A)": lambda d: np.linalg.inv(d["A"]),
    "inv(As)": lambda d: np.linalg.inv(d["As"]),
    "solve(A, B)": lambda d: np.linalg.solve(d["A"], d["B"]),
    "solve(A, v)": lambda d: np.linalg.solve(d["A"], d["v"]),
    "solve(As, B)": lambda d: np.linalg.solve(d["As"], d["B"]),
    "det(A)": lambda d: np.linalg.det(d["A"]),
    "det(As)": lambda d: np.linalg.det(d["As"]),
    "cholesky(S)": lambda d: np.linalg.cholesky(d["S"]),
    "triangular_solve(S, B)": lambda d: np.linalg.solve(np.tril(d["S"]), d["B"]),
    "triangular_solve(S, v, lower=false)": lambda d: np.linalg.solve(np.triu(d["S"]), d["v"]),
    "triangular_solve(S, B, transpose=true)": lambda d: np.linalg.solve(np.tril(d["S"]).T, d["B"]),
    "lstsq(X, y)": lambda d: np.linalg.lstsq(d["X"], d["y"], rcond=None)[0],
    "lstsq(X, Y)": lambda d: np.linalg.lstsq(d["X"], d["Y"], rcond=None)[0],
    "tril(A, k=-1)": lambda d: np.tril(d["A"], -1),
    "triu(A)": lambda d: np.triu(d["A"]),
}


@pytest.mark.parametrize("expression", list(VALUES))
def test_values_equal_numpy_linalg(expression):
    prog = wengert.compile(DECLS + f"out = {expression}\n")
    d = _inputs()
    np.testing.assert_allclose(prog.run("out", **d), VALUES[expression](d), rtol=1e-12, atol=1e-12)


def test_slogdet_binds_sign_and_log_abs_det():
    prog = wengert.compile(DECLS + "s, l = slogdet(A - 3 * eye(3))\n")
    d = _inputs()
    sign, logdet = np.linalg.slogdet(d["A"] - 3 * np.eye(3))
    out = prog.run(["s", "l"], **d)
    assert out["s"] == sign and out["l"] == pytest.approx(logdet, rel=1e-12)


LOSSES = {
    "inv": "sum(inv(A) * (B @ transpose(B)))",
    "inv_batched": "sum(inv(As) ** 2)",
    "solve_matrix": "sum(solve(A, B) * B)",
    "solve_vector": "sum(solve(A, v) ** 2)",
    "solve_batched": "sum(solve(As, B) ** 2)",
    "det": "det(A)",
    "slogdet": "sum(slogdet(As)[1])",
    "cholesky": "sum(cholesky(S) * A)",
    "triangular_solve": "sum(triangular_solve(S, B) * B)",
    "triangular_solve_upper_transposed": "sum(triangular_solve(S, v, lower=false, transpose=true) ** 2)",
    "lstsq_vector": "sum(lstsq(X, y) ** 2)",
    "lstsq_matrix": "sum(lstsq(X, Y) * B)",
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_derivatives_pass_check_grads_in_both_modes_and_at_order_2(name):
    loss = LOSSES[name].replace("slogdet(As)[1]", "l")
    text = DECLS + ("s, l = slogdet(As)\n" if name == "slogdet" else "") + f"out = {loss}\n"
    prog = wengert.compile(text)
    d = _inputs()
    used = [n for n in d if n in loss or (name == "slogdet" and n == "As")]
    check_grads(prog, "out", wrt=used, modes=("forward", "reverse"), order=2, **d)


def _ill_conditioned(cond: float) -> np.ndarray:
    q1, _ = np.linalg.qr(RNG.standard_normal((4, 4)))
    q2, _ = np.linalg.qr(RNG.standard_normal((4, 4)))
    return q1 @ np.diag(np.geomspace(1.0, 1.0 / cond, 4)) @ q2


@pytest.mark.parametrize("expression", ["sum(inv(M) * C)", "sum(solve(M, b) * b)", "slogdet(M)[1]"])
def test_derivatives_of_ill_conditioned_matrices_match_finite_differences(expression):
    """cond(M) = 1e6: the derivatives are huge, the rules stay exact."""
    text = "input M: f64[4, 4]\ninput C: f64[4, 4]\ninput b: f64[4]\n"
    if "slogdet" in expression:
        text += "s, l = slogdet(M)\nout = l\n"
    else:
        text += f"out = {expression}\n"
    prog = wengert.compile(text + "g = grad(out, M)\n")
    m = _ill_conditioned(1e6)
    inputs = {"M": m, "C": RNG.standard_normal((4, 4)), "b": RNG.standard_normal(4)}
    reverse = prog.grad("out", wrt=["M"], **inputs)["M"]
    forward = prog.grad("out", wrt=["M"], mode="forward", **inputs)["M"]
    in_language = prog.run("g", **inputs)
    step = 1e-3 * np.linalg.svd(m, compute_uv=False).min()  # small against the smallest singular value
    numeric = np.zeros_like(m)
    for i in range(4):
        for j in range(4):
            for sign in (1, -1):
                moved = m.copy()
                moved[i, j] += sign * step
                numeric[i, j] += sign * prog.run("out", **{**inputs, "M": moved}) / (2 * step)
    scale = np.abs(numeric).max()
    assert scale > 1e5  # it is ill-conditioned (1/sigma_min for slogdet, 1/sigma_min^2 for inv, solve)
    for got in (reverse, forward, in_language):
        np.testing.assert_allclose(got, numeric, rtol=0, atol=1e-6 * scale)


def test_grad_of_grad_through_solve_and_inv_in_the_language():
    prog = wengert.compile(DECLS + """
f = sum(solve(A, v) ** 2) + sum(inv(A))
g = grad(f, v)
h = grad(sum(g * g), A)
""")
    d = _inputs()
    ref = prog.grad("f", wrt=["v"], **d)["v"]
    np.testing.assert_allclose(prog.run("g", **d), ref, rtol=1e-12)
    check_grads(wengert.compile(DECLS + "f = sum(solve(A, v) ** 2)\ng = grad(f, v)\nout = sum(g * g)\n"),
                "out", wrt=["A"], order=2, **d)


def test_shape_mistakes_are_reported_at_the_call():
    (e,) = errors("input A: f64[3, 4]\nB = inv(A)\n")
    assert where(e) == (2, 5) and "square" in e.message
    (e,) = errors("input A: f64[3, 3]\ninput b: f64[4]\nx = solve(A, b)\n")
    assert where(e) == (3, 5) and "do not fit" in e.message


# ---------------------------------------------------------------- chapter 2
def test_listing_2_1_closed_form_least_squares_equals_numpy_lstsq_and_degree_2_generalises_best():
    prog = wengert.load(CH02 / "listing_2_01.dl")
    names = ["x_train", "y_train", "w_1", "w_2", "w_8", "w_lstsq_2", "w_lstsq_8"] + \
        [f"{k}_error_{d}" for k in ("train", "test") for d in (1, 2, 8)]
    out = prog.run(names)
    for degree in (1, 2, 8):
        features = out["x_train"][:, None] ** np.arange(degree + 1)
        expected = np.linalg.lstsq(features, out["y_train"], rcond=None)[0]
        np.testing.assert_allclose(out[f"w_{degree}"], expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(out["w_lstsq_8"], np.linalg.lstsq(
        out["x_train"][:, None] ** np.arange(9), out["y_train"], rcond=None)[0], rtol=1e-12)
    tests = [out[f"test_error_{d}"] for d in (1, 2, 8)]
    assert min(tests) == out["test_error_2"]
    assert out["train_error_8"] < out["train_error_2"] < out["train_error_1"]


def test_listing_2_2_ridge_over_100_lambdas():
    prog = wengert.load(CH02 / "listing_2_02.dl")
    out = prog.run(["x_train", "y_train", "lambdas", "W", "train_error", "test_error", "best_lambda",
                    "best_test_error", "test_error_unregularised"])
    assert out["W"].shape == (100, 9, 1)
    features = out["x_train"][:, None] ** np.arange(9)
    for k in (0, 50, 99):
        ridge = np.linalg.solve(features.T @ features + out["lambdas"][k] * np.eye(9), features.T @ out["y_train"])
        np.testing.assert_allclose(out["W"][k, :, 0], ridge, rtol=1e-6)
    assert np.all(np.diff(out["train_error"]) >= 0)  # more regularisation, worse fit of the training data
    best = int(np.argmin(out["test_error"]))
    assert 0 < best < 99 and out["best_lambda"] == out["lambdas"][best]
    assert out["best_test_error"] < out["test_error_unregularised"] / 100


def test_the_figures_of_chapter_2_are_drawn(tmp_path):
    from click.testing import CliRunner

    from wengert.cli import main
    runner = CliRunner()
    for args in (["listing_2_01.dl", "--x", "x_grid", "--y", "curve_1,curve_2,curve_8", "--points", "x_train:y_train"],
                 ["listing_2_02.dl", "--x", "lambdas", "--y", "train_error,test_error", "--logx", "--logy"]):
        out = tmp_path / (args[0] + ".png")
        result = runner.invoke(main, ["plot", str(CH02 / args[0]), *args[1:], "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = runner.invoke(main, ["plot", str(CH02 / "listing_2_01.dl"), "--y", "curve_1", "--out", str(tmp_path / "x.png")])
    assert bad.exit_code == 2 and "--y needs --x" in bad.output
