"""The answers of the language server, independent of the protocol: hover text, definitions,
references, renames, document symbols, completions and semantic tokens of an `Analysis`.
Positions here are 1-based lines and columns counted in characters (as `Span`s are);
server.py converts them from and to LSP's 0-based UTF-16 positions."""
from __future__ import annotations

import re
from typing import Iterator

import attrs

from ..diagnostics import Span
from ..dsl import ast
from ..dsl.builtins import BUILTINS
from ..dsl.highlight import DTYPES, WengertLexer, static_calls
from ..dsl.lower import KEYWORDS
from ..dsl.statements import TRAIN_KEYS
from . import reference
from .analysis import Analysis
from .index import Index, Reference, Symbol

KIND_WORDS = {"input": "input", "param": "param", "state": "state", "value": "value", "arg": "argument",
              "loop": "loop variable", "dim": "symbolic dim", "fn": "fn", "layer": "layer", "data": "data", "train": "train block",
              "import": "import", "builtin": "built-in"}


@attrs.frozen
class Location:
    span: Span  # its source's path may be `<stdlib>/...` (analysis.real_path makes it a file)


@attrs.frozen
class Completion:
    label: str
    kind: str  # one of KIND_WORDS, "keyword", "dtype", "argument", "key"
    detail: str = ""
    doc: str = ""
    insert: str | None = None
    rank: int = 5  # lower is shown first


# ---------------------------------------------------------------- hover
def hover(a: Analysis, line: int, column: int) -> str | None:
    """Markdown: the name's kind and types (`h: f32[batch, 16]`), a call's signature, doc and the
    params it creates."""
    ix = a.index
    found = ix.at(line, column)
    if found is None:
        return None
    sym, node = (found.symbol, found.node) if isinstance(found, Reference) else (found, None)
    lines: list[str] = []
    if sym.kind in ("fn", "layer", "builtin"):
        item = sym.node
        lines.append(_code(("" if sym.kind == "builtin" else sym.kind + " ") + reference.signature(item)))
        text = reference.doc(sym.name)
        if text:
            lines.append(text)
        call = node if isinstance(node, ast.Call) else None
        if call is not None:
            result = ix.types_of(sym, call)
            if result:
                lines.append("returns " + ", ".join(f"`{t}`" for t in result))
            made = ix.made_by(call)
            if made:
                lines.append("creates " + ", ".join(f"`{d.name}: {ix.recorder.describe(d.var)}`" for d in made))
        elif sym.span is not None and sym.span.source is not a.source:
            lines.append(f"defined in `{_shown_path(sym.span)}`")
        return "\n\n".join(lines)
    if sym.kind == "import":
        return _code(f'import "{sym.name}"')
    if sym.kind == "dim":
        users = [f"`{s.name}: {s.types[0]}`" for s in ix.symbols if s.kind == "input" and s.types
                 and re.search(rf"[\[ ]{re.escape(sym.name)}[,\]]", s.types[0])]
        return "\n\n".join([_code(f"dim {sym.name}"), f"symbolic dim: {sym.types[0]}"]
                             + (["in " + ", ".join(users)] if users else []))
    if sym.kind == "train" and sym.name == "train" and isinstance(sym.node, ast.TrainDef) and not sym.node.name:
        return _code("train { ... }") + "\n\n" + "settings: " + ", ".join(e.name for e in sym.node.entries)
    types = ix.types_of(sym, node)
    where = f" (in `{sym.container}`)" if sym.container else ""
    body = "\n".join(f"{sym.name}: {t}" for t in types) if types else sym.name
    lines.append(_code(body))
    lines.append(f"{KIND_WORDS.get(sym.kind, sym.kind)}{where}" + (
        "; one type per call of the function" if len(types) > 1 else ""))
    return "\n\n".join(lines)


def _code(text: str) -> str:
    return f"```wengert\n{text}\n```"


def _shown_path(span: Span) -> str:
    return span.source.path


# ---------------------------------------------------------------- definitions, references, rename
def definition(a: Analysis, line: int, column: int) -> list[Location]:
    found = a.index.at(line, column)
    sym = found.symbol if isinstance(found, Reference) else found
    if sym is None or sym.span is None or sym.kind == "import":  # an import: see import_target
        return []
    return [Location(sym.span)] + [Location(s) for s in sym.also]


