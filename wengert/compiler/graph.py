"""The step being compiled, as a graph: the trace's forward entries, then the reverse pass of
autodiff.py traced into the same list by recording what `ops.bind`, `ops.scale` and
`ops.const_like` do while the VJP rules run (arrays are known by identity; a rule that feeds
`bind` an array of unknown provenance is marked and later kept as one opaque call)."""
from __future__ import annotations

import contextlib
import functools
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import numpy as np

from ..runtime import ops, primitives
from ..runtime.executor import Evaluation

ROOTS = ("input", "param", "state")


class GuardFailed(Exception):
    """A replay reached a branch or loop bound that differs from the compiling trace."""


class NotCompilable(Exception):
    """The step cannot be compiled (a primitive without a reverse rule, forward-mode values, ...)."""


# ---------------------------------------------------------------- the list being compiled
@attrs.frozen
class Meta:
    """What a node's value is like: enough to allocate its buffer and pick its code."""

    shape: tuple[int, ...]
    dtype: np.dtype
    array: bool  # an ndarray, not a NumPy scalar (a 0-d operation's result)


def meta_of(value: Any) -> Meta | None:
    if value is None or isinstance(value, tuple):
        return None
    return Meta(np.shape(value), np.result_type(value), isinstance(value, np.ndarray))


@attrs.define(eq=False)
class Node:
    op: str  # a primitive, or "root", "const", "scale" (ops.scale), "vjp" (an opaque rule call), "item"
    args: tuple[int, ...]
    params: dict[str, Any]
    meta: Meta | None  # the compiling step's value: its shape, dtype and kind
    value: Any = None  # kept for constants only (the others are freed as the interpreter frees them)
    effect: bool = False  # draws random numbers: never folded, shared or dropped
    taint: bool = False  # an array of unknown provenance fed to a traced rule
    owner: int = -1  # the forward entry whose VJP rule made it
    accum: bool = False  # an adjoint accumulation (may add in place)


