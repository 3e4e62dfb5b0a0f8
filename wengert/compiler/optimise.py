"""Optimising the step's graph before code is generated: aliases resolved (`x * 1`, `x ** 1`,
same-shape reshapes, broadcasts an elementwise kernel does itself), constants folded, common
subexpressions shared, dead values dropped. Every rewrite keeps results bit for bit."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..runtime import primitives
from .graph import Graph, Node


def _freeze(v: Any) -> Any:
    """A hashable stand-in for a param value (common subexpressions compare params)."""
    if isinstance(v, np.ndarray):
        return ("array", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, (tuple, list)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if callable(v):
        return ("fn", id(v))
    return v


def _is_one(v: Any) -> bool:
    return np.ndim(v) == 0 and np.result_type(v).kind == "f" and float(v) == 1.0


def optimise(graph: Graph, wanted: list[int], guards: list[tuple[int, Any]]) -> tuple[list[int], dict[int, int]]:
    """Resolve aliases, fold constants, share subexpressions, drop the dead. Returns the live
    nodes in order and the representative of every node."""
    nodes = graph.nodes
    rep = list(range(len(nodes)))
    seen: dict[Any, int] = {}
    for n, node in enumerate(nodes):
        node.args = tuple(rep[a] for a in node.args)
        if node.op in ("root", "const") or node.effect or node.taint:
            continue
        args = [nodes[a] for a in node.args]
        if node.op == "scale" and any(a.op == "const" and not a.taint and np.all(a.value != 0 if k == 0 else
                                                                                 np.isfinite(a.value))
                                      for k, a in enumerate(args)):
            node.op = "mul"  # ops.scale is a plain product for a finite constant derivative or a nonzero constant g
        if node.op == "mul":  # x * 1 is x, bit for bit
            for k in (0, 1):
                c = args[1 - k]
                if c.op == "const" and not c.taint and _is_one(c.value) and args[k].meta == node.meta:
                    rep[n] = node.args[k]
        elif node.op in ("reshape", "broadcast_to") and args[0].meta == node.meta:
            rep[n] = node.args[0]
        elif node.op == "pow" and args[1].op == "const" and not args[1].taint and _is_one(args[1].value) \
                and args[0].meta == node.meta:
            rep[n] = node.args[0]  # x ** 1 is x: pow is within 1 ulp, and x is exact
        if node.op in ELEMENTWISE:  # a broadcast operand the kernel would broadcast anyway
            node.args = _unbroadcast_args(node, nodes)
        if rep[n] != n:
            continue
        key = (node.op, node.args, _freeze(node.params))
        if key in seen:
            rep[n] = seen[key]
        else:
            seen[key] = n
    live = {rep[w] for w in wanted if w is not None} | {rep[n] for n, _ in guards}
    live |= {n for n, node in enumerate(nodes) if node.effect and rep[n] == n}
    order = []
    for n in range(len(nodes) - 1, -1, -1):
        if n in live and rep[n] == n:
            order.append(n)
            live.update(nodes[n].args)
    return order[::-1], {n: rep[n] for n in range(len(nodes))}


ELEMENTWISE = set(primitives.elementwise.UNARY) | set(primitives.elementwise.BINARY) | {"where", "scale"}


def _unbroadcast_args(node: Node, nodes: list[Node]) -> tuple[int, ...]:
    """Skip `broadcast_to` operands of an elementwise op when its result keeps its shape."""
    args = list(node.args)
    for k, a in enumerate(args):
        if nodes[a].op == "broadcast_to" and nodes[a].args:
            trial = args[:k] + [nodes[a].args[0]] + args[k + 1:]
            if np.broadcast_shapes(*(nodes[t].meta.shape for t in trial)) == node.meta.shape:
                args = trial
    return tuple(args)