def import_target(a: Analysis, line: int, column: int) -> str | None:
    """The path an `import "..."` statement under the position names."""
    for s in a.index.symbols:
        if s.kind == "import" and _holds(s.span, line, column):
            from pathlib import Path
            return str((Path(a.source.path).parent / s.name).resolve())
    return None


def references(a: Analysis, line: int, column: int, include_declaration: bool = True) -> list[Location]:
    found = a.index.at(line, column)
    if found is None:
        return []
    sym = found.symbol if isinstance(found, Reference) else found
    out = [Location(r.span) for r in a.index.references(sym)]
    if include_declaration and sym.span is not None:
        out.insert(0, Location(sym.span))
    return out


NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class RenameError(ValueError):
    """A rename that cannot be done (shown to the user)."""


def rename(a: Analysis, line: int, column: int, new: str) -> list[tuple[Span, str]]:
    """The edits renaming the program-local name under the position."""
    sym = rename_target(a, line, column)
    if not NAME.match(new) or new in KEYWORDS or new in DTYPES:
        raise RenameError(f"`{new}` is not a name")
    taken = {s.name for s in a.index.visible(sym.span.line) if s is not sym and s.container == sym.container}
    if new in taken:
        raise RenameError(f"`{new}` is already bound in this scope")
    spans = [sym.span] + [r.span for r in a.index.references(sym)]
    return [(_name_part(s, sym.name), new) for s in spans]


def rename_target(a: Analysis, line: int, column: int) -> Symbol:
    found = a.index.at(line, column)
    sym = found.symbol if isinstance(found, Reference) else found
    if sym is None or sym.span is None or sym.span.source is not a.source or sym.kind == "import" \
            or "." in sym.name or isinstance(sym.node, ast.TrainDef) and not sym.node.name:
        raise RenameError("only a name defined in this program can be renamed")
    return sym


def _name_part(span: Span, name: str) -> Span:
    """The span of the name itself (an `update` target's span is the name's)."""
    return Span(span.source, span.line, span.column, span.line, span.column + len(name))


# ---------------------------------------------------------------- document symbols
@attrs.frozen
class Outline:
    name: str
    kind: str
    detail: str
    span: Span  # the whole definition
    selection: Span  # its name
    children: tuple[Outline, ...] = ()


def outline(a: Analysis) -> list[Outline]:
    ix = a.index
    tops = [s for s in ix.symbols if s.container is None and s.span is not None and s.span.source is a.source
            and s.kind != "dim"]
    out = []
    for s in tops:
        children = tuple(_outline(c, ix) for c in ix.symbols if c.container == s.name and c.span is not None
                         and s.kind in ("fn", "layer"))
        out.append(attrs.evolve(_outline(s, ix), children=children))
    return out


def _outline(s: Symbol, ix: Index) -> Outline:
    detail = reference.signature(s.node) if s.kind in ("fn", "layer") else ", ".join(s.types[:1])
    return Outline(s.name, s.kind, detail, s.stmt or s.span, s.span)


# ---------------------------------------------------------------- completion
def completions(a: Analysis, text: str, line: int, column: int) -> list[Completion]:
    """Completions at a position of `text` (the document as typed, which may not parse; names
    come from the last analysis that did)."""
    ctx = context(text, line, column)
    items: list[Completion] = []
    if ctx.train_key:
        return [Completion(k, "key", "train setting", insert=f"{k} = ", rank=0) for k in TRAIN_KEYS
                if k.startswith(ctx.prefix)]
    if ctx.call is not None:
        for arg, detail in _arguments(a.index, ctx.call):
            items.append(Completion(f"{arg}=", "argument", detail, insert=f"{arg}=", rank=0))
    seen: set[str] = set()
    for s in a.index.visible(line):
        if s.kind in ("import",) or s.name in seen:
            continue
        seen.add(s.name)
        detail = reference.signature(s.node) if s.kind in ("fn", "layer") else ", ".join(s.types[:2])
        items.append(Completion(s.name, s.kind, detail, rank=1))
    for name, node in sorted(a.index.fns.items()):
        if name not in seen:
            seen.add(name)
            items.append(Completion(name, node.kind, reference.signature(node), reference.doc(name), rank=2))
    for name, b in sorted(BUILTINS.items()):
        if name not in seen:
            seen.add(name)
            items.append(Completion(name, "builtin", reference.signature(b), reference.doc(name), rank=2))
    items += [Completion(k, "keyword", rank=3) for k in sorted(KEYWORDS)]
    items += [Completion(d, "dtype", rank=3) for d in DTYPES]
    prefix = ctx.prefix
    return [c for c in items if c.label.startswith(prefix)]


