"""Lowering: AST -> checked IR module.

Resolves names and scopes, inlines `fn`s, creates layer parameters with their §7 names,
desugars pipes, follows imports, turns `for` blocks into loop equations with carried
values, and runs shape/dtype inference on every equation as it is created (Builder).
"""
from __future__ import annotations

import math
import os
import sys
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from ..diagnostics import (
    DiagnosticError,
    Reporter,
    Source,
    Span,
    did_you_mean,
    read_source,
)
from ..runtime.ir import (
    Block,
    DataSpec,
    Initializer,
    InputDecl,
    Module,
    ParamDecl,
    TrainSpec,
    Var,
)
from ..runtime.types import (
    DTYPES,
    ERROR_TYPE,
    ITEMSIZE,
    DimConflict,
    DimEnv,
    TensorType,
    promote,
)
from . import ast, limits
from .builder import STDLIB_PREFIX, Builder
from .parser import parse
from .values import AllVal, CallVal, DType, FnRef, RangeVal, describe, is_dim

INITIALIZERS = {  # name -> keyword names (positional order)
    "normal": ("mean", "std"), "uniform": ("low", "high"), "glorot": (), "he": (), "orthogonal": ("gain",),
    "zeros": (), "ones": (), "fan_in": (), "constant": ("value",),
}
INITIALIZER_RULES = {  # name -> (is the keywords' combination valid, what it must be); with torch's defaults
    "normal": (lambda kw: kw.get("std", 1.0) > 0, "`std` must be positive"),
    "uniform": (lambda kw: kw.get("low", 0.0) < kw.get("high", 1.0), "`low` must be less than `high`"),
}


def initializer_problem(name: str, kwargs: dict[str, float]) -> str | None:
    """Why an initializer's arguments cannot make a tensor (a negative std, low >= high, an infinity)."""
    for key, value in kwargs.items():
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int beyond any float
            finite = False
        if not finite:
            return f"`{key}` must be a finite number of at most 1e308"
    ok, what = INITIALIZER_RULES.get(name, (lambda kw: True, ""))
    return None if ok(kwargs) else f"{what}, got " + ", ".join(f"{k}={v}" for k, v in sorted(kwargs.items()))


KEYWORDS = {"seed", "input", "param", "state", "fn", "layer", "update", "data", "train", "import", "return",
            "for", "in", "if", "then", "else", "and", "or", "not", "true", "false", "all"}


@attrs.define
class FnInfo:
    node: ast.FnDef
    scope: "Scope"  # the module scope it was defined in (lexical scoping)


@attrs.define(eq=False)
class Binding:
    value: Any
    span: Span | None
    kind: str = "value"  # value | input | param | state | loop


class Scope:
    def __init__(self, parent: "Scope | None" = None, kind: str = "module"):
        self.parent = parent
        self.kind = kind  # module | fn | layer | loop | branch
        self.names: dict[str, Binding] = {}
        self.fns: dict[str, FnInfo] = {} if parent is None else parent.fns

    def lookup(self, name: str) -> Binding | None:
        s: Scope | None = self
        while s is not None:
            if name in s.names:
                return s.names[name]
            s = s.parent
        return None

    def visible(self) -> set[str]:
        out: set[str] = set()
        s: Scope | None = self
        while s is not None:
            out |= set(s.names)
            s = s.parent
        return out


@attrs.define
class LayerFrame:
    prefix: str  # "" at top level, "h1" inside the layer bound to h1
    counters: dict[str, int] = attrs.Factory(dict)


