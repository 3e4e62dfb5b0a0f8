"""What the language server knows about one document: its symbols (where each name is defined,
what it is, its types) and every reference to them.

Two sources are combined. The checker, run with a `Recorder`, tells the value of every
expression it lowers (so a name's type with its symbolic dims, `f32[batch, 16]`, and the params
each layer call creates); a walk over the AST with the language's scopes (module names, a fn's
arguments and locals, loop variables) resolves each name to its definition, also in fns the
program never calls (which the checker never lowers).
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Iterator

import attrs

from ..diagnostics import Span
from ..dsl import ast
from ..dsl.builtins import BUILTINS
from ..dsl.lower import _dotted  # `h1.W` of an Attr, as the checker reads it
from ..dsl.values import describe, is_dim
from ..runtime.ir import ParamDecl, Var
from ..runtime.types import DTYPES

MAX_RECORDED = 8  # values kept per expression (a fn inlined at many calls)


class Recorder:
    """Receives the checker's lowering (`wengert.dsl.lower.lower_source(source, recorder)`)."""

    def __init__(self) -> None:
        self.tree: ast.Module | None = None
        self.lowerer: Any = None
        self.values: dict[int, list[Any]] = defaultdict(list)  # id(AST node) -> values lowered
        self.made: dict[int, list[ParamDecl]] = defaultdict(list)  # id(Call node) -> params it created
        self.maker: dict[str, ast.Call] = {}  # param name -> the innermost call that created it
        self._nodes: list[Any] = []  # keeps recorded nodes alive, so their ids stay unique

    def parsed(self, module: ast.Module, lowerer: Any) -> None:
        self.tree, self.lowerer = module, lowerer

    def expr(self, node: ast.Expr, scope: Any, value: Any, made: list[ParamDecl]) -> None:
        seen = self.values[id(node)]
        if not seen:
            self._nodes.append(node)
        if len(seen) < MAX_RECORDED:
            seen.append(value)
        if made and isinstance(node, ast.Call):
            known = {d.name for d in self.made[id(node)]}
            self.made[id(node)] += [d for d in made if d.name not in known]
            for d in made:
                self.maker.setdefault(d.name, node)

    def describe(self, value: Any) -> str | None:
        """`f32[batch, 16]`, `int 3`, ...; None for a value already in error."""
        if isinstance(value, Var):
            if value.type.is_error:
                return None
            return self.lowerer.fmt(value.type) if self.lowerer is not None else str(value.type)
        if is_dim(value) and not isinstance(value, int):
            return f"dim {self.lowerer.dims.resolve(value) if self.lowerer is not None else value}"
        if isinstance(value, (bool, int, float, str)) and not isinstance(value, list):
            return f"{type(value).__name__} {value!r}" if not isinstance(value, bool) else f"bool {str(value).lower()}"
        return describe(value)

    def types(self, node: Any) -> list[str]:
        out: list[str] = []
        for v in self.values.get(id(node), ()):
            text = self.describe(v)
            if text is not None and text not in out:
                out.append(text)
        return out


@attrs.define(eq=False)
class Symbol:
    name: str
    kind: str  # input param state value arg loop dim fn layer data train import builtin
    span: Span | None  # the name where it is defined (None for a built-in)
    stmt: Span | None = None  # the whole definition
    container: str | None = None  # the fn or layer it is local to
    types: list[str] = attrs.Factory(list)
    node: Any = None  # the AST definition (FnDef, Import, ...)
    also: list[Span] = attrs.Factory(list)  # further definition sites (a layer param's declaration)


@attrs.define(eq=False)
class Reference:
    span: Span
    symbol: Symbol
    node: Any = None  # the AST node (a Name, an Attr, a Call's func)


