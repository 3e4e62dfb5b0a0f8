"""Shared helpers for the front-end tests.

`lower(text)` checks a program given as a string and returns the IR module;
`errors(text)` checks a program that must fail and returns its error diagnostics;
`parse_text(text)` returns the AST; `typ(module, name)` renders a named value's
resolved type ("f32[batch, 14, 14, 8]"); `sx(expr)` renders an AST expression as an
s-expression so that precedence tests can compare shapes as strings.
"""
from __future__ import annotations

import textwrap

import pytest

from wengert.dsl import ast
from wengert.diagnostics import DiagnosticError
from wengert.dsl.lower import lower_source
from wengert.dsl.parser import parse
from wengert.diagnostics import Source


def _src(text: str, path: str = "t.dl") -> Source:
    return Source(path, textwrap.dedent(text).lstrip("\n"))


def lower(text: str, path: str = "t.dl"):
    """Parse and check `text`; the module (fails the test if it does not check)."""
    return lower_source(_src(text, path))


def errors(text: str, path: str = "t.dl") -> list:
    """The error diagnostics of a program that must not check."""
    with pytest.raises(DiagnosticError) as info:
        lower_source(_src(text, path))
    errs = [d for d in info.value.diagnostics if d.severity == "error"]
    assert errs, "a DiagnosticError was raised without any error diagnostic"
    return errs


def parse_text(text: str) -> ast.Module:
    return parse(_src(text))


def parse_errors(text: str) -> list:
    with pytest.raises(DiagnosticError) as info:
        parse(_src(text))
    return [d for d in info.value.diagnostics if d.severity == "error"]


def typ(module, name: str) -> str:
    """The resolved type of a named value, as text."""
    return str(module.type_of(module.values[name]))


def ptyp(module, name: str) -> str:
    """The resolved type of a param/state, as text."""
    return str(module.type_of(module.params[name].var))


def where(d) -> tuple[int, int]:
    """(line, column) of a diagnostic."""
    return d.span.line, d.span.column


def sx(e) -> str:
    """An AST expression as an s-expression: `a + b * c` -> `(+ a (* b c))`."""
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.Literal):
        return repr(e.value)
    if isinstance(e, ast.All):
        return "all"
    if isinstance(e, ast.BinOp):
        return f"({e.op} {sx(e.left)} {sx(e.right)})"
    if isinstance(e, ast.Unary):
        return f"({e.op} {sx(e.operand)})"
    if isinstance(e, ast.IfElse):
        return f"(if {sx(e.cond)} {sx(e.then)} {sx(e.orelse)})"
    if isinstance(e, ast.Call):
        parts = [sx(e.func)] + [sx(a) for a in e.args] + [f"{k.name}={sx(k.value)}" for k in e.kwargs]
        return f"({'pipe' if e.piped else 'call'} {' '.join(parts)})"
    if isinstance(e, ast.Index):
        return f"(index {sx(e.base)} {' '.join(sx(i) for i in e.items)})"
    if isinstance(e, ast.Slice):
        return "(slice " + " ".join("_" if p is None else sx(p) for p in (e.start, e.stop, e.step)) + ")"
    if isinstance(e, ast.Attr):
        return f"(. {sx(e.base)} {e.name})"
    if isinstance(e, ast.Range):
        return f"(.. {sx(e.start)} {sx(e.stop)})"
    if isinstance(e, ast.ListLit):
        return "[" + " ".join(sx(x) for x in e.items) + "]"
    raise TypeError(f"unexpected node {e!r}")


def expr(text: str):
    """The AST of one expression (parsed as `v = <text>`)."""
    m = parse_text("v = " + text)
    assert len(m.stmts) == 1 and isinstance(m.stmts[0], ast.Assign)
    return m.stmts[0].value


@pytest.fixture
def write(tmp_path):
    """write("sub/a.dl", text) -> the path of a .dl file created under tmp_path."""
    def _write(rel: str, text: str):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path
    return _write
