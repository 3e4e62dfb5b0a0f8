"""Calls: user `fn`s and `layer`s are inlined; built-ins dispatch through their registry."""
from __future__ import annotations

from typing import Any

from ..diagnostics import Span, did_you_mean
from ..runtime.ir import Var
from ..runtime.types import ERROR_TYPE
from . import ast
from .values import FnRef

REQUIRED = object()


def bind_args(lw, fname: str, names: list[str], defaults: dict[str, Any], args: list[tuple[Any, Span]],
              kwargs: list[tuple[str, Any, Span]], span: Span) -> dict[str, Any] | None:
    """Match positional and keyword arguments to parameter names; report mistakes."""
    bound: dict[str, Any] = {}
    ok = True
    if len(args) > len(names):
        lw.b.error(args[len(names)][1] if len(names) < len(args) else span,
                   f"`{fname}` takes {_count(len(names))} but {len(args)} were given")
        return None
    for name, (value, _) in zip(names, args):
        bound[name] = value
    for name, value, kspan in kwargs:
        if name not in names:
            lw.b.error(kspan, f"`{fname}` has no argument `{name}`" + did_you_mean(name, names))
            ok = False
        elif name in bound:
            lw.b.error(kspan, f"`{fname}` got two values for `{name}`")
            ok = False
        else:
            bound[name] = value
    missing = [n for n in names if n not in bound and n not in defaults]
    if missing:
        lw.b.error(span, f"`{fname}` is missing {'argument' if len(missing) == 1 else 'arguments'} "
                         + ", ".join(f"`{m}`" for m in missing)
                         + f" (it takes {_count(len(names))}: {', '.join(names)})")
        ok = False
    return bound if ok else None


def _count(n: int) -> str:
    return f"{n} argument" + ("" if n == 1 else "s")


def lower_call(lw, e: ast.Call, scope, binding: str | None) -> Any:
    from .builtins import BUILTINS
    if not isinstance(e.func, ast.Name):
        lw.b.error(e.func.span, "only named functions can be called")
        return Var(ERROR_TYPE)
    name = e.func.id
    local = scope.lookup(name)
    if local is not None and isinstance(local.value, FnRef):
        name = local.value.name  # a function passed as an argument
    elif local is not None and name not in scope.fns and name not in BUILTINS:
        lw.b.error(e.func.span, f"`{name}` is a value, not a function")
        return Var(ERROR_TYPE)
    args = [(lw.expr(a, scope), a.span) for a in e.args]
    kwargs = [(k.name, lw.expr(k.value, scope), k.span) for k in e.kwargs]
    return call_named(lw, name, args, kwargs, e.span, None if e.piped else binding, scope)


def call_named(lw, name: str, args, kwargs, span: Span, binding: str | None, scope) -> Any:
    from .builtins import BUILTINS
    from .lower import INITIALIZERS
    if any(_poisoned(v) for v, _ in args) or any(_poisoned(v) for _, v, _ in kwargs):
        return Var(ERROR_TYPE)  # an argument already failed and was reported
    info = scope.fns.get(name)
    if info is not None:
        return call_fn(lw, info, args, kwargs, span, binding)
    builtin = BUILTINS.get(name)
    if builtin is not None:
        bound = bind_args(lw, name, list(builtin.names), builtin.defaults, args, kwargs, span)
        if bound is None:
            return Var(ERROR_TYPE)
        for k, v in builtin.defaults.items():
            bound.setdefault(k, v)
        return builtin.impl(lw, span, **bound)
    if name in INITIALIZERS:
        lw.b.error(span, f"`{name}()` is an initializer: use it as the initial value of a `param`")
        return Var(ERROR_TYPE)
    lw.b.error(span, f"unknown function `{name}`" + did_you_mean(name, set(scope.fns) | set(BUILTINS)))
    return Var(ERROR_TYPE)


def _poisoned(v: Any) -> bool:
    if isinstance(v, Var):
        return v.type.is_error
    return isinstance(v, list) and any(_poisoned(x) for x in v)


def call_fn(lw, info, args, kwargs, span: Span, binding: str | None) -> Any:
    from .lower import LayerFrame, Scope
    node: ast.FnDef = info.node
    if node.name in lw.fn_stack:
        chain = " -> ".join(lw.fn_stack[lw.fn_stack.index(node.name):] + [node.name])
        lw.b.error(span, f"recursion is not supported: {chain} (functions are inlined at each call)")
        return Var(ERROR_TYPE)
    if len(lw.fn_stack) > 64:
        lw.b.error(span, "functions nested more than 64 calls deep")
        return Var(ERROR_TYPE)
    lw.b.count_call(node.name, span)
    names = [p.name for p in node.params]
    defaults = {p.name: p.default for p in node.params if p.default is not None}
    bound = bind_args(lw, node.name, names, defaults, args, kwargs, span)
    if bound is None:
        return Var(ERROR_TYPE)
    inner = Scope(info.scope, kind=node.kind)
    for p in node.params:  # a default may use the parameters before it: stride=size
        value = bound[p.name] if p.name in bound else lw.expr(p.default, inner)
        inner.names[p.name] = _binding(value, p.span)
    lw.fn_stack.append(node.name)
    lw.b.call_sites.append((node.name, span))
    if node.kind == "layer":
        lw.layer_frames.append(LayerFrame(lw.layer_prefix(node.name, binding)))
    framed = lw.b.enter_call(node.name, node.kind, lw.layer_frames[-1].prefix, node.span, span)
    try:
        return _body(lw, node, inner)
    finally:
        if framed:
            lw.b.layers.pop()
        if node.kind == "layer":
            lw.layer_frames.pop()
        lw.b.call_sites.pop()
        lw.fn_stack.pop()


def _binding(value, span):
    from .lower import Binding
    return Binding(value, span, "arg")


def _body(lw, node: ast.FnDef, scope) -> Any:
    if not isinstance(node.body, ast.Block):
        return lw.expr(node.body, scope)
    result = None
    for stmt in node.body.stmts:
        if result is not None:
            lw.b.error(stmt.span, "statement after `return`")
            break
        if isinstance(stmt, ast.Return):
            result = lw.expr(stmt.value, scope)
        else:
            lw.stmt(stmt, scope)
    if result is None:
        lw.b.error(node.span, f"`{node.name}` has no `return`")
        return Var(ERROR_TYPE)
    return result
