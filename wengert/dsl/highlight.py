"""Syntax highlighting of `.dl` programs: a Pygments lexer (registered as `wengert`, alias `dl`,
through the `pygments.lexers` entry point, so `pygmentize -l wengert`, rich, Sphinx and Jupyter's
Markdown use it). The language server's semantic tokens are these token classes (wengert/lsp/).

Statement keywords that are followed by `=` are names (`data = blobs` in a train block,
`moons(seed=1)`), as for the parser's contextual lexer. Built-ins (the Python-implemented ones
and the standard library's fns) are `Name.Builtin`, the standard library's layers `Name.Class`;
both sets come from the checker's own tables, read on first use.
"""
from __future__ import annotations

from functools import lru_cache

from pygments.lexer import RegexLexer, bygroups, words
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


@lru_cache(maxsize=None)
def library_names() -> tuple[frozenset[str], frozenset[str]]:
    """(built-in fns, standard-library layers), by name."""
    from .builtins import BUILTINS
    from .lower import _stdlib
    fns, layers = set(BUILTINS), set()
    for file in ("prelude.dl", "layers.dl"):
        for stmt in _stdlib(file)[1].stmts:
            if getattr(stmt, "kind", None) == "layer":
                layers.add(stmt.name)
            elif getattr(stmt, "kind", None) == "fn":
                fns.add(stmt.name)
    return frozenset(fns), frozenset(layers)


def _name(lexer, match):
    fns, layers = library_names()
    text = match.group(0)
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
            (r"[ \t\r\f]+", Whitespace),
            (r"\n", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r'"([^"\\\n]|\\.)*"', String.Double),
            (r"[0-9]+\.[0-9]+([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+", Number.Float),
            (r"[0-9]+", Number.Integer),
            (r"(fn|layer)(\s+)([A-Za-z_][A-Za-z0-9_]*)", bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (r"(train)(\s+)([A-Za-z_][A-Za-z0-9_]*)(?=\s*\{)", bygroups(Keyword.Declaration, Whitespace, Name.Label)),
            (words(STATEMENT_KEYWORDS, suffix=r"\b(?!\s*=(?!=))"), Keyword.Declaration),
            (words(EXPRESSION_KEYWORDS, suffix=r"\b"), Keyword),
            (words(WORD_OPERATORS, suffix=r"\b"), Operator.Word),
            (words(CONSTANTS, suffix=r"\b"), Keyword.Constant),
            (words(DTYPES, suffix=r"\b"), Keyword.Type),
            (r"[A-Za-z_][A-Za-z0-9_]*", _name),
            (r"\|>|\*\*|\.\.|==|!=|<=|>=|[-+*/@%<>=]", Operator),
            (r"[()\[\]{},:;.]", Punctuation),
            (r".", Text),
        ],
    }
