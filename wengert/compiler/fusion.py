"""Fusion: the optimised step's nodes grouped into kernels, for any backend to render.

Each node the step keeps is one of
- a **map** (elementwise primitives, `where`, casts, `ops.scale`, broadcasts): a loop over its
  result's shape evaluating an expression tree,
- a **reduce** (`reduce_sum/max/min/prod`, `argmax`): a loop over its operand's shape accumulating an
  expression tree into the result,
- a **matmul** (a BLAS call), a **view** (reshape, transpose, slice, index: no loop), a **copy**
  (unslice, concat, pad: regions of a new array), or
- a **host** node: a kernel the native backends cannot express yet (random draws, gathers,
  convolutions, opaque rule calls), which stays a NumPy call in the same plan.
A map whose value only one map or reduce of the same iteration shape reads is not stored: its
expression is inlined into that reader's tree (so `exp(z - max(z))` feeding a sum is one loop
and no buffer). A kernel's `key` names it up to which buffers it reads: equal keys (the time
steps of an unrolled LSTM, the layers of a deep net) are one generated kernel.
"""
from __future__ import annotations

from typing import Any, Union

import attrs
import numpy as np

from ..runtime import primitives
from .graph import Graph, Node

MAP = set(primitives.elementwise.UNARY) | set(primitives.elementwise.BINARY) \
    | {"where", "cast", "scale", "broadcast_to"}
REDUCE = {"reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax"}
VIEW = {"reshape", "transpose", "slice", "index", "stop_gradient"}
COPY = {"unslice", "concat", "pad"}  # a new array made of its operands' regions
MAX_TREE = 48  # ops per fused expression: bounds the size of one generated loop body


# An expression: ("in", k) reads the kernel's k-th input at the loop's index (broadcast as its
# shape says); ("lit", value, dtype) is a scalar constant; (op, params, *children) applies a primitive.
Expr = Union[tuple]


@attrs.define(eq=False)
class Kernel:
    kind: str  # "map", "reduce", "matmul", "view", "copy", "host"
    node: int  # the node whose value it computes
    inputs: list[int]  # the stored nodes it reads, in the order ("in", k) names them
    expr: Expr | None = None  # map and reduce: the fused expression over `inputs`
    space: tuple[int, ...] = ()  # map and reduce: the shape the loop runs over

    def key(self, graph: Graph) -> tuple:
        """What the generated code depends on: everything but which buffers are read and written."""
        nodes = graph.nodes
        node = nodes[self.node]
        ins = tuple((nodes[i].meta.dtype.str, nodes[i].meta.shape) for i in self.inputs)
        return (self.kind, node.op if self.kind != "map" else "", _freeze(node.params) if self.kind != "map" else (),
                self.expr, self.space, ins, node.meta.dtype.str, node.meta.shape)


def _freeze(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return v


def kind_of(node: Node) -> str:
    if node.op in ("root", "const"):
        return node.op
    if node.effect or node.taint or node.op in ("vjp", "item") or node.meta is None or not _plain(node):
        return "host"
    if node.op in MAP:
        return "map"
    if node.op in REDUCE:
        return "reduce"
    if node.op == "matmul":
        return "matmul"
    if node.op in VIEW:
        return "view"
    if node.op in COPY:
        return "copy"
    return "host"


def _plain(node: Node) -> bool:
    """Numeric arrays of a kind loops handle (no object or string dtypes)."""
    return node.meta.dtype.kind in "biuf"


def scalar_literal(node: Node) -> bool:
    """A constant small enough to write into the code (a 0-d number)."""
    return node.op == "const" and not node.taint and node.meta is not None and node.meta.shape == () \
        and _plain(node)


def fuse(graph: Graph, order: list[int], keep: set[int]) -> list[Kernel]:
    """The kernels of the live nodes `order`, in evaluation order. `keep`: nodes whose values are
    needed after the step or by a guard (never inlined)."""
    nodes = graph.nodes
    readers: dict[int, set[int]] = {}
    for n in order:
        for a in nodes[n].args:
            readers.setdefault(a, set()).add(n)
    kinds = {n: kind_of(nodes[n]) for n in order}

    def space(n: int) -> tuple[int, ...]:  # the shape a map or reduce loops over
        return nodes[nodes[n].args[0]].meta.shape if kinds[n] == "reduce" else nodes[n].meta.shape

    inlined: set[int] = set()
    size: dict[int, int] = {}  # ops in a map's tree, with what is inlined into it
    for n in order:
        if kinds[n] not in ("map", "reduce"):
            continue
        total = 1
        for a in dict.fromkeys(nodes[n].args):
            if kinds.get(a) == "map" and a not in keep and readers[a] == {n} \
                    and nodes[a].meta.shape == space(n) and total + size[a] <= MAX_TREE:
                inlined.add(a)
                total += size[a]
        size[n] = total

    kernels = []
    for n in order:
        kind = kinds[n]
        if kind in ("root", "const") or n in inlined:
            continue
        if kind in ("map", "reduce"):
            inputs: list[int] = []
            top = nodes[n].args[0] if kind == "reduce" else n
            kernels.append(Kernel(kind, n, inputs, _tree(nodes, top, inputs, inlined, top=kind == "map"), space(n)))
        else:
            kernels.append(Kernel(kind, n, list(nodes[n].args)))
    return kernels


def _tree(nodes: list[Node], n: int, inputs: list[int], inlined: set[int], top: bool = False) -> Expr:
    node = nodes[n]
    if scalar_literal(node):
        return ("lit", node.value.item(), node.meta.dtype.str)
    if not top and n not in inlined:
        if n not in inputs:
            inputs.append(n)
        return ("in", inputs.index(n))
    children = tuple(_tree(nodes, a, inputs, inlined) for a in node.args)
    params = _freeze({k: v for k, v in node.params.items() if k != "shape"} if node.op == "broadcast_to"
                     else node.params)
    return (node.op, params, node.meta.dtype.str) + children


def broadcast_index(shape: tuple[int, ...], space: tuple[int, ...]) -> list[int | None]:
    """For each dim of an operand of `shape` read inside a loop over `space`: the loop axis that
    indexes it, or None where it is broadcast (size 1 against a larger loop)."""
    offset = len(space) - len(shape)
    return [None if d == 1 and space[offset + k] != 1 else offset + k for k, d in enumerate(shape)]


def dtype_of(code: str) -> np.dtype:
    return np.dtype(code)
