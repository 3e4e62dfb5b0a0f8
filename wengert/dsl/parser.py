"""Parse .dl text into the AST (lark LALR + a newline post-lexer + a transformer)."""
from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Iterator

import lark
from lark import Token, Transformer, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    VisitError,
)

from ..diagnostics import Diagnostic, DiagnosticError, Source, Span
from . import ast, limits

MAX_NESTING = 200  # brackets; deeper programs are refused before they reach Python's recursion limit

# Tokens after which a line break does not end the statement.
_CONTINUES = {"+", "-", "*", "/", "@", "%", "**", "..", "=", ",", ":", "(", "[", "{",
              "<", "<=", ">", ">=", "==", "!=", "and", "or", "not", "if", "in"}
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {v: k for k, v in _OPENERS.items()}

# How the parser's terminal names read in an error message.
_TERMINAL_WORDS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string", "_NL": "end of line",
    "NUMBERS": "a list of numbers", "LPAR": "`(`", "RPAR": "`)`", "LSQB": "`[`", "RSQB": "`]`", "LBRACE": "`{`", "RBRACE": "`}`",
    "COMMA": "`,`", "COLON": "`:`", "EQUAL": "`=`", "DOT": "`.`", "PIPE": "`|>`", "THEN": "`then`",
    "ELSE": "`else`", "DOTDOT": "`..`", "POW": "`**`", "PLUS": "`+`", "MINUS": "`-`", "STAR": "`*`",
    "SLASH": "`/`", "AT": "`@`", "PERCENT": "`%`", "COMP_OP": "a comparison", "$END": "end of file",
}


class Newlines:
    """Post-lexer: drops line breaks that do not end a statement, tracks open brackets."""

    always_accept = ("_NL",)

    def __init__(self) -> None:
        self.open: list[Token] = []
        self.too_deep: Token | None = None

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        self.open, self.too_deep = [], None
        prev: Token | None = None
        for tok in stream:
            if tok.type == "_NL":
                inside_parens = any(t.value in "([" for t in self.open)
                if prev is None or prev.type == "_NL" or inside_parens or (
                    prev.type != "NAME" and prev.value in _CONTINUES
                ):
                    continue
            elif tok.value in _OPENERS and tok.type not in ("STRING",):
                self.open.append(tok)
                if len(self.open) > MAX_NESTING and self.too_deep is None:
                    self.too_deep = tok
            elif tok.value in _CLOSERS and tok.type not in ("STRING",):
                if self.open and self.open[-1].value == _CLOSERS[tok.value]:
                    self.open.pop()
            yield tok
            prev = tok


@lru_cache(maxsize=1)
def _lark() -> tuple[lark.Lark, Newlines]:
    grammar = resources.files("wengert").joinpath("grammar.lark").read_text(encoding="utf-8")
    newlines = Newlines()
    parser = lark.Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True,
                       postlex=newlines, maybe_placeholders=True)
    return parser, newlines


@lru_cache(maxsize=1)
def _token_pattern() -> re.Pattern:
    """Roughly the lexer's tokens, for counting them before parsing: a long list of numbers is one (as the
    lexer's NUMBERS), a comment none."""
    numbers = _lark()[0].get_terminal("NUMBERS").pattern.to_regexp()
    return re.compile(rf"{numbers}|#[^\n]*|\"(?:[^\"\\\n]|\\.)*\"|[A-Za-z_0-9.]+|\S")


def _check_size(source: Source) -> None:
    """Refuse a program too large to check in reasonable time (limits.MAX_TOKENS), before parsing it."""
    if len(source.text) // 2 < limits.MAX_TOKENS:  # every token takes two characters or more, separators included
        return
    count = sum(1 for m in _token_pattern().finditer(source.text) if not m.group().startswith("#"))
    if count > limits.MAX_TOKENS:
        raise DiagnosticError([Diagnostic.plain(source.path, (
            f"the program is {count:,} tokens long, more than the {limits.MAX_TOKENS:,} the checker takes (a "
            f"program that long takes minutes to check); split it into files, or write long arrays of numbers "
            "as one list literal or a data file"))])