def _arguments(ix: Index, name: str) -> list[tuple[str, str]]:
    target = ix.fns.get(name) or BUILTINS.get(name)
    if target is not None:
        return [(n, reference.signature(target)) for n in reference.arguments(target)]
    table = static_calls().get(name, {})
    return [(k, f"{name}(...)") for k in table if k.isidentifier()]


@attrs.frozen
class Context:
    prefix: str  # the identifier being typed
    call: str | None  # the function whose parentheses hold the position
    train_key: bool  # at the start of an entry of a train block


def context(text: str, line: int, column: int) -> Context:
    lines = text.split("\n")
    row = lines[line - 1] if 0 < line <= len(lines) else ""
    before = "\n".join(lines[: line - 1] + [row[: column - 1]])
    prefix = re.search(r"[A-Za-z_][A-Za-z0-9_]*\Z", before)
    prefix_text = prefix.group(0) if prefix else ""
    stack: list[tuple[str, str | None]] = []  # open brackets, with the name before a `(` or a `train {`
    for start, bracket in _brackets(before):
        if bracket in "([{":
            head = before[max(0, start - 200):start]  # what stands before the bracket
            word = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*\Z", head)
            train = bracket == "{" and re.search(r"(^|\n)\s*train(\s+[A-Za-z_]\w*)?\s*\Z", head)
            stack.append((bracket, "train" if train else word.group(1) if word else None))
        elif stack:
            stack.pop()
    call = stack[-1][1] if stack and stack[-1][0] == "(" else None
    in_train = bool(stack) and stack[-1] == ("{", "train")
    start_of_entry = re.search(r"(^|[\n;{])\s*[A-Za-z_]*\Z", before) is not None
    return Context(prefix_text, call, in_train and start_of_entry)


def _brackets(text: str) -> Iterator[tuple[int, str]]:
    """The brackets outside strings and comments, with their offsets."""
    for m in re.finditer(r'#[^\n]*|"([^"\\\n]|\\.)*"?|[()\[\]{}]', text):
        if m.group(0)[0] not in "#\"":
            yield m.start(), m.group(0)


# ---------------------------------------------------------------- semantic tokens
# LSP token types, and the lexer's token classes they stand for (the most specific first).
TOKEN_TYPES = ("keyword", "type", "function", "class", "variable", "number", "string", "comment", "operator",
               "label", "property")
_TOKEN_OF = (("Token.Keyword.Type", "type"), ("Token.Keyword", "keyword"), ("Token.Name.Function", "function"),
             ("Token.Name.Builtin", "function"), ("Token.Name.Class", "class"), ("Token.Name.Label", "label"), ("Token.Name.Attribute", "property"),
             ("Token.Name", "variable"), ("Token.Literal.Number", "number"), ("Token.Literal.String", "string"),
             ("Token.Comment", "comment"), ("Token.Operator", "operator"))


def semantic_tokens(text: str) -> list[tuple[int, int, int, str]]:
    """(line, column, length, LSP token type) of each highlighted token (1-based, characters)."""
    out = []
    line, col = 1, 1
    for _, token, value in WengertLexer().get_tokens_unprocessed(text):
        kind = next((t for prefix, t in _TOKEN_OF if str(token).startswith(prefix)), None)
        if kind is not None and "\n" not in value:
            out.append((line, col, len(value), kind))
        newlines = value.count("\n")
        if newlines:
            line += newlines
            col = len(value) - value.rfind("\n")
        else:
            col += len(value)
    return out


def _holds(span: Span, line: int, column: int) -> bool:
    return (span.line, span.column) <= (line, column) <= (span.end_line, span.end_column)