class Lowerer:
    def __init__(self, source: Source, reporter: Reporter | None = None, memory_limit: int | None = None,
                 recorder: Any = None, strict: bool = False):
        self.source = source
        # Told of every expression lowered: `recorder.expr(node, scope, value, params_made)`
        # (the language server's index of types and definitions, wengert/lsp/); None otherwise.
        self.recorder = recorder
        self.strict = strict  # warnings are errors (`--strict`, or `strict = true` in a train block)
        self.reporter = reporter or Reporter()
        self.dims = DimEnv()
        self.b = Builder(self.reporter, self.dims)
        self.inputs: dict[str, InputDecl] = {}
        self.params: dict[str, ParamDecl] = {}
        self.values: dict[str, Var] = {}
        self.hidden: dict[str, Var] = {}
        self.updates: dict[str, tuple[Var, Span]] = {}
        self.data: dict[str, DataSpec] = {}
        self.trains: dict[str | None, TrainSpec] = {}
        self.seed = 0
        self.seed_span: Span | None = None
        self.fn_stack: list[str] = []
        self.layer_frames = [LayerFrame("")]
        self.import_stack: list[str] = []
        self.loaded: dict[str, Scope] = {}
        self.memory_limit = memory_limit if memory_limit is not None else limits.physical_memory()
        self.b.memory_limit = self.memory_limit
        self.scope = Scope()
        stdlib_scope = Scope()  # the standard library sees only functions, never the user's names
        stdlib_scope.fns = self.scope.fns
        self._load_stdlib(stdlib_scope)

    # ------------------------------------------------------------------ module
    def lower_module(self, module: ast.Module) -> Module:
        self.import_stack.append(os.path.abspath(self.source.path))
        self._collect_fns(module, self.scope, self.source)
        self._check_inlining(module)
        for stmt in module.stmts:
            self.stmt(stmt, self.scope, top=True)
        if self.strict or any(t.config.get("strict") for t in self.trains.values()):
            self.reporter.make_warnings_errors()
        self.reporter.raise_if_failed()
        main = Block(eqns=self.b.blocks[0].eqns)
        from ..runtime.passes import eliminate_dead_code
        eliminate_dead_code(main, [*self.values.values(), *self.hidden.values(), *(v for v, _ in self.updates.values())])
        return Module(self.source.path, self.source.text, self.seed, self.inputs, self.params, self.values,
                      self.hidden, main, self.updates, self.data, self.trains, self.dims,
                      {n: f.node for n, f in self.scope.fns.items()}, list(self.reporter.diagnostics))

    def _check_inlining(self, module: ast.Module) -> None:
        """Refuse at once a program whose calls would inline more copies than the budget (limits.py)."""
        fns = {n: f.node for n, f in self.scope.fns.items()}
        found = limits.inlined_copies([s for s in module.stmts if not isinstance(s, ast.FnDef)], fns)
        if found is not None:
            name, copies, call = found
            self.reporter.error(call.span, f"this program inlines {limits.count_text(copies)} copies of `{name}` "
                                           f"(fns and layers are copied at each call; the checker takes at most "
                                           f"{limits.MAX_CALLS:,}): call it fewer times, or step it with `for` or "
                                           "`scan`")
            self.reporter.raise_if_failed()

    def _load_stdlib(self, scope: Scope) -> None:
        for name in ("prelude.dl", "layers.dl"):
            src, module = _stdlib(name)
            self._collect_fns(module, scope, src, stdlib=True)

    def _collect_fns(self, module: ast.Module, scope: Scope, source: Source, stdlib: bool = False) -> None:
        """Register fns and layers first, so that they may be used before their definition."""
        for stmt in module.stmts:
            if isinstance(stmt, ast.FnDef):
                seen: dict[str, ast.FnParam] = {}
                for p in stmt.params:
                    if p.name in seen:
                        self.reporter.error(p.span, f"`{stmt.name}` has two parameters named `{p.name}`")
                    seen.setdefault(p.name, p)
                prev = scope.fns.get(stmt.name)
                if prev is not None and not prev.node.span.source.path.startswith(STDLIB_PREFIX):
                    self.reporter.error(stmt.span, f"`{stmt.name}` is already defined (line {prev.node.span.line})")
                    continue
                if prev is not None and not stdlib and stmt.span.source is self.source:
                    self.reporter.note(stmt.span, f"`{stmt.name}` shadows the built-in of the same name")
                scope.fns[stmt.name] = FnInfo(stmt, scope)
            elif isinstance(stmt, ast.Import):
                self._import(stmt, scope, source)

    def _import(self, stmt: ast.Import, scope: Scope, source: Source) -> None:
        base = Path(source.path).parent
        path = os.path.abspath(base / stmt.path)
        if path in self.import_stack:
            chain = " -> ".join(Path(p).name for p in self.import_stack[self.import_stack.index(path):] + [path])
            self.reporter.error(stmt.span, f"import cycle: {chain}")
            return
        if path in self.loaded:
            return  # already imported (a diamond: two files import the same library)
        try:
            src = read_source(path)
            src = Source(str(Path(source.path).parent / stmt.path), src.text)
            module = parse(src)
        except DiagnosticError as e:
            for d in e.diagnostics:
                if d.span is None:
                    self.reporter.error(stmt.span, f"cannot import \"{stmt.path}\": {d.message}")
                else:
                    self.reporter.diagnostics.append(d)
            return
        self.loaded[path] = scope
        self.import_stack.append(path)
        self._collect_fns(module, scope, src)
        self.import_stack.pop()

    # ------------------------------------------------------------------ statements
    def stmt(self, s: ast.Stmt, scope: Scope, top: bool = False) -> None:
        handler = getattr(self, "stmt_" + type(s).__name__.lower())
        try:
            handler(s, scope, top)
        except RecursionError:
            self.reporter.error(s.span, "expression nested too deeply")

    def stmt_seed(self, s: ast.Seed, scope: Scope, top: bool) -> None:
        v = self.expr(s.value, scope)
        if not top:
            self.b.error(s.span, "`seed` is only allowed at the top level")
        elif not isinstance(v, int) or isinstance(v, bool) or v < 0:
            self.b.error(s.value.span, f"`seed` needs a non-negative integer, got {describe(v)}")
        elif self.seed_span is not None:
            self.b.error(s.span, f"`seed` is already set (line {self.seed_span.line})")
        else:
            self.seed, self.seed_span = v, s.span

    def stmt_input(self, s: ast.Input, scope: Scope, top: bool) -> None:
        if not top:
            self.b.error(s.span, "`input` is only allowed at the top level")
            return
        t = self.type_expr(s.type, scope, declare_syms=True)
        var = Var(t or ERROR_TYPE, s.name)
        if self.bind(scope, s.name, var, s.span, "input"):
            self.inputs[s.name] = InputDecl(s.name, var, s.span)
            self.b.input_names[var.id] = s.name

    def stmt_paramdecl(self, s: ast.ParamDecl, scope: Scope, top: bool) -> None:
        if not top and scope.kind != "layer":
            self.b.error(s.span, f"`{s.kind}` is only allowed at the top level or inside a layer")
            return
        t = self.type_expr(s.type, scope, declare_syms=False)
        full = self.qualified(s.name)
        if t is not None:
            t = self.check_param_type(s, full, t)
        init = self.initializer(s.init, scope, t)
        var = Var(t or ERROR_TYPE, full)
        if self.bind(scope, s.name, var, s.span, s.kind):
            if full in self.params:
                self.b.error(s.span, f"{s.kind} `{full}` is already declared (line {self.params[full].span.line})")
                return
            self.params[full] = ParamDecl(full, s.kind, var, init, self.b.user_span(s.span))

    def check_param_type(self, s: ast.ParamDecl, full: str, t: TensorType) -> TensorType | None:
        shape = self.dims.resolve_shape(t.shape)
        for d in shape:
            if not isinstance(d, int):
                self.b.error(s.type.span, f"the shape of {s.kind} `{full}` must be known when the program is "
                                          f"checked, but dimension `{d}` is symbolic")
                return None
            if d <= 0:
                self.b.error(s.type.span, f"{s.kind} `{full}` has a dimension of size {d}")
                return None
        size = int(np.prod(shape, dtype=object)) * ITEMSIZE[t.dtype]
        if size > self.memory_limit:
            self.b.error(s.type.span, f"{s.kind} `{full}` ({t}) needs {limits.human_bytes(size)}, more than this "
                                      f"machine's memory ({limits.human_bytes(self.memory_limit)})")
            return None
        return t

    def initializer(self, e: ast.Expr, scope: Scope, t: TensorType | None) -> Any:
        if isinstance(e, ast.Name) and e.id in ("zeros", "ones") and scope.lookup(e.id) is None:
            return Initializer(e.id)
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in INITIALIZERS \
                and e.func.id not in scope.fns:
            names = INITIALIZERS[e.func.id]
            kwargs: dict[str, float] = {}
            if len(e.args) > len(names):
                self.b.error(e.span, f"`{e.func.id}` takes at most {len(names)} positional arguments")
            for n, a in zip(names, e.args):
                kwargs[n] = self.static_number(a, scope)
            for kw in e.kwargs:
                if kw.name not in names:
                    self.b.error(kw.span, f"unknown keyword `{kw.name}` for initializer `{e.func.id}`"
                                          + did_you_mean(kw.name, names))
                    continue
                kwargs[kw.name] = self.static_number(kw.value, scope)
            problem = initializer_problem(e.func.id, kwargs)
            if problem is not None:
                self.b.error(e.span, f"`{e.func.id}`: {problem}")
            return Initializer(e.func.id, tuple(sorted(kwargs.items())))
        v = self.expr(e, scope)
        if isinstance(v, Var) and v.type.is_error:
            return Initializer("zeros")  # already reported
        if isinstance(v, Var):
            self.b.error(e.span, "a param's initial value must be a number, an array literal or an initializer "
                                 "such as normal(0, 1) or glorot()")
            return Initializer("zeros")
        try:
            arr = np.asarray(_plain(v), dtype=np.float64 if t is None else None)
            if t is not None:
                # Checked against the shape, but kept small: the runtime broadcasts it.
                shape = tuple(self.dims.resolve_shape(t.shape))
                if np.broadcast_shapes(arr.shape, shape) != shape:  # the literal must fit inside the type
                    raise ValueError
                with np.errstate(over="raise", invalid="raise"):
                    cast = arr.astype(np.dtype(_np_name(t.dtype)))
                if not np.array_equal(cast.astype(np.float64), arr.astype(np.float64)) and arr.dtype.kind in "iu":
                    raise OverflowError
                arr = cast
            return arr
        except (ValueError, TypeError, OverflowError, FloatingPointError):
            self.b.error(e.span, f"the initial value does not fit the declared type {self.fmt(t) if t else t}")
            return Initializer("zeros")

    def static_number(self, e: ast.Expr, scope: Scope) -> float:
        v = self.expr(e, scope)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return v
        self.b.error(e.span, f"expected a number, got {describe(v)}")
        return 0.0

    def stmt_assign(self, s: ast.Assign, scope: Scope, top: bool) -> None:
        if s.name in KEYWORDS:
            self.b.error(s.span, f"`{s.name}` is a keyword")
            return
        # `h = Dense(...)` names the params h.W only where one call makes one set of params:
        # at the top level and in a layer body (not in a fn, which may be called many times).
        binding = s.name if isinstance(s.value, ast.Call) and not s.value.piped and _owner(scope) != "fn" else None
        self.assign(s.name, self.expr(s.value, scope, binding=binding), s.span, s.value.span, scope, top)

    def assign(self, name: str, v: Any, span: Span, value_span: Span, scope: Scope, top: bool) -> None:
        carried = scope.kind == "loop" and name in scope.carried  # type: ignore[attr-defined]
        if carried:
            scope.names[name] = Binding(v, span, "loop")
            scope.assigned.add(name)  # type: ignore[attr-defined]
            return
        if self.bind(scope, name, v, span) and top:
            if isinstance(v, Var) or _tensorable(v):
                var = v if isinstance(v, Var) else self.tensor(v, value_span)
                if var.hint == "" or var.hint == name:
                    var.hint = name
                self.values[name] = var

    def stmt_assignmany(self, s: ast.AssignMany, scope: Scope, top: bool) -> None:
        for name in s.names:
            if name in KEYWORDS:
                self.b.error(s.span, f"`{name}` is a keyword")
                return
        v = self.expr(s.value, scope)
        if isinstance(v, Var) and v.type.is_error:
            v = [v] * len(s.names)
        if not isinstance(v, list) or len(v) != len(s.names):
            count = f"{len(v)} values" if isinstance(v, list) else describe(v)
            self.b.error(s.value.span, f"{len(s.names)} names need a list of {len(s.names)} values, got {count}")
            return
        for name, item in zip(s.names, v):
            self.assign(name, item, s.span, s.value.span, scope, top)

    def bind(self, scope: Scope, name: str, value: Any, span: Span, kind: str = "value") -> bool:
        prev = scope.names.get(name)
        if prev is not None:
            where = f" (line {prev.span.line})" if prev.span is not None else ""
            self.b.error(span, f"`{name}` is already bound{where}; names are bound once per scope")
            return False
        if scope.kind == "module" and name in scope.fns and scope.fns[name].node.span.source is self.source:
            self.b.error(span, f"`{name}` is already defined as a function (line {scope.fns[name].node.span.line})")
            return False
        scope.names[name] = Binding(value, span, kind)
        return True

    def stmt_fndef(self, s: ast.FnDef, scope: Scope, top: bool) -> None:
        if not top:
            self.b.error(s.span, f"`{s.kind}` definitions are only allowed at the top level")

    def stmt_import(self, s: ast.Import, scope: Scope, top: bool) -> None:
        if not top:
            self.b.error(s.span, "`import` is only allowed at the top level")

    def stmt_return(self, s: ast.Return, scope: Scope, top: bool) -> None:
        self.b.error(s.span, "`return` outside a function body")

    def stmt_update(self, s: ast.Update, scope: Scope, top: bool) -> None:
        if not top and scope.kind != "layer":
            self.b.error(s.span, "`update` is only allowed at the top level or inside a layer")
            return
        b = scope.lookup(s.target) if "." not in s.target else None
        decl = None
        if b is not None and b.kind in ("param", "state"):
            decl = self.params.get(b.value.hint)
        elif s.target in self.params:
            decl = self.params[s.target]
        if decl is None:
            self.b.error(s.span, f"`update` needs a param or state, and `{s.target}` is not one"
                         + did_you_mean(s.target, list(self.params)))
            return
        v = self.expr(s.value, scope)
        var = self.tensor(v, s.value.span)
        if var.type.is_error or decl.type.is_error:
            return
        if (var.type.dtype == "bool") != (decl.type.dtype == "bool"):
            self.b.error(s.value.span, f"update of `{decl.name}` ({self.fmt(decl.type)}) has dtype {var.type.dtype}")
            return
        var = self.b.cast(var, decl.type.dtype, s.value.span) if var.type.weak or var.type.dtype != decl.type.dtype and \
            promote(var.type, decl.type)[0] == decl.type.dtype else var
        if var.type.dtype != decl.type.dtype:
            self.b.error(s.value.span, f"update of `{decl.name}` ({decl.type}) has dtype {var.type.dtype}")
            return
        try:
            ok = len(var.type.shape) == len(decl.type.shape) and all(
                self.dims.unify(a, b) is not None for a, b in zip(var.type.shape, decl.type.shape))
        except DimConflict:
            ok = False
        if not ok:
            if len(var.type.shape) < len(decl.type.shape) or all(d == 1 for d in var.type.shape):
                var = self.b.emit("broadcast_to", [var], {"shape": decl.type.shape}, s.value.span)
            else:
                self.b.error(s.value.span, f"update of `{decl.name}` ({self.fmt(decl.type)}) has shape "
                                           f"{self.fmt(var.type)}")
                return
        if decl.name in self.updates:
            self.b.error(s.span, f"`{decl.name}` already has an update (line {self.updates[decl.name][1].line})")
            return
        self.updates[decl.name] = (var, self.b.user_span(s.span))

    def stmt_datadef(self, s: ast.DataDef, scope: Scope, top: bool) -> None:
        from .statements import lower_data
        if not top:
            self.b.error(s.span, "`data` is only allowed at the top level")
            return
        lower_data(self, s, scope)

    def stmt_traindef(self, s: ast.TrainDef, scope: Scope, top: bool) -> None:
        from .statements import lower_train
        if not top:
            self.b.error(s.span, "`train` is only allowed at the top level")
            return
        lower_train(self, s, scope)

    def stmt_for(self, s: ast.For, scope: Scope, top: bool) -> None:
        from .loops import lower_for
        lower_for(self, s, scope)

    # ------------------------------------------------------------------ types
    def type_expr(self, t: ast.TypeExpr, scope: Scope, declare_syms: bool) -> TensorType | None:
        head = t.dtype
        bound = scope.lookup(head.id) if isinstance(head, ast.Name) else None
        if bound is not None and isinstance(bound.value, DType):
            dtype = bound.value.name  # a dtype passed as an argument: Embedding(..., dtype=f64)
        elif isinstance(head, ast.Name):
            if head.id not in DTYPES:
                self.b.error(head.span, f"unknown dtype `{head.id}`" + did_you_mean(head.id, DTYPES)
                             + f"; dtypes are {', '.join(DTYPES)}")
                return None
            dtype = head.id
        else:
            v = self.expr(head, scope)
            if not isinstance(v, DType):
                self.b.error(head.span, f"expected a dtype, got {describe(v)}")
                return None
            dtype = v.name
        dims = []
        for d in t.dims or ():
            if isinstance(d, ast.Name) and scope.lookup(d.id) is None:
                dims.append(self.dims.declare(d.id, d.span))
                continue
            v = self.expr(d, scope)
            if isinstance(v, Var) or not is_dim(v):
                self.b.error(d.span, f"a dimension must be an integer or a symbolic name, got {describe(v)}")
                return None
            if isinstance(v, int) and v < 0:
                self.b.error(d.span, f"a dimension cannot be negative, got {v}")
                return None
            dims.append(v)
        return TensorType(dtype, tuple(dims))

    def fmt(self, t: TensorType) -> str:
        return f"{t.dtype}[{', '.join(str(d) for d in self.dims.resolve_shape(t.shape))}]"

    # ------------------------------------------------------------------ layers / naming
    def qualified(self, name: str) -> str:
        prefix = self.layer_frames[-1].prefix
        return f"{prefix}.{name}" if prefix else name

    def layer_prefix(self, layer: str, binding: str | None) -> str:
        frame = self.layer_frames[-1]
        if binding is None:
            frame.counters[layer] = frame.counters.get(layer, 0) + 1
            local = f"{layer}_{frame.counters[layer]}"
        else:
            local = binding
        return f"{frame.prefix}.{local}" if frame.prefix else local

    # ------------------------------------------------------------------ expressions
    def expr(self, e: ast.Expr, scope: Scope, binding: str | None = None) -> Any:
        lower = getattr(self, "expr_" + type(e).__name__.lower())
        if self.recorder is None:
            return lower(e, scope, binding)
        made = len(self.params)
        value = lower(e, scope, binding)
        self.recorder.expr(e, scope, value, list(self.params.values())[made:] if len(self.params) > made else [])
        return value

    def tensor(self, v: Any, span: Span | None) -> Var:
        """A Var for a value; statics become (weakly typed) constants."""
        if isinstance(v, Var):
            return v
        if isinstance(v, list):
            if not v:
                self.b.error(span, "an empty list cannot be a tensor")
                return Var(ERROR_TYPE)
            if all(_tensorable(x) and not isinstance(x, list) for x in v) or _all_static(v):
                if all(isinstance(x, (bool, int, float, list)) for x in v) and _all_static(v):
                    try:
                        return self.b.const(_plain(v), span)
                    except ValueError:
                        self.b.error(span, "a nested list literal must be rectangular")
                        return Var(ERROR_TYPE)
            parts = [self.tensor(x, span) for x in v]
            parts = self.b.promote_all(parts, span)
            return self.stack(parts, 0, span)
        if isinstance(v, (bool, int, float)):
            return self.b.const(v, span)
        if is_dim(v):
            return self.b.emit("dimsize", [], {"dim": v}, span)
        self.b.error(span, f"expected a tensor, got {describe(v)}")
        return Var(ERROR_TYPE)

    def stack(self, parts: list[Var], axis: int, span: Span | None) -> Var:
        if any(p.type.is_error for p in parts):
            return Var(ERROR_TYPE)
        rank = parts[0].type.rank + 1
        if not -rank <= axis < rank:
            self.b.error(span, f"stack: axis {axis} is out of range for rank {rank}")
            return Var(ERROR_TYPE)
        axis %= rank
        expanded = [self.b.emit("reshape", [p], {"shape": p.type.shape[:axis] + (1,) + p.type.shape[axis:]}, span)
                    for p in parts]
        return expanded[0] if len(expanded) == 1 else self.b.emit("concat", expanded, {"axis": axis}, span)

    def expr_name(self, e: ast.Name, scope: Scope, binding=None) -> Any:
        b = scope.lookup(e.id)
        if b is not None:
            return b.value
        if e.id in DTYPES:
            return DType(e.id)
        from .builtins import BUILTINS
        if e.id in scope.fns or e.id in BUILTINS:
            return FnRef(e.id)
        if e.id in ("zeros", "ones"):
            return CallVal(e.id, (), ())
        candidates = scope.visible() | set(DTYPES)
        self.b.error(e.span, f"undefined name `{e.id}`" + did_you_mean(e.id, candidates))
        return Var(ERROR_TYPE)

    def expr_literal(self, e: ast.Literal, scope: Scope, binding=None) -> Any:
        return e.value

    def expr_all(self, e: ast.All, scope: Scope, binding=None) -> Any:
        return AllVal()

    def expr_listlit(self, e: ast.ListLit, scope: Scope, binding=None) -> Any:
        return [self.expr(x, scope) for x in e.items]

    def expr_numberlist(self, e: ast.NumberList, scope: Scope, binding=None) -> Any:
        return list(e.values)

    def expr_range(self, e: ast.Range, scope: Scope, binding=None) -> Any:
        return RangeVal(self.expr(e.start, scope), self.expr(e.stop, scope))

    def expr_attr(self, e: ast.Attr, scope: Scope, binding=None) -> Any:
        path = _dotted(e)
        if path is not None:
            if path in self.params:
                return self.params[path].var
            # Inside a layer, `inner.W` refers to a sub-layer's param by its local name.
            local = self.qualified(path)
            if local in self.params:
                return self.params[local].var
            self.b.error(e.span, f"unknown parameter `{path}`" + did_you_mean(path, self.params))
            return Var(ERROR_TYPE)
        self.b.error(e.span, "`.` is only used to name parameters, as in `h1.W`")
        return Var(ERROR_TYPE)

    def expr_unary(self, e: ast.Unary, scope: Scope, binding=None) -> Any:
        from .operators import unary
        return unary(self, e.op, self.expr(e.operand, scope), e.span)

    def expr_binop(self, e: ast.BinOp, scope: Scope, binding=None) -> Any:
        from .operators import binary
        return binary(self, e.op, self.expr(e.left, scope), self.expr(e.right, scope), e.span)

    def expr_ifelse(self, e: ast.IfElse, scope: Scope, binding=None) -> Any:
        from .loops import lower_if
        return lower_if(self, e, scope)

    def expr_index(self, e: ast.Index, scope: Scope, binding=None) -> Any:
        from .indexing import lower_index
        return lower_index(self, e, scope)

    def expr_call(self, e: ast.Call, scope: Scope, binding=None) -> Any:
        from .calls import lower_call
        return lower_call(self, e, scope, binding)

    def expr_slice(self, e: ast.Slice, scope: Scope, binding=None) -> Any:
        self.b.error(e.span, "a slice `a:b` is only allowed inside `[...]`")
        return Var(ERROR_TYPE)