class Index:
    """Symbols and references of one document."""

    def __init__(self, source, recorder: Recorder):
        self.source = source
        self.recorder = recorder
        self.symbols: list[Symbol] = []
        self.refs: list[Reference] = []
        self._external: dict[str, Symbol] = {}
        lw = recorder.lowerer
        self.fns: dict[str, Any] = {n: f.node for n, f in lw.scope.fns.items()} if lw is not None else {}
        if recorder.tree is not None:
            _Walker(self).module(recorder.tree)

    # ---- queries
    def at(self, line: int, column: int) -> Reference | Symbol | None:
        """The reference or definition under a 1-based position."""
        for r in self.refs:
            if _inside(r.span, line, column):
                return r
        for s in self.symbols:
            if s.span is not None and s.span.source is self.source and _inside(s.span, line, column):
                return s
        return None

    def references(self, symbol: Symbol) -> list[Reference]:
        return [r for r in self.refs if r.symbol is symbol]

    def visible(self, line: int) -> list[Symbol]:
        """The document's symbols in scope on a line: module-level ones, and the locals of the fn
        or layer around the line."""
        out = []
        for s in self.symbols:
            if s.container is None:
                out.append(s)
            elif s.stmt is not None and (owner := self._owner(s)) is not None \
                    and owner.span.line <= line <= owner.span.end_line:
                out.append(s)
        return out

    def _owner(self, s: Symbol):
        node = self.fns.get(s.container)
        return node if node is not None and node.span.source is self.source else None

    def external(self, name: str) -> Symbol | None:
        """A fn or layer from the standard library or an import, or a Python built-in."""
        if name in self._external:
            return self._external[name]
        node = self.fns.get(name)
        if node is not None:
            sym = Symbol(name, node.kind, _name_span(node.span, name, keyword=True), node.span, node=node)
        elif name in BUILTINS:
            sym = Symbol(name, "builtin", None, node=BUILTINS[name])
        else:
            return None
        self._external[name] = sym
        return sym

    def types_of(self, symbol: Symbol, node: Any = None) -> list[str]:
        if node is not None:
            found = self.recorder.types(node)
            if found:
                return found
        return symbol.types

    def made_by(self, call: ast.Call) -> list[ParamDecl]:
        return self.recorder.made.get(id(call), [])