class Graph:
    """Nodes in evaluation order, and which node each live array object is (by id, forgotten
    when the array is freed, so a reused id is not mistaken for it)."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._by_id: dict[int, int] = {}
        self._ambiguous: set[int] = set()
        self._refs: dict[int, weakref.ref] = {}
        self._keep: list[Any] = []  # NumPy scalars (no weak references): kept alive instead

    def add(self, op: str, args: tuple[int, ...], params: dict, value: Any, **kw: Any) -> int:
        """A node; one computed only from constants is folded into a constant (its value)."""
        nodes = self.nodes
        if op not in ("root", "const") and args and not kw.get("effect") \
                and all(nodes[a].op == "const" and not nodes[a].taint for a in args):
            op, args, params = "const", (), {}
        keep = op == "const" and not kw.get("taint")
        nodes.append(Node(op, args, params, meta_of(value), value if keep else None, **kw))
        return len(nodes) - 1

    def register(self, value: Any, n: int) -> None:
        key = id(value)
        old = self._by_id.get(key)
        if old is not None and old != n and not (self.nodes[old].op == self.nodes[n].op == "const"):
            self._ambiguous.add(key)  # e.g. NumPy's bool singletons from two comparisons
        self._by_id[key] = n
        try:
            self._refs[key] = weakref.ref(value, functools.partial(self._forget, key))
        except TypeError:
            self._keep.append(value)

    def _forget(self, key: int, ref: weakref.ref) -> None:
        if self._refs.get(key) is ref:
            del self._refs[key]
            self._by_id.pop(key, None)
            self._ambiguous.discard(key)

    def node_for(self, value: Any, owner: int) -> int:
        key = id(value)
        if key in self._by_id and key not in self._ambiguous:
            return self._by_id[key]
        return self.add("const", (), {}, value, taint=True, owner=owner)


# ---------------------------------------------------------------- tracing the VJP rules
_tracing = threading.local()  # .graph, .owner, .accum, .off while a rule is being traced on this thread


def _recorder() -> Graph | None:
    return getattr(_tracing, "graph", None) if not getattr(_tracing, "off", True) else None


@contextlib.contextmanager
def _suspended() -> Iterator[None]:
    old = getattr(_tracing, "off", True)
    _tracing.off = True
    try:
        yield
    finally:
        _tracing.off = old


def _recording_ops(bind: Callable, scale: Callable, const_like: Callable):
    def rec_bind(prim: str, *args: Any, **params: Any) -> Any:
        graph = _recorder()
        if graph is None:
            return bind(prim, *args, **params)
        owner = _tracing.owner
        arg_nodes = tuple(graph.node_for(a, owner) for a in args)
        with _suspended():
            value = bind(prim, *args, **params)
        if isinstance(value, np.ndarray) and any(value is a for a in args):  # an identity: the same node
            return value
        graph.register(value, graph.add(prim, arg_nodes, params, value, owner=owner, accum=_tracing.accum))
        return value

    def rec_scale(g: Any, d: Any) -> Any:
        graph = _recorder()
        if graph is None:
            return scale(g, d)
        owner = _tracing.owner
        arg_nodes = (graph.node_for(g, owner), graph.node_for(d, owner))
        with _suspended():
            value = scale(g, d)
        graph.register(value, graph.add("scale", arg_nodes, {}, value, owner=owner))
        return value

    def rec_const_like(value: float, like: Any) -> np.ndarray:
        out = const_like(value, like)
        graph = _recorder()
        if graph is not None:
            graph.register(out, graph.add("const", (), {}, out))
        return out
    return rec_bind, rec_scale, rec_const_like


_patch_lock = threading.Lock()


@contextlib.contextmanager
def _tracing_rules(graph: Graph) -> Iterator[None]:
    """ops.bind/scale/const_like record into `graph` on this thread (other threads pass through)."""
    with _patch_lock:
        saved = ops.bind, ops.scale, ops.const_like
        ops.bind, ops.scale, ops.const_like = _recording_ops(*saved)
        _tracing.graph, _tracing.owner, _tracing.accum, _tracing.off = graph, -1, False, True
        try:
            yield
        finally:
            ops.bind, ops.scale, ops.const_like = saved
            _tracing.graph, _tracing.off = None, True


@contextlib.contextmanager
def _rule_of(owner: int, accum: bool = False) -> Iterator[None]:
    _tracing.owner, _tracing.accum, _tracing.off = owner, accum, False
    try:
        yield
    finally:
        _tracing.off, _tracing.accum = True, False


def build(evaluation: Evaluation, output: int, opaque: set[int]) -> tuple[Graph, list[int], dict[int, int],
                                                                          dict[int, Any]]:
    """The forward list from the trace, then the reverse pass traced into the same graph.
    Returns the graph, the node of each entry, the adjoint node and value of each entry."""
    entries = evaluation.trace.entries
    graph = Graph()
    node_of: list[int] = []
    for e in entries:
        if isinstance(e.value, ops.Dual):
            raise NotCompilable("forward-mode values")
        if e.op in ROOTS:
            n = graph.add("root", (), {"kind": e.op, "name": e.name}, e.value)
        elif any(i < 0 for i in e.operands):
            raise NotCompilable(f"`{e.op}` reads a value the trace does not hold")
        elif e.op == "iter" or (not e.operands and not primitives.REGISTRY[e.op].needs_context):
            n = graph.add("const", (), {}, e.value)
        else:
            # a kernel that returned its operand (stop_gradient, a cast to the same dtype) is that
            # operand; NumPy scalars are not compared (np.True_ is one object for every comparison)
            same = [node_of[i] for i in e.operands
                    if entries[i].value is e.value and isinstance(e.value, np.ndarray)]
            n = same[0] if same else graph.add(e.op, tuple(node_of[i] for i in e.operands), e.params, e.value,
                                               effect=primitives.REGISTRY[e.op].needs_context)
        node_of.append(n)
        graph.register(e.value, n)

    adj: dict[int, int] = {}
    adj_value: dict[int, Any] = {}
    out = entries[output]
    seed = np.ones_like(ops.primal(out.value))
    adj[output], adj_value[output] = graph.add("const", (), {}, seed), seed
    graph.register(seed, adj[output])
    with np.errstate(all="ignore"), _tracing_rules(graph):
        for e in reversed(entries[: output + 1]):
            if e.index not in adj or not e.active or not e.operands:
                continue
            rule = primitives.REGISTRY[e.op].vjp
            if rule is None:
                raise NotCompilable(f"reverse mode is not defined for `{e.op}`")
            g = adj_value.pop(e.index)  # the interpreter keeps it on the entry; nothing here reads it again
            operands = [entries[i].value for i in e.operands]
            if e.index in opaque:
                cts = rule(g, e.value, *operands, **e.params)
                call = graph.add("vjp", (adj[e.index], node_of[e.index]) + tuple(node_of[i] for i in e.operands),
                                 {"rule": rule, "params": e.params, "prim": e.op}, cts, owner=e.index)
                ct_nodes = [None if ct is None else graph.add("item", (call,), {"index": k}, ct, owner=e.index)
                            for k, ct in enumerate(cts)]
                for ct, n in zip(cts, ct_nodes):
                    if n is not None:
                        graph.register(ct, n)
            else:
                with _rule_of(e.index):
                    cts = rule(g, e.value, *operands, **e.params)
                ct_nodes = [None if ct is None else graph.node_for(ct, e.index) for ct in cts]
            for i, ct, n in zip(e.operands, cts, ct_nodes):
                if ct is None or not entries[i].active:
                    continue
                if i in adj:
                    with _rule_of(e.index, accum=True):
                        adj_value[i] = ops.add(adj_value[i], ct)
                    adj[i] = graph.node_for(adj_value[i], e.index)
                else:
                    adj[i], adj_value[i] = n, ct
    return graph, node_of, adj, adj_value