def parse(source: Source) -> ast.Module:
    """Parse a whole file; a syntax error raises DiagnosticError."""
    _check_size(source)
    parser, newlines = _lark()
    try:
        tree = parser.parse(source.text)
    except UnexpectedInput as e:
        raise DiagnosticError([_syntax_error(source, e, newlines)]) from None
    if newlines.too_deep is not None:
        raise DiagnosticError([Diagnostic(_tok_span(source, newlines.too_deep),
                                          f"brackets nested too deeply (more than {MAX_NESTING} levels)")])
    try:
        return _ToAst(source).transform(tree)
    except (RecursionError, VisitError) as e:
        if isinstance(e, VisitError) and not isinstance(e.orig_exc, RecursionError):
            raise e.orig_exc from None
        span = Span(source, 1, 1, 1, 2)
        raise DiagnosticError([Diagnostic(span, "program nested too deeply to parse")]) from None


def _tok_span(source: Source, tok: Token) -> Span:
    line, col = tok.line or 1, tok.column or 1
    end_line = tok.end_line or line
    end_col = tok.end_column or col + max(1, len(str(tok)))
    return Span(source, line, col, end_line, end_col)


def _keyword_position(tok: Token) -> Token:
    """`|>`, `then` and `else` terminals absorb the line breaks and comments before them;
    for a message, the token that matters is the keyword at their end."""
    value = str(tok)
    stripped = value.lstrip()
    if tok.type not in ("PIPE", "THEN", "ELSE") or stripped == value and "\n" not in value:
        return tok
    keyword = value.rstrip().rsplit("\n", 1)[-1].lstrip()
    keyword = keyword.split()[-1] if keyword.split() else keyword
    before = value[: value.rindex(keyword)]
    line = (tok.line or 1) + before.count("\n")
    column = len(before) - before.rfind("\n") if "\n" in before else (tok.column or 1) + len(before)
    return Token(tok.type, keyword, tok.start_pos, line, column, line, column + len(keyword))