class _Walker:
    """Resolves the names of a module with the language's scopes."""

    def __init__(self, index: Index):
        self.ix = index
        self.rec = index.recorder
        self.module_scope: dict[str, Symbol] = {}
        self.dims: dict[str, Symbol] = {}  # symbolic dims by name (one namespace for the program)

    def define(self, scope: dict[str, Symbol], sym: Symbol) -> Symbol:
        self.ix.symbols.append(sym)
        scope.setdefault(sym.name, sym)
        return sym

    def module(self, tree: ast.Module) -> None:
        lw = self.rec.lowerer
        scope = self.module_scope
        for s in tree.stmts:  # first every top-level name (fns may be used before their definition)
            if isinstance(s, ast.Input):
                sym = self.define(scope, Symbol(s.name, "input", _name_span(s.span, s.name, True), s.span, node=s))
                decl = lw.inputs.get(s.name) if lw is not None else None
                if decl is not None:
                    sym.types = _clean([self.rec.describe(decl.var)])
            elif isinstance(s, ast.ParamDecl):
                sym = self.define(scope, Symbol(s.name, s.kind, _name_span(s.span, s.name, True), s.span, node=s))
                decl = lw.params.get(s.name) if lw is not None else None
                if decl is not None:
                    sym.types = _clean([self.rec.describe(decl.var)])
            elif isinstance(s, ast.Assign):
                sym = self.define(scope, Symbol(s.name, "value", _name_span(s.span, s.name, False), s.span, node=s))
                var = lw.values.get(s.name) if lw is not None else None
                sym.types = _clean([self.rec.describe(var)]) if var is not None else self.rec.types(s.value)
            elif isinstance(s, ast.FnDef):
                self.define(scope, Symbol(s.name, s.kind, _name_span(s.span, s.name, True), s.span, node=s))
            elif isinstance(s, ast.DataDef):
                for name in s.names:
                    self.define(scope, Symbol(name, "data", _name_span(s.span, name, True), s.span, node=s))
            elif isinstance(s, ast.TrainDef) and s.name:
                self.define(scope, Symbol(s.name, "train", _name_span(s.span, s.name, True), s.span, node=s))
            elif isinstance(s, ast.TrainDef):  # an unnamed train block: in the outline, under its keyword
                self.ix.symbols.append(Symbol("train", "train", _keyword_span(s.span), s.span, node=s))
            elif isinstance(s, ast.Import):
                self.ix.symbols.append(Symbol(s.path, "import", s.span, s.span, node=s))
        for s in tree.stmts:
            self.stmt(s, [scope], None)
        for sym in self.ix.symbols:  # a name's types are also those of its uses
            for r in self.ix.references(sym):
                sym.types += [t for t in self.rec.types(r.node) if t not in sym.types]

    def lookup(self, scopes: list[dict[str, Symbol]], name: str) -> Symbol | None:
        for sc in reversed(scopes):
            if name in sc:
                return sc[name]
        return self.ix.external(name)

    def ref(self, span: Span, sym: Symbol | None, node: Any) -> None:
        if sym is not None and span.source is self.ix.source:
            self.ix.refs.append(Reference(span, sym, node))

    # ---- statements
    def stmt(self, s: ast.Stmt, scopes: list[dict[str, Symbol]], owner: str | None) -> None:
        if isinstance(s, ast.Input):
            self.type_expr(s.type, scopes)
        elif isinstance(s, ast.ParamDecl):
            if owner is not None:
                sym = self.define(scopes[-1], Symbol(s.name, s.kind, _name_span(s.span, s.name, True), s.span,
                                                     container=owner, node=s))
                sym.types = self.instance_types(owner, s.name)
            self.type_expr(s.type, scopes)
            self.expr(s.init, scopes)
        elif isinstance(s, ast.Assign):
            self.expr(s.value, scopes)
            if owner is not None or len(scopes) > 1:
                carried = self.lookup(scopes[1:], s.name) if len(scopes) > 2 else None
                if carried is not None and carried.container == owner and carried.kind != "builtin":
                    self.ref(_name_span(s.span, s.name, False), carried, s.value)  # a carried loop value
                else:
                    self.define(scopes[-1], Symbol(s.name, "value", _name_span(s.span, s.name, False), s.span,
                                                   container=owner, types=self.rec.types(s.value), node=s))
        elif isinstance(s, ast.FnDef):
            inner: dict[str, Symbol] = {}
            for p in s.params:
                span = Span(p.span.source, p.span.line, p.span.column, p.span.line, p.span.column + len(p.name))
                self.define(inner, Symbol(p.name, "arg", span, p.span, container=s.name, node=p))
                if p.default is not None:
                    self.expr(p.default, [*scopes, inner])
            if isinstance(s.body, ast.Block):
                for st in s.body.stmts:
                    self.stmt(st, [*scopes, inner], s.name)
            else:
                self.expr(s.body, [*scopes, inner])
        elif isinstance(s, ast.Return):
            self.expr(s.value, scopes)
        elif isinstance(s, ast.For):
            self.expr(s.iter, scopes)
            inner = {}
            self.define(inner, Symbol(s.var, "loop", _name_span(s.span, s.var, True), s.span, container=owner,
                                      node=s))
            for st in s.body.stmts:
                self.stmt(st, [*scopes, inner], owner)
        elif isinstance(s, ast.Update):
            target = self.lookup(scopes, s.target) if "." not in s.target else None
            self.ref(_name_span(s.span, s.target.split(".")[0], True), target, None)
            self.expr(s.value, scopes)
        elif isinstance(s, ast.TrainDef):
            for entry in s.entries:
                self.expr(entry.value, scopes)
        elif isinstance(s, ast.DataDef):
            for stage in _stages(s.pipeline):  # sources and transforms are not fns: only their arguments
                for a in (*stage.args[1 if stage.piped else 0:], *(k.value for k in stage.kwargs)):
                    self.expr(a, scopes)
        elif isinstance(s, ast.Seed):
            self.expr(s.value, scopes)

    def type_expr(self, t: ast.TypeExpr, scopes) -> None:
        if isinstance(t.dtype, ast.Call):
            self.expr(t.dtype, scopes)
        elif t.dtype.id not in DTYPES:
            self.ref(t.dtype.span, self.lookup(scopes, t.dtype.id), t.dtype)
        for d in t.dims or ():
            if isinstance(d, ast.Name) and self.lookup(scopes, d.id) is None:
                self.dim(d)
            else:
                self.expr(d, scopes)

    def dim(self, d: ast.Name) -> None:
        """A symbolic dim (`batch`): defined where it first appears, referenced where else."""
        sym = self.dims.get(d.id)
        if sym is None:
            lw = self.rec.lowerer
            size = lw.dims.resolve(lw.dims.declare(d.id)) if lw is not None and d.id in lw.dims.parent else None
            sym = self.dims[d.id] = Symbol(d.id, "dim", d.span, d.span, node=d, types=[
                f"{size} (the checker bound it)" if isinstance(size, int) else "bound when the inputs are fed"])
            self.ix.symbols.append(sym)
        else:
            self.ref(d.span, sym, None)

    # ---- expressions
    def expr(self, e: Any, scopes) -> None:
        if e is None:
            return
        if isinstance(e, ast.Name):
            self.ref(e.span, self.lookup(scopes, e.id), e)
        elif isinstance(e, ast.Attr):
            self.attr(e, scopes)
        elif isinstance(e, ast.Call):
            if isinstance(e.func, ast.Name):
                self.ref(e.func.span, self.lookup(scopes, e.func.id), e)
            else:
                self.expr(e.func, scopes)
            for a in e.args:
                self.expr(a, scopes)
            for k in e.kwargs:
                self.expr(k.value, scopes)
        else:
            for child in _children(e):
                self.expr(child, scopes)

    def attr(self, e: ast.Attr, scopes) -> None:
        path = _dotted(e)
        lw = self.rec.lowerer
        if path is None or lw is None or path not in lw.params:
            self.expr(e.base, scopes) if path is None else None
            return
        self.ref(e.span, self.param_symbol(path), e)
        head = e
        while isinstance(head, ast.Attr):
            head = head.base
        owner = self.lookup(scopes, head.id)  # `h1` of `h1.W`: renaming h1 renames its params
        if owner is not None and owner.kind == "value":
            self.ref(head.span, owner, head)

    def instance_types(self, layer: str, name: str) -> list[str]:
        """The types of a layer's param `name` in each call of the layer."""
        lw, out = self.rec.lowerer, []
        for full, decl in (lw.params.items() if lw is not None else ()):
            call = self.rec.maker.get(full)
            if full.rsplit(".", 1)[-1] == name and call is not None and isinstance(call.func, ast.Name) \
                    and call.func.id == layer:
                out += [t for t in _clean([self.rec.describe(decl.var)]) if t not in out]
        return out

    def param_symbol(self, full: str) -> Symbol:
        """A param a layer call created (`h1.W`): defined at the call, declared in the layer."""
        key = "param:" + full
        if key in self.ix._external:
            return self.ix._external[key]
        decl: ParamDecl = self.rec.lowerer.params[full]
        call = self.rec.maker.get(full)
        sym = Symbol(full, decl.kind, decl.span, decl.span, types=_clean([self.rec.describe(decl.var)]))
        if call is not None and isinstance(call.func, ast.Name) and call.func.id in self.ix.fns:
            layer = self.ix.fns[call.func.id]
            for st in _walk_stmts(layer.body.stmts if isinstance(layer.body, ast.Block) else ()):
                if isinstance(st, ast.ParamDecl) and st.name == full.rsplit(".", 1)[-1]:
                    sym.also.append(_name_span(st.span, st.name, True))
        self.ix._external[key] = sym
        return sym