@lru_cache(maxsize=None)
def _stdlib(name: str) -> tuple[Source, ast.Module]:
    """A standard-library file, parsed once per process (ASTs are immutable)."""
    text = resources.files("wengert.dsl").joinpath("stdlib", name).read_text(encoding="utf-8")
    src = Source(STDLIB_PREFIX + name, text)
    return src, parse(src)


def _owner(scope: Scope) -> str:
    """The kind of the innermost fn/layer around a scope ("module" at the top level)."""
    s: Scope | None = scope
    while s is not None and s.kind not in ("fn", "layer", "module"):
        s = s.parent
    return s.kind if s is not None else "module"


def _dotted(e: ast.Expr) -> str | None:
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.Attr):
        base = _dotted(e.base)
        return f"{base}.{e.name}" if base is not None else None
    return None


def _tensorable(v: Any) -> bool:
    return isinstance(v, (Var, bool, int, float)) or is_dim(v) or (isinstance(v, list) and bool(v) and all(
        _tensorable(x) for x in v))


def _all_static(v: Any) -> bool:
    if isinstance(v, list):
        return all(_all_static(x) for x in v)
    return isinstance(v, (bool, int, float))


def _plain(v: Any) -> Any:
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _np_name(dtype: str) -> str:
    return {"bool": "bool", "i32": "int32", "i64": "int64", "f32": "float32", "f64": "float64"}[dtype]


@contextmanager
def _deep_recursion(limit: int = 20000):
    """Long expressions (a sum of thousands of terms) nest deeply; allow it while checking.
    Deeper programs still end in a clean "nested too deeply" diagnostic."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def lower_source(source: Source, recorder: Any = None, strict: bool = False) -> Module:
    """Parse and check one program; raises DiagnosticError with every mistake found (with
    `strict`, warnings too). A `recorder` is told of the parsed module and its lowerer
    (`recorder.parsed(module, lowerer)`) and of every expression lowered (see `Lowerer`)."""
    with _deep_recursion():
        module = parse(source)
        lowerer = Lowerer(source, recorder=recorder, strict=strict)
        if recorder is not None:
            recorder.parsed(module, lowerer)
        return lowerer.lower_module(module)


def check_file(path: str | Path, strict: bool = False) -> Module:
    return lower_source(read_source(path), strict=strict)
