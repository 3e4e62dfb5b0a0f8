"""Values typed as text for a program's inputs and params: the CLI's `-i NAME=VALUE` and
`wengert inspect`'s `:set NAME=VALUE` (a literal, `file.npy` or `file.npz:KEY`)."""
from __future__ import annotations

import ast as pyast
import math
from typing import Any

import numpy as np

from .diagnostics import Diagnostic, DiagnosticError, file_problem

LITERAL_HELP = ("a number, a nested list such as [[1, 2], [3, 4]], true/false, nan/inf, file.npy "
                "or file.npz:KEY")
WORDS = {"true": True, "false": False, "nan": math.nan, "inf": math.inf}  # names a literal may use


def parse_inputs(items: tuple[str, ...]) -> dict[str, Any]:
    """`-i NAME=VALUE`, `-i NAME=file.npy`, `-i NAME=file.npz:KEY` -> arrays."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not all(part.isidentifier() for part in name.split(".")):
            raise usage_error(f"`-i {item}`: expected NAME=VALUE, NAME=file.npy or NAME=file.npz:KEY")
        out[name] = parse_value(name, text)
    return out


def parse_value(name: str, text: str, what: str = "input") -> np.ndarray:
    """The array typed for `name` (an input, a param or state: `what` says which, for messages)."""
    if text.endswith(".npy") or ".npz:" in text:  # a FIFO or a device would block or never end
        problem = file_problem(text.rpartition(":")[0] if ".npz:" in text else text)
        if problem is not None:
            raise usage_error(f"{what} `{name}`: {text}: {problem}")
    try:
        if text.endswith(".npy"):
            return np.load(text, allow_pickle=False)
        if ".npz:" in text:
            path, _, key = text.rpartition(":")
            with np.load(path, allow_pickle=False) as archive:
                if key not in archive.files:
                    raise usage_error(f"{what} `{name}`: {path} has no array `{key}` "
                                      f"(it has {', '.join(archive.files)})")
                return archive[key]
        return np.asarray(literal(text))
    except (OSError, ValueError) as e:
        raise usage_error(f"{what} `{name}`: cannot read `{text}`: {e}") from None


def literal(text: str) -> Any:
    """A number, bool or nested list written as text (`[[1, 2], [nan, -inf]]`, `true`); a
    ValueError that says what is accepted otherwise, never Python's parser's words."""
    try:
        tree = pyast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"not a value; expected {LITERAL_HELP}") from None
    return _literal(tree)


def _literal(node: pyast.AST) -> Any:
    if isinstance(node, pyast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, pyast.Name) and node.id.lower() in WORDS:
        return WORDS[node.id.lower()]
    if isinstance(node, pyast.UnaryOp) and isinstance(node.op, (pyast.USub, pyast.UAdd)):
        value = _literal(node.operand)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, pyast.USub) else value
    if isinstance(node, (pyast.List, pyast.Tuple)):
        values = [_literal(e) for e in node.elts]
        rows = {np.shape(v) for v in values}
        if len(rows) > 1:
            raise ValueError("the rows of a nested list must have equal lengths")
        return values
    raise ValueError(f"`{pyast.unparse(node)}` is not a value; expected {LITERAL_HELP}")


def usage_error(message: str) -> DiagnosticError:
    return DiagnosticError([Diagnostic.plain("wengert", message)])
