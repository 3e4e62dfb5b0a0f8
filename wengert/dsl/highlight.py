"""Syntax highlighting of `.dl` programs: a Pygments lexer (registered as `wengert`, alias `dl`,
through the `pygments.lexers` entry point, so `pygmentize -l wengert`, rich, Sphinx and Jupyter's
Markdown use it). The language server's semantic tokens are these token classes (wengert/lsp/).

Statement keywords are keywords where a statement starts (a line's start, after `;` or `{`) and
are not followed by `=`; elsewhere they are names (`data = train` in a train block, `moons(seed=1)`,
`data (train, valid) = ...`), as for the parser's contextual lexer. Built-ins (the Python-implemented ones
and the standard library's fns) are `Name.Builtin`, the standard library's layers `Name.Class`;
both sets come from the checker's own tables, read on first use. Keyword-argument names and
train settings (a name before `=`) are `Name.Attribute`.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from pygments.lexer import RegexLexer, bygroups, include, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)

STATEMENT_KEYWORDS = ("seed", "input", "param", "state", "fn", "layer", "update", "data", "train", "import",
                      "return", "for")
EXPRESSION_KEYWORDS = ("if", "then", "else", "in")
WORD_OPERATORS = ("and", "or", "not")
CONSTANTS = ("true", "false", "all")
DTYPES = ("f32", "f64", "i32", "i64", "bool")
_START = r"(^[ \t]*|(?<=[;{])[ \t]*)"  # where a statement starts (the lexer matches line by line: re.M)


@lru_cache(maxsize=None)
def library_names() -> tuple[frozenset[str], frozenset[str]]:
    """(built-in fns, standard-library layers), by name. The built-ins include the initializers and
    what `data` and `train` call (sources, transforms, optimizers, schedules, early stopping)."""
    from .builtins import BUILTINS
    from .lower import INITIALIZERS, _stdlib
    fns, layers = set(BUILTINS) | set(INITIALIZERS) | set(static_calls()), set()
    for file in ("prelude.dl", "layers.dl"):
        for stmt in _stdlib(file)[1].stmts:
            if getattr(stmt, "kind", None) == "layer":
                layers.add(stmt.name)
            elif getattr(stmt, "kind", None) == "fn":
                fns.add(stmt.name)
    return frozenset(fns), frozenset(layers)


@lru_cache(maxsize=None)
def static_calls() -> dict[str, dict[str, Any]]:
    """The calls of `data` and `train` statements that are no fns (data sources and transforms,
    optimizers, schedules, early stopping), with the keywords the checker accepts."""
    from ..train import optim
    from .statements import DATA_SOURCES, DATA_TRANSFORMS, EARLY_STOPPING, SCHEDULES
    return {**DATA_SOURCES, **DATA_TRANSFORMS, **SCHEDULES, **EARLY_STOPPING, **optim.OPTIMIZERS}


_NAMING = re.compile(r"[ \t]*=(?!=)")


def _name(lexer, match):
    fns, layers = library_names()
    text = match.group(0)
    before = match.string[:match.start()].rstrip(" \t")
    if _NAMING.match(match.string, match.end()) and before and before[-1] not in "\n;{":  # a keyword argument
        kind = Name.Attribute
    else:
        kind = Name.Class if text in layers else Name.Builtin if text in fns else Name
    yield match.start(), kind, text


class WengertLexer(RegexLexer):
    """The `.dl` language of wengert: models, losses, data pipelines and training runs."""

    name = "wengert"
    aliases = ["wengert", "dl"]
    filenames = ["*.dl"]
    mimetypes = ["text/x-wengert"]
    url = "https://github.com/"  # no public home yet; Pygments wants the attribute

    tokens = {
        "root": [
            (_START + r"(fn|layer)(\s+)([A-Za-z_][A-Za-z0-9_]*)",
             bygroups(Whitespace, Keyword.Declaration, Whitespace, Name.Function)),
            (_START + r"(train)(\s+)?([A-Za-z_][A-Za-z0-9_]*)?(\s*)(\{)",
             bygroups(Whitespace, Keyword.Declaration, Whitespace, Name.Label, Whitespace, Punctuation), "train"),
            (_START + words(STATEMENT_KEYWORDS, prefix="(", suffix=r")\b(?!\s*=(?!=))").get(),
             bygroups(Whitespace, Keyword.Declaration)),
            (r"[ \t\r\f]+", Whitespace),
            (r"\n", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r'"([^"\\\n]|\\.)*"', String.Double),
            (r"[0-9]+\.[0-9]+([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+", Number.Float),
            (r"[0-9]+", Number.Integer),
            (words(EXPRESSION_KEYWORDS, suffix=r"\b"), Keyword),
            (words(WORD_OPERATORS, suffix=r"\b"), Operator.Word),
            (words(CONSTANTS, suffix=r"\b"), Keyword.Constant),
            (words(DTYPES, suffix=r"\b"), Keyword.Type),
            (r"[A-Za-z_][A-Za-z0-9_]*", _name),
            (r"\|>|\*\*|\.\.|==|!=|<=|>=|[-+*/@%<>=]", Operator),
            (r"[()\[\]{},:;.]", Punctuation),
            (r".", Text),
        ],
        "train": [  # a train block: its settings' names, then the values as anywhere else
            (_START + r"([A-Za-z_][A-Za-z0-9_]*)(?=[ \t]*=(?!=))", bygroups(Whitespace, Name.Attribute)),
            (r"\}", Punctuation, "#pop"),
            include("root"),
        ],
    }