def _describe(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "_NL":
        return "end of line" if tok.value != ";" else "`;`"
    return f"`{tok.value.strip()}`"


def _expected(names: set[str]) -> str:
    words = sorted({_TERMINAL_WORDS.get(n, f"`{n.lower()}`") for n in names
                    if not n.startswith("__") and n != "NUMBERS"})  # a list of numbers is a `[`
    if not words:
        return ""
    if len(words) > 6:
        words = words[:6] + ["..."]
    return "; expected " + ", ".join(words)


def _syntax_error(source: Source, e: UnexpectedInput, newlines: Newlines) -> Diagnostic:
    if isinstance(e, UnexpectedCharacters):
        line, col = e.line, e.column
        ch = source.text[e.pos_in_stream] if e.pos_in_stream < len(source.text) else "?"
        msg = f"unexpected character `{ch}`"
        if ch == '"':
            msg = "unterminated string"
        elif ch == "|":
            msg = "unexpected character `|` (the pipe operator is `|>`)"
        return Diagnostic(Span(source, line, col, line, col + 1), msg)
    tok: Token = getattr(e, "token", None)
    at_end = isinstance(e, UnexpectedEOF) or tok is None or tok.type == "$END"
    if at_end:
        if newlines.open:
            opener = newlines.open[-1]
            return Diagnostic(_tok_span(source, opener),
                              f"unclosed `{opener.value}`: no matching `{_OPENERS[opener.value]}` before end of file")
        n = len(source.lines)
        while n > 1 and not source.line(n).strip():
            n -= 1  # point at the end of the last line that has something on it
        last = source.line(n)
        return Diagnostic(Span(source, n, len(last) + 1, n, len(last) + 2), "unexpected end of file")
    tok = _keyword_position(tok)
    span = _tok_span(source, tok)
    if tok.type == "_NL" and tok.value != ";":
        # Point just past the last thing on the line rather than at the line break.
        span = Span(source, tok.line, tok.column, tok.line, tok.column + 1)
    value = tok.value.strip()
    if value in _CLOSERS:
        matching = [t for t in newlines.open if t.value == _CLOSERS[value]]
        if not matching and not newlines.open:
            return Diagnostic(span, f"unmatched `{value}`")
        if newlines.open and newlines.open[-1].value != _CLOSERS[value]:
            opener = newlines.open[-1]
            return Diagnostic(span, f"`{value}` does not match `{opener.value}`").with_note(
                _tok_span(source, opener), f"`{opener.value}` opened here")
    expected = _expected(set(getattr(e, "expected", ()) or ()))
    d = Diagnostic(span, f"unexpected {_describe(tok)}{expected}")
    if newlines.open and newlines.open[-1].line < tok.line:
        opener = newlines.open[-1]
        d = d.with_note(_tok_span(source, opener), f"`{opener.value}` opened here is not closed")
    return d


_BINOPS = {"+", "-", "*", "/", "@", "%"}


@v_args(meta=True)
class _ToAst(Transformer):
    """lark tree -> ast nodes with spans; pipes are desugared into calls here."""

    def __init__(self, source: Source):
        super().__init__()
        self.source = source

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.source, 1, 1, 1, 1)
        return Span(self.source, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tspan(self, tok: Token) -> Span:
        return _tok_span(self.source, tok)

    # ---- statements ----
    def start(self, meta, children):
        return ast.Module(tuple(c for c in children if c is not None), span=self._span(meta))

    def seed_stmt(self, meta, c):
        return ast.Seed(c[0], span=self._span(meta))

    def input_stmt(self, meta, c):
        return ast.Input(str(c[0]), c[1], span=self._span(meta))

    def param_stmt(self, meta, c):
        return ast.ParamDecl("param", str(c[0]), c[1], c[2], span=self._span(meta))

    def state_stmt(self, meta, c):
        return ast.ParamDecl("state", str(c[0]), c[1], c[2], span=self._span(meta))

    def assign_stmt(self, meta, c):
        return ast.Assign(str(c[0]), c[1], span=self._span(meta))

    def assign_many(self, meta, c):
        return ast.AssignMany(tuple(str(n) for n in c[:-1]), c[-1], span=self._span(meta))

    def fn_expr(self, meta, c):
        return ast.FnDef("fn", str(c[0]), c[1] or (), c[2], span=self._span(meta))

    def fn_block(self, meta, c):
        return ast.FnDef("fn", str(c[0]), c[1] or (), c[2], span=self._span(meta))

    def layer_stmt(self, meta, c):
        return ast.FnDef("layer", str(c[0]), c[1] or (), c[2], span=self._span(meta))

    def update_stmt(self, meta, c):
        return ast.Update(c[0], c[1], span=self._span(meta))

    def data_single(self, meta, c):
        return ast.DataDef((str(c[0]),), c[1], span=self._span(meta))

    def data_tuple(self, meta, c):
        return ast.DataDef(tuple(str(t) for t in c[:-1]), c[-1], span=self._span(meta))

    def train_stmt(self, meta, c):
        name = str(c[0]) if c[0] is not None else None
        return ast.TrainDef(name, tuple(x for x in c[1:] if x is not None), span=self._span(meta))

    def entry(self, meta, c):
        return ast.Keyword(str(c[0]), c[1], span=self._span(meta))

    def entry_call(self, meta, c):
        """`early_stopping(patience=3)` is `early_stopping = early_stopping(patience=3)`."""
        span = self._span(meta)
        args, kwargs = c[1] if c[1] is not None else ((), ())
        name = str(c[0])
        return ast.Keyword(name, ast.Call(ast.Name(name, span=span), args, kwargs, span=span), span=span)

    def import_stmt(self, meta, c):
        return ast.Import(self._string(meta, c[0]), span=self._span(meta))

    def return_stmt(self, meta, c):
        return ast.Return(c[0], span=self._span(meta))

    def for_stmt(self, meta, c):
        return ast.For(str(c[0]), c[1], c[2], span=self._span(meta))

    def block(self, meta, c):
        return ast.Block(tuple(x for x in c if x is not None), span=self._span(meta))

    def fparams(self, meta, c):
        return tuple(x for x in c if x is not None)

    def fparam(self, meta, c):
        return ast.FnParam(str(c[0]), c[1], span=self._span(meta))

    def type(self, meta, c):
        head, dims = c[0], c[1:]
        if len(dims) == 1 and dims[0] is None:
            dims = None  # bare dtype
        else:
            dims = tuple(d for d in dims if d is not None)
        return ast.TypeExpr(head, dims, span=self._span(meta))

    def type_head(self, meta, c):
        name = ast.Name(str(c[0]), span=self._tspan(c[0]))
        if len(c) == 1:
            return name
        args, kwargs = c[1] if c[1] is not None else ((), ())
        return ast.Call(name, args, kwargs, span=self._span(meta))

    def dotted(self, meta, c):
        return ".".join(str(t) for t in c)

    # ---- expressions ----
    def pipe(self, meta, c):
        value, _, stage = c
        span = self._span(meta)
        if isinstance(stage, ast.Call) and not stage.piped:
            return ast.Call(stage.func, (value,) + stage.args, stage.kwargs, piped=True, span=span)
        if isinstance(stage, (ast.Name, ast.Attr)):
            return ast.Call(stage, (value,), (), piped=True, span=span)
        raise DiagnosticError([Diagnostic(stage.span, "a pipe stage must be a function name or a call, "
                                                      "as in `x |> relu` or `x |> Dense(10)`")])

    def ifelse(self, meta, c):
        return ast.IfElse(c[0], c[2], c[4], span=self._span(meta))

    def or_(self, meta, c):
        return ast.BinOp("or", c[0], c[1], span=self._span(meta))

    def and_(self, meta, c):
        return ast.BinOp("and", c[0], c[1], span=self._span(meta))

    def not_(self, meta, c):
        return ast.Unary("not", c[0], span=self._span(meta))

    def compare(self, meta, c):
        return ast.BinOp(str(c[1]), c[0], c[2], span=self._span(meta))

    def range(self, meta, c):
        return ast.Range(c[0], c[2], span=self._span(meta))

    def binop(self, meta, c):
        return ast.BinOp(str(c[1]), c[0], c[2], span=self._span(meta))

    def neg(self, meta, c):
        return ast.Unary("-", c[1], span=self._span(meta))

    def pow(self, meta, c):
        return ast.BinOp("**", c[0], c[2], span=self._span(meta))

    def call(self, meta, c):
        args, kwargs = c[1] if c[1] is not None else ((), ())
        return ast.Call(c[0], args, kwargs, span=self._span(meta))

    def args(self, meta, c):
        positional, keywords = [], []
        for a in c:
            if a is None:
                continue
            if isinstance(a, ast.Keyword):
                keywords.append(a)
            elif keywords:
                raise DiagnosticError([Diagnostic(a.span, "positional argument after a keyword argument")])
            else:
                positional.append(a)
        return tuple(positional), tuple(keywords)

    def kwarg(self, meta, c):
        return ast.Keyword(str(c[0]), c[1], span=self._span(meta))

    def index(self, meta, c):
        return ast.Index(c[0], c[1], span=self._span(meta))

    def subscripts(self, meta, c):
        return tuple(x for x in c if x is not None)

    def slice(self, meta, c):
        start, stop, step = (list(c) + [None, None, None])[:3]
        return ast.Slice(start, stop, step, span=self._span(meta))

    def attr(self, meta, c):
        return ast.Attr(c[0], str(c[1]), span=self._span(meta))

    def name(self, meta, c):
        return ast.Name(str(c[0]), span=self._span(meta))

    def int_lit(self, meta, c):
        try:
            return ast.Literal(int(c[0]), span=self._span(meta))
        except ValueError:
            raise DiagnosticError([Diagnostic(self._span(meta), "integer literal too long")]) from None

    def float_lit(self, meta, c):
        return ast.Literal(float(c[0]), span=self._span(meta))

    def string_lit(self, meta, c):
        return ast.Literal(self._string(meta, c[0]), span=self._span(meta))

    def _string(self, meta, tok) -> str:
        try:
            return _unquote(tok)
        except (ValueError, SyntaxError) as e:
            message = str(e).split(":", 1)[-1].strip() if ":" in str(e) else str(e)
            raise DiagnosticError([Diagnostic(self._span(meta), f"invalid string literal: {message}")]) from None

    def true_lit(self, meta, c):
        return ast.Literal(True, span=self._span(meta))

    def false_lit(self, meta, c):
        return ast.Literal(False, span=self._span(meta))

    def all_lit(self, meta, c):
        return ast.All(span=self._span(meta))

    def list_lit(self, meta, c):
        return ast.ListLit(tuple(x for x in c if x is not None), span=self._span(meta))

    def numbers_lit(self, meta, c):
        values = []
        for text in c[0].value[1:-1].split(","):
            text = text.strip()
            if text:
                try:
                    values.append(float(text) if "." in text or "e" in text or "E" in text else int(text))
                except ValueError:
                    raise DiagnosticError([Diagnostic(self._span(meta), "integer literal too long")]) from None
        return ast.NumberList(tuple(values), span=self._span(meta))

    def paren(self, meta, c):
        return c[0]


def _unquote(tok: Token) -> str:
    """A string literal's value; escapes are JSON's (\\" \\\\ \\n \\t \\uXXXX ...), others are errors."""
    import json
    text = str(tok)
    return text[1:-1] if "\\" not in text else json.loads(text, strict=False)