# ---------------------------------------------------------------- helpers
def _children(e: Any) -> Iterator[Any]:
    if isinstance(e, ast.ListLit):
        yield from e.items
    elif isinstance(e, ast.Index):
        yield e.base
        yield from e.items
    elif isinstance(e, ast.Slice):
        yield from (e.start, e.stop, e.step)
    elif isinstance(e, ast.BinOp):
        yield from (e.left, e.right)
    elif isinstance(e, ast.Unary):
        yield e.operand
    elif isinstance(e, ast.IfElse):
        yield from (e.cond, e.then, e.orelse)
    elif isinstance(e, ast.Range):
        yield from (e.start, e.stop)


def _stages(e: ast.Expr) -> list[ast.Call]:
    """The calls of a data pipeline, written with pipes (desugared into nested calls)."""
    out = []
    while isinstance(e, ast.Call):
        out.append(e)
        e = e.args[0] if e.piped and e.args else None
    return out


def _walk_stmts(stmts) -> Iterator[Any]:
    for st in stmts:
        yield st
        if isinstance(st, ast.For):
            yield from _walk_stmts(st.body.stmts)


def _clean(items: list[str | None]) -> list[str]:
    return [t for t in items if t]


def _name_span(stmt: Span, name: str, keyword: bool) -> Span:
    """The span of `name` in the statement `stmt` (after its leading keyword when `keyword`)."""
    text = stmt.source.line(stmt.line)
    pos = stmt.column - 1
    if keyword:
        m = re.compile(r"[A-Za-z_]\w*").match(text, pos)
        pos = m.end() if m else pos
    m = re.compile(rf"(?<![\w.]){re.escape(name)}(?!\w)").search(text, pos)
    if m is None:
        return stmt
    return Span(stmt.source, stmt.line, m.start() + 1, stmt.line, m.end() + 1)


def _keyword_span(stmt: Span) -> Span:
    m = re.compile(r"[A-Za-z_]\w*").match(stmt.source.line(stmt.line), stmt.column - 1)
    return Span(stmt.source, stmt.line, stmt.column, stmt.line, m.end() + 1 if m else stmt.column + 1)


def _inside(span: Span, line: int, column: int) -> bool:
    if (line, column) < (span.line, span.column):
        return False
    return (line, column) < (span.end_line, span.end_column) or (line, column) == (span.end_line, span.end_column)
