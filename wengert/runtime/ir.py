"""The IR: a typed dataflow graph, Jaxpr-style (blocks of equations over variables).

A Block has argument vars, a list of equations in topological order and result vars.
Control flow (`if`, `for`) is an equation whose `regions` are nested blocks; a nested
block may use vars of the blocks around it (closure capture).
"""
from __future__ import annotations

import itertools
from typing import Any

import attrs
import numpy as np

from .types import DimEnv, TensorType

_ids = itertools.count()


@attrs.define(eq=False)
class Var:
    type: TensorType
    hint: str = ""  # the user's name for it, when it has one
    id: int = attrs.field(factory=lambda: next(_ids))

    def __repr__(self) -> str:
        return f"%{self.id}"


@attrs.frozen
class CallFrame:
    """A call being inlined when an equation was made: a `layer` call, or a standard-library
    `fn` called from the user's code. Pictures group equations by these (`wengert graph`)."""

    instance: str  # a layer's param prefix ("Conv2D_1", "h1", "enc.Dense_1"); "relu#3" for a fn
    callee: str  # "Conv2D", "relu"
    kind: str  # "layer" | "fn"


@attrs.define(eq=False)
class Eqn:
    prim: str
    inputs: tuple[Var, ...]
    outputs: tuple[Var, ...]
    params: dict[str, Any]
    span: Any = None  # the source span of the user's code that produced it
    regions: tuple["Block", ...] = ()
    layer: tuple[CallFrame, ...] = ()  # the calls being inlined when it was made, outermost first


@attrs.define(eq=False)
class Block:
    args: tuple[Var, ...] = ()
    eqns: list[Eqn] = attrs.Factory(list)
    results: tuple[Var, ...] = ()


@attrs.define
class InputDecl:
    name: str
    var: Var
    span: Any


@attrs.define
class ParamDecl:
    """A param or state tensor; `init` is a constant ndarray or an Initializer."""

    name: str
    kind: str  # "param" | "state"
    var: Var
    init: Any
    span: Any

    @property
    def type(self) -> TensorType:
        return self.var.type


@attrs.frozen
class Initializer:
    name: str  # normal uniform glorot he orthogonal zeros ones fan_in
    kwargs: tuple[tuple[str, float], ...] = ()


@attrs.define
class DataSpec:
    names: tuple[str, ...]
    source: tuple[str, dict[str, Any]]  # (source name, static arguments)
    transforms: list[tuple[str, dict[str, Any]]]
    span: Any
    base_dir: str = "."
    needed: frozenset[str] | None = None  # the columns a run reads (None: all); sources may skip the others


@attrs.define
class TrainSpec:
    name: str | None
    config: dict[str, Any]  # statics (numbers, strings, ("optimizer", name, kwargs) ...)
    minimize: str | None
    metrics: list[tuple[str, str]]  # (metric display name, hidden value name)
    span: Any
    spans: dict[str, Any] = attrs.field(factory=dict)  # each setting's value, for diagnostics at run time


@attrs.define
class Module:
    """A checked program: what the runtime executes."""

    path: str
    source_text: str
    seed: int
    inputs: dict[str, InputDecl]
    params: dict[str, ParamDecl]
    values: dict[str, Var]  # named values in source order (user-visible outputs)
    hidden: dict[str, Var]  # values the system needs (metrics) but the user did not name
    main: Block
    updates: dict[str, tuple[Var, Any]]
    data: dict[str, DataSpec]
    trains: dict[str | None, TrainSpec]
    dims: DimEnv
    fns: dict[str, Any] = attrs.Factory(dict)
    notes: list[Any] = attrs.Factory(list)  # diagnostics that are not errors (a shadowed built-in)

    @property
    def param_count(self) -> int:
        total = 0
        for p in self.params.values():
            if p.kind == "param":
                total += int(np.prod([d for d in self.dims.resolve_shape(p.type.shape) if isinstance(d, int)]))
        return total

    def type_of(self, var: Var) -> TensorType:
        return attrs.evolve(var.type, shape=self.dims.resolve_shape(var.type.shape))


def format_block(block: Block, dims: DimEnv | None = None, names: dict[int, str] | None = None,
                 indent: str = "  ") -> str:
    """A readable listing, one equation per line, types inline (like a jaxpr)."""
    names = dict(names or {})

    def ty(v: Var) -> str:
        t = v.type
        shape = dims.resolve_shape(t.shape) if dims else t.shape
        return f"{t.dtype}[{','.join(str(d) for d in shape)}]"

    def nm(v: Var) -> str:
        return names.get(v.id, f"%{v.id}")

    lines = []
    for e in block.eqns:
        outs = ", ".join(f"{nm(o)}:{ty(o)}" for o in e.outputs)
        params = ", ".join(f"{k}={_fmt_param(v)}" for k, v in e.params.items())
        ins = " ".join(nm(i) for i in e.inputs)
        loc = f"    # {e.span.line}:{e.span.column}" if e.span is not None else ""
        lines.append(f"{indent}{outs} = {e.prim}{'[' + params + ']' if params else ''} {ins}{loc}".rstrip())
        for k, region in enumerate(e.regions):
            args = ", ".join(f"{nm(a)}:{ty(a)}" for a in region.args)
            lines.append(f"{indent}  {{ region {k} ({args}):")
            lines.append(format_block(region, dims, names, indent + "    "))
            lines.append(f"{indent}    yield {', '.join(nm(r) for r in region.results)} }}")
    return "\n".join(lines)


def _fmt_param(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return np.array2string(v, threshold=6, separator=",").replace("\n", "")
    if isinstance(v, tuple):
        return "(" + ",".join(_fmt_param(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return str(v)
