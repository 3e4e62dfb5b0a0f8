"""User mistakes: each one is reported as a diagnostic at the right place with a useful message.

Every test names one mistake a user makes and checks where it is reported (file, line,
column) and what the message says. CLI tests also check exit status 2 and that no Python
traceback leaks out. Helpers live in this file (conftest.py belongs to someone else).
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from wengert.cli import main
from wengert.diagnostics import Diagnostic, DiagnosticError
from wengert.dsl.lower import check_file, lower_source
from wengert.diagnostics import Source

FILE = "prog.dl"


# ---------------------------------------------------------------- helpers
def _text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def diagnostics(text: str, path: str = FILE) -> list[Diagnostic]:
    """All diagnostics of a program that must fail to check."""
    with pytest.raises(DiagnosticError) as info:
        lower_source(Source(path, _text(text)))
    diags = info.value.diagnostics
    assert any(d.severity == "error" for d in diags), "DiagnosticError without an error"
    for d in diags:  # every diagnostic must render without raising
        assert isinstance(d.render(), str) and d.render()
    return diags


def errors(text: str, path: str = FILE) -> list[Diagnostic]:
    return [d for d in diagnostics(text, path) if d.severity == "error"]


def the_error(text: str, path: str = FILE) -> Diagnostic:
    errs = errors(text, path)
    assert len(errs) == 1, "expected exactly one error, got:\n" + "\n".join(d.render() for d in errs)
    return errs[0]


def assert_at(d: Diagnostic, line: int, column: int, *fragments: str, file: str = FILE) -> None:
    """d is reported in `file` at line:column and its message contains every fragment."""
    assert d.span is not None, d.render()
    assert (d.span.file, d.span.line, d.span.column) == (file, line, column), d.render()
    for f in fragments:
        assert f in d.message, f"{f!r} not in {d.message!r}"
    assert d.render().startswith(f"{file}:{line}:{column}: {d.severity}: {d.message}")


def cli(*args: str):
    """Run `wengert ARGS` in-process; the result has exit_code, stdout, stderr, output."""
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError("the CLI raised " + repr(result.exception)) from result.exception
    assert "Traceback" not in result.output
    return result


def cli_subprocess(*args: str, timeout: float = 60, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `wengert` command in a fresh interpreter (sees what a shell user sees)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-m", "wengert.cli", *args], capture_output=True, text=True, check=False,
                          timeout=timeout, env=env, cwd=cwd, preexec_fn=_limit_memory)


def _limit_memory() -> None:  # a runaway checker must fail, not swap the CI machine to death
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def write(tmp_path: Path, text: str | bytes, name: str = FILE) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(_text(text), encoding="utf-8")
    return path


def assert_cli_error(tmp_path: Path, text: str | bytes, line: int | None, column: int | None, *fragments: str,
                     name: str = FILE) -> str:
    """`wengert check` on text fails with status 2 and an error at line:column; the stderr."""
    path = write(tmp_path, text, name)
    r = cli("check", str(path))
    assert r.exit_code == 2, r.output
    assert r.stdout == "", "a failing file must not print a summary line"
    where = f"{path}:{line}:{column}: error: " if line is not None else f"{path}: error: "
    heads = [ln for ln in r.stderr.splitlines() if ln.startswith(where)]
    assert heads, f"no diagnostic starting with {where!r} in:\n{r.stderr}"
    for f in fragments:
        assert f in heads[0], f"{f!r} not in {heads[0]!r}"
    return r.stderr


# ---------------------------------------------------------------- syntax errors
def test_unclosed_paren_at_end_of_file_is_reported_at_the_opening_bracket():
    d = the_error("""
        x = 1
        y = sum(1 + 2
        """)
    assert_at(d, 2, 8, "unclosed `(`", "no matching `)`")


def test_unclosed_paren_followed_by_more_statements_points_at_the_opening_bracket():
    # The newline is swallowed inside the bracket, so the parser trips over `z`; the opening
    # bracket must still be shown to the user.
    d = the_error("""
        x = 1
        y = (1 + 2
        z = 3
        """)
    assert d.span.line == 3 and d.span.column == 1 and "`z`" in d.message
    notes = [(s.line, s.column, msg) for s, msg in d.notes]
    assert any((ln, col) == (2, 5) and "`(`" in msg and "not closed" in msg for ln, col, msg in notes), notes
    assert f"{FILE}:2:5: note:" in d.render()


def test_unclosed_paren_via_cli(tmp_path):
    stderr = assert_cli_error(tmp_path, "seed 0\nloss = mean((1 + 2\n", 2, 13, "unclosed `(`")
    assert "    loss = mean((1 + 2\n" in stderr


def test_unclosed_bracket_of_a_list_at_end_of_file():
    d = the_error("x = [1, 2\n")
    assert_at(d, 1, 5, "unclosed `[`", "no matching `]`")


def test_stray_number_after_an_expression():
    d = the_error("x = 3 3\n")
    assert_at(d, 1, 7, "unexpected `3`")


def test_stray_closing_paren():
    d = the_error("x = )\n")
    assert_at(d, 1, 5, "unmatched `)`")


def test_mismatched_closing_bracket_names_the_opener():
    d = the_error("x = [1, 2)\n")
    assert_at(d, 1, 10, "`)` does not match `[`")
    assert [(s.line, s.column) for s, _ in d.notes] == [(1, 5)]


def test_unterminated_string():
    d = the_error('data d = csv("train.csv, x=0..4)\n')
    assert_at(d, 1, 14, "unterminated string")


def test_single_bar_instead_of_pipe_operator():
    d = the_error("""
        input x: f64[3]
        y = x | relu
        """)
    assert_at(d, 2, 7, "`|`", "`|>`")


def test_stray_token_via_cli(tmp_path):
    assert_cli_error(tmp_path, "x = 1\ny = 3 3\n", 2, 7, "unexpected `3`")


# ---------------------------------------------------------------- names and calls
def test_misspelled_builtin_function_suggests_the_right_one():
    d = the_error("""
        input x: f64[3]
        y = sigmod(x)
        """)
    assert_at(d, 2, 5, "unknown function `sigmod`", "did you mean `sigmoid`?")


def test_misspelled_name_suggests_the_bound_one():
    d = the_error("""
        param w: f64[3] = 0
        y = ww * 2
        """)
    assert_at(d, 2, 5, "undefined name `ww`", "did you mean `w`?")


def test_undefined_name_without_a_close_candidate_has_no_suggestion():
    d = the_error("y = qqqqqq + 1\n")
    assert_at(d, 1, 5, "undefined name `qqqqqq`")
    assert "did you mean" not in d.message


def test_rebinding_a_top_level_name_names_the_first_binding_line():
    d = the_error("""
        input x: f64[3]
        h = x * 2
        y = h + 1
        h = x * 3
        """)
    assert_at(d, 4, 1, "`h` is already bound", "(line 2)")


def test_rebinding_an_input_as_a_value():
    d = the_error("""
        seed 1
        input x: f64[3]

        x = 2
        """)
    assert_at(d, 4, 1, "`x` is already bound", "(line 2)")


def test_unknown_function():
    d = the_error("""
        input x: f64[3]
        y = frobnicate(x)
        """)
    assert_at(d, 2, 5, "unknown function `frobnicate`")


def test_unknown_keyword_argument_of_a_builtin_suggests_the_right_one():
    d = the_error("""
        input x: f64[3, 4]
        y = sum(x, axs=1)
        """)
    assert_at(d, 2, 12, "`sum` has no argument `axs`", "did you mean `axis`?")


def test_unknown_keyword_argument_of_a_user_fn_suggests_the_right_one():
    d = the_error("""
        fn scaled(t, factor=2) = t * factor
        input x: f64[3]
        y = scaled(x, facter=3)
        """)
    assert_at(d, 3, 15, "`scaled` has no argument `facter`", "did you mean `factor`?")


def test_too_many_arguments_to_a_builtin():
    d = the_error("""
        input x: f64[3]
        y = exp(x, x)
        """)
    assert_at(d, 2, 12, "`exp` takes 1 argument but 2 were given")


def test_missing_argument_to_a_user_fn():
    d = the_error("""
        fn f(a, b) = a + b
        y = f(1)
        """)
    assert_at(d, 2, 5, "`f` is missing argument `b`", "a, b")


def test_recursion_between_two_fns():
    d = the_error("""
        fn f(a) = g(a) + 1
        fn g(a) = f(a) * 2
        y = f(1)
        """)
    assert_at(d, 2, 11, "recursion is not supported", "f -> g -> f")


def test_argument_errors_via_cli(tmp_path):
    assert_cli_error(tmp_path, "input x: f64[3, 4]\ny = mean(x, axes=0)\n", 2, 13,
                     "`mean` has no argument `axes`", "did you mean `axis`?")


# ---------------------------------------------------------------- types: bool arithmetic, shapes, dtypes
def test_arithmetic_on_a_bool_literal():
    d = the_error("y = true + 1\n")
    assert_at(d, 1, 5, "arithmetic on bool", "cast(")


def test_arithmetic_on_a_comparison_result():
    d = the_error("""
        input x: f64[3]
        y = (x > 0) * 2
        """)
    assert_at(d, 2, 5, "arithmetic on bool", "bool[3]", "cast(")


def test_matmul_inner_dimension_mismatch_shows_both_shapes():
    d = the_error("""
        input a: f64[3, 4]
        input b: f64[5, 6]
        c = a @ b
        """)
    assert_at(d, 3, 5, "f64[3, 4]", "f64[5, 6]", "4 vs 5")


def test_broadcast_mismatch_shows_both_shapes():
    d = the_error("""
        input a: f64[3]
        input b: f64[4]
        c = a + b
        """)
    assert_at(d, 3, 5, "[3]", "[4]", "broadcast")


def test_where_with_a_non_bool_condition():
    d = the_error("""
        input a: f64[3]
        c = where(a, a, 0)
        """)
    assert_at(d, 2, 5, "condition", "bool", "f64[3]")


def test_if_with_a_non_scalar_condition():
    d = the_error("""
        input a: f64[3]
        c = if a > 0 then 1 else 2
        """)
    assert_at(d, 2, 8, "condition of `if`", "scalar", "bool[3]")


def test_symbolic_dim_bound_to_two_different_sizes_names_the_symbol_and_both_sizes():
    d = the_error("""
        input a: f64[n]
        param W: f64[3, 2] = zeros
        input c: f64[4]
        u = a @ W
        v = a + c
        """)
    assert_at(d, 5, 5, "`n`", "3", "4", "line 4")


def test_shape_error_via_cli(tmp_path):
    stderr = assert_cli_error(tmp_path, "input a: f64[3, 4]\ninput b: f64[5, 6]\nc = a @ b\n", 3, 5,
                              "f64[3, 4]", "f64[5, 6]")
    assert "    c = a @ b\n        ^^^^^\n" in stderr


def test_unknown_dtype_suggests_the_right_one():
    d = the_error("input x: f46[3]\n")
    assert_at(d, 1, 10, "unknown dtype `f46`", "did you mean `f64`?")


# ---------------------------------------------------------------- files: encoding, binary, missing
def test_non_utf8_file_points_at_the_bad_byte(tmp_path):
    path = write(tmp_path, b'x = 1\ny = "caf\xe9"\n')
    with pytest.raises(DiagnosticError) as info:
        check_file(path)
    [d] = info.value.diagnostics
    assert_at(d, 2, 9, "not valid UTF-8", "0xe9", file=str(path))


def test_non_utf8_file_via_cli(tmp_path):
    assert_cli_error(tmp_path, b'x = 1\ny = "caf\xe9"\n', 2, 9, "not valid UTF-8", "0xe9")


def test_binary_file(tmp_path):
    path = write(tmp_path, bytes(range(256)) * 4, name="weights.dl")
    with pytest.raises(DiagnosticError) as info:
        check_file(path)
    [d] = info.value.diagnostics
    assert d.span is None and d.file == str(path)
    assert "binary file" in d.message
    assert d.render() == f"{path}: error: binary file (contains NUL bytes), not a .dl program"


def test_binary_file_via_cli(tmp_path):
    assert_cli_error(tmp_path, b"\x7fELF\x02\x01\x01\x00\x00\x00", None, None, "binary file", name="a.out.dl")


def test_file_that_does_not_exist(tmp_path):
    path = tmp_path / "missing.dl"
    with pytest.raises(DiagnosticError) as info:
        check_file(path)
    [d] = info.value.diagnostics
    assert d.file == str(path) and "no such file" in d.message
    assert d.render() == f"{path}: error: no such file"


def test_file_that_does_not_exist_via_cli(tmp_path):
    path = tmp_path / "missing.dl"
    r = cli("check", str(path))
    assert r.exit_code == 2
    assert r.stderr.splitlines()[0] == f"{path}: error: no such file"


def test_a_missing_file_does_not_stop_the_others_from_being_checked(tmp_path):
    good = write(tmp_path, "input x: f64[3]\ny = relu(x)\n", "good.dl")
    r = cli("check", str(tmp_path / "missing.dl"), str(good))
    assert r.exit_code == 2
    assert r.stdout.startswith(f"{good}: ok")
    assert "no such file" in r.stderr


def test_import_of_a_missing_file_is_reported_at_the_import(tmp_path):
    path = write(tmp_path, 'import "lib/helpers.dl"\ninput x: f64[3]\n')
    with pytest.raises(DiagnosticError) as info:
        check_file(path)
    [d] = info.value.errors
    assert_at(d, 1, 1, 'cannot import "lib/helpers.dl"', "no such file", file=str(path))


def test_error_inside_an_imported_file_is_reported_in_that_file(tmp_path):
    write(tmp_path, "fn double(t) = t * 2\nfn broken(t) = t +\n", "lib.dl")
    path = write(tmp_path, 'import "lib.dl"\ninput x: f64[3]\ny = double(x)\n')
    with pytest.raises(DiagnosticError) as info:
        check_file(path)
    d = info.value.errors[0]
    assert Path(d.span.file).name == "lib.dl" and d.span.line == 2
    assert d.render().startswith(f"{d.span.file}:2:")


# ---------------------------------------------------------------- pathological input
DEEP_PROGRAMS = {
    "5000 nested parentheses": "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n",
    "5000 nested lists": "x = " + "[" * 5000 + "1" + "]" * 5000 + "\n",
    "20000 unary minus": "x = " + "-" * 20000 + "1\n",
    "50000 additions": "x = " + "1 + " * 50000 + "1\n",
    "3000 nested ifs": "input k: i64\nx = " + "if k > 0 then 1 else " * 3000 + "0\n",
    "3000 pipes": "input x: f64[3]\ny = x" + " |> relu" * 3000 + "\n",
    "300 pipes": "input x: f64[3]\ny = x" + " |> relu" * 300 + "\n",
    "5000 right-assoc powers": "input x: f64[3]\ny = " + "x ** " * 5000 + "1\n",
}


def _clean_outcome(text: str) -> list[Diagnostic]:
    """Check text; success or diagnostics are fine, anything else (RecursionError...) fails."""
    try:
        lower_source(Source(FILE, text))
        return []
    except DiagnosticError as e:
        for d in e.diagnostics:
            r = d.render()
            assert r.startswith(f"{FILE}:") and "Traceback" not in r
        return e.errors


@pytest.mark.parametrize("name", list(DEEP_PROGRAMS))
def test_pathologically_deep_nesting_gives_a_clean_diagnostic_or_success(name):
    errs = _clean_outcome(DEEP_PROGRAMS[name])
    for d in errs:
        assert "deep" in d.message, d.render()  # the reason given is the nesting, not something random
    if name.startswith(("5000 nested",)):
        [d] = errs
        assert_at(d, 1, 205, "nested too deeply")


def test_the_checker_still_works_after_a_too_deep_program():
    _clean_outcome(DEEP_PROGRAMS["20000 unary minus"])
    module = lower_source(Source(FILE, "input x: f64[3]\ny = -(-x)\n"))
    assert "y" in module.values


@pytest.mark.parametrize("name", ["5000 nested parentheses", "20000 unary minus", "50000 additions"])
def test_pathologically_deep_nesting_via_the_real_cli(tmp_path, name):
    path = write(tmp_path, DEEP_PROGRAMS[name])
    r = cli_subprocess("check", str(path))
    assert r.returncode in (0, 2), r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "RecursionError" not in r.stderr
    if r.returncode == 2:
        assert r.stderr.startswith(f"{path}:1:")


def test_a_sum_of_thousands_of_terms_checks():
    assert not _clean_outcome("x = " + "1 + " * 5000 + "1\n")


def test_a_long_line_is_rendered_without_a_huge_caret_line():
    errs = _clean_outcome("x = " + "1 + " * 5000 + "ww\n")  # an undefined name at column 20005
    assert errs and errs[0].span.column == 20005
    for d in errs:
        assert max(len(ln) for ln in d.render().splitlines()) < 1000


def test_param_too_big_for_any_machine():
    d = the_error("param w: f64[100000, 100000, 1000] = zeros\n")
    assert_at(d, 1, 10, "param `w`", "TB")


def test_param_too_big_via_cli(tmp_path):
    assert_cli_error(tmp_path, "input x: f32[batch, 100000]\nparam W: f32[100000, 100000, 100] = glorot()\n",
                     2, 10, "`W`", "TB")


def test_param_with_zero_sized_dimension():
    d = the_error("param w: f64[3, 0] = zeros\n")
    assert_at(d, 1, 10, "size 0")


# ---------------------------------------------------------------- regressions: bugs these tests found
def test_integer_literal_with_5000_digits_is_a_diagnostic():
    errs = _clean_outcome("x = " + "9" * 5000 + "\n")
    assert errs and errs[0].span.line == 1


def test_folded_huge_integer_is_a_diagnostic():
    errs = _clean_outcome("input y: f64[3]\nz = y * 2 ** 100000\n")
    assert errs and errs[0].span.line == 2


def test_huge_static_power_does_not_hang_the_checker(tmp_path):
    path = write(tmp_path, "x = 2 ** 99999999999999999999\n")
    try:
        r = cli_subprocess("check", str(path), timeout=8)
    except subprocess.TimeoutExpired:
        pytest.fail("`wengert check` was still running after 8 s")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_invalid_escape_in_a_string_is_a_diagnostic():
    errs = _clean_outcome('data d = csv("C:\\xdata\\train.csv", x=0..4, y=4)\n')
    assert errs and (errs[0].span.line, errs[0].span.column) == (1, 14)


def test_unicode_escape_in_a_string_does_not_crash():
    _clean_outcome('data d = csv("\\u20ac.csv", x=0..4, y=4)\n')


def test_param_with_an_astronomical_dimension_is_a_diagnostic():
    errs = _clean_outcome("param w: f64[1" + "0" * 400 + "] = zeros\n")
    assert errs and (errs[0].span.line, errs[0].span.column) == (1, 10)


@pytest.mark.parametrize("decl", ["param w: f64 = 10 ** 400", "param w: i64 = 10 ** 30"])
def test_param_initial_value_out_of_range_is_a_diagnostic(decl):
    errs = _clean_outcome(decl + "\n")
    assert errs and errs[0].span.line == 1


@pytest.mark.parametrize("expr", ["dim(s, 0)", "squeeze(s, axis=0)", "Flatten(s)"])
def test_axis_0_of_a_scalar_is_a_diagnostic(expr):
    errs = _clean_outcome(f"input s: f64\ny = {expr}\n")
    assert errs and (errs[0].span.line, errs[0].span.column) == (2, 5)


def test_arange_with_a_bad_dtype_is_a_diagnostic():
    d = the_error("y = arange(0, 10, 2, 3)\n")
    assert_at(d, 1, 5, "dtype")


def test_form_feed_does_not_shift_the_shown_source_line():
    d = the_error("# section one\x0c\nparam w: f64[3] = 0\ny = ww * 2\n")
    assert_at(d, 3, 5, "undefined name `ww`")
    assert d.render().splitlines()[1] == "    y = ww * 2"


def test_checking_a_literal_initialised_param_does_not_allocate_it(tmp_path):
    path = write(tmp_path, "param w: f64[20000, 20000] = 1\n")

    def small_memory():  # 1.5 GB of address space: enough for the checker, not for the 3.2 GB array
        resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "wengert.cli", "check", str(path)], capture_output=True, check=False,
                       text=True, timeout=60, env=env, preexec_fn=small_memory)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-500:]


# ---------------------------------------------------------------- regressions of bugs found by these tests
def test_square_root_of_a_negative_literal_is_not_silently_complex():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            lower_source(Source(FILE, "param w: f64 = (-1) ** 0.5\n"))
        except DiagnosticError as e:
            [d] = e.errors
            assert_at(d, 1, 16)
            assert "complex" not in d.message  # the language has no complex numbers


def test_stray_else_after_a_comment_is_reported_at_the_else():
    d = the_error("x = 1\n# a comment\nelse\n")
    assert_at(d, 3, 1, "unexpected `else`")
    assert "\n" not in d.message


def test_fn_with_a_repeated_parameter_name():
    d = the_error("fn f(a, a) = a\ny = f(1, 2)\n")
    assert d.span.line == 1 and "`a`" in d.message


def test_data_split_into_the_same_name_twice():
    d = the_error("data (a, a) = moons(examples=10, noise=0.1, seed=1) |> split(0.5)\n")
    assert d.span.line == 1 and "`a`" in d.message


def test_split_fraction_out_of_range():
    d = the_error("data (tr, va) = moons(examples=10, noise=0.1, seed=1) |> split(80)\n")
    assert d.span.line == 1 and "80" in d.message


# ---------------------------------------------------------------- several errors, notes, rendering
def test_several_independent_errors_are_all_reported_in_line_order():
    errs = errors("""
        input x: f64[3]
        a = sigmod(x)
        b = x + ww
        c = true + 1
        d = sum(x, axs=0)
        e = x @ [1, 2]
        """)
    assert len(errs) >= 3
    lines = [d.span.line for d in errs]
    assert lines == sorted(lines)
    assert lines == [2, 3, 4, 5, 6]
    assert "sigmod" in errs[0].message and "`ww`" in errs[1].message and "bool" in errs[2].message


def test_several_errors_via_cli(tmp_path):
    stderr = assert_cli_error(tmp_path, """
        input x: f64[3]
        a = frobnicate(x)
        b = a + 1
        c = x + qq
        c = 2
        """, 2, 5, "unknown function `frobnicate`")
    heads = [ln for ln in stderr.splitlines() if ": error: " in ln]
    assert len(heads) >= 3, stderr
    lines = [int(h.split(":")[1]) for h in heads]
    assert lines == sorted(lines) and lines[0] == 2
    # `b = a + 1` uses the poisoned `a`: no cascade error is reported for it
    assert not any(h.split(":")[1] == "3" for h in heads), stderr


def test_shadowing_a_builtin_is_a_note_not_an_error():
    module = lower_source(Source(FILE, "fn l2(t) = sum(t ** 2)\ninput x: f64[3]\nloss = l2(x)\n"))
    [note] = module.notes
    assert note.severity == "note"
    assert_at(note, 1, 1, "`l2` shadows the built-in")


def test_shadowing_a_builtin_via_cli_exits_0(tmp_path):
    path = write(tmp_path, "fn l2(t) = sum(t ** 2)\ninput x: f64[3]\nloss = l2(x)\n")
    r = cli("check", str(path))
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"{path}: ok")
    assert f"{path}:1:1: note: `l2` shadows the built-in" in r.stderr
    assert "error" not in r.stderr


def test_caret_rendering_exactly():
    d = the_error("param w: f64[3] = 0\ny = ww * 2\n")
    assert d.render() == (
        "prog.dl:2:5: error: undefined name `ww` (did you mean `w`?)\n"
        "    y = ww * 2\n"
        "        ^^"
    )


def test_caret_rendering_keeps_tabs_so_the_caret_lines_up():
    d = the_error("input x: f64[3]\n\ty = x + ww\n")
    assert d.render().splitlines()[1:] == ["    \ty = x + ww", "    \t        ^^"]


def test_caret_rendering_via_cli_exactly(tmp_path):
    path = write(tmp_path, "input a: f64[3]\ninput b: f64[4]\nc = a + b\n")
    r = cli("check", str(path))
    assert r.exit_code == 2
    lines = r.stderr.splitlines()
    assert lines[0].startswith(f"{path}:3:5: error: ")
    assert lines[1:3] == ["    c = a + b", "        ^^^^^"]


def test_ir_option_on_a_failing_file_prints_only_diagnostics(tmp_path):
    path = write(tmp_path, "input x: f64[3]\ny = relu(x, 2)\n")
    r = cli("check", "--ir", str(path))
    assert r.exit_code == 2 and r.stdout == ""
    assert f"{path}:2:13: error: `relu` takes 1 argument but 2 were given" in r.stderr
