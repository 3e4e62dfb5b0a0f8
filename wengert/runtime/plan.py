"""Compiled steps: a recorded Wengert list replayed as straight-line NumPy code.

When evaluations of the same request (value, gradients, training flag, fed shapes and
dtypes) produce a Wengert list of the same structure twice in a row, `PlanCache`
compiles the step into a `Plan`: one generated Python function (`exec`ed once) running
the forward kernels and the reverse pass as a straight sequence of NumPy calls, values in
locals, results written with `out=` into buffers kept from one replay to the next.

- Forward: the trace's entries; roots (inputs, params, state) become arguments, entries
  that read no root (constants, `dimsize`, loop indices, and everything computed only from
  them) are folded into constants. Random draws (`needs_context` kernels) run on every
  replay from the program's generator, in the trace's order, so seeded runs draw exactly
  what the interpreter draws.
- Backward: the VJP rules are traced once. The reverse pass of autodiff.py runs over the
  trace with `ops.bind`, `ops.scale` and `ops.const_like` recording what they do, so the
  backward becomes a Wengert list of its own. Arrays are known by identity; a rule that
  feeds `bind` an array of unknown provenance (raw NumPy on primal values: `maximum`'s
  tie weights, `reduce_max`'s hits) is kept as one opaque call of the rule instead.
  `ops.scale`'s test for non-finite derivatives runs at every replay.
- The whole list is then optimised: aliases resolved (`x * 1`, same-shape reshapes),
  constants folded, common subexpressions shared, dead values dropped, and adjoint
  accumulations done in place (`np.add(a, b, out=a)`) when nothing reads `a` afterwards.
- Guards: the plan is keyed by the request and the fed shapes/dtypes; the `if` decisions
  and run-time loop bounds of the compiling trace (`Evaluation.guards`) are checked as the
  replay reaches them. A mismatch (`GuardFailed`) rewinds the random generator and falls
  back to the interpreter, which then compiles a second plan if the new structure repeats.

The same kernels run in the same order as in the interpreter, so values and derivatives
are bit-identical to the interpreted path (tests/test_plan.py).
"""
from __future__ import annotations

import contextlib
import functools
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import numpy as np

from . import ops, primitives
from .executor import Context, Evaluation
from .types import NUMPY_DTYPE

ROOTS = ("input", "param", "state")
MAX_PLANS = 4  # plans per key (one per set of guard outcomes seen twice)


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


def _build(evaluation: Evaluation, output: int, opaque: set[int]) -> tuple[Graph, list[int], dict[int, int],
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


# ---------------------------------------------------------------- optimising the list
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


def _optimise(graph: Graph, wanted: list[int], guards: list[tuple[int, Any]]) -> tuple[list[int], dict[int, int]]:
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


# ---------------------------------------------------------------- emitters: one per primitive kernel
@attrs.define
class Emitter:
    """Code for a primitive's forward kernel: `code(args, params, meta, out)` gives an expression
    (`meta`: the result's shape and dtype; `out`: a buffer's name when `writes_out`, else None);
    `names` go into the plan's namespace."""

    code: Callable[[list[str], dict[str, Any], Meta, str | None], str]
    writes_out: bool = False
    names: dict[str, Any] = attrs.Factory(dict)


EMITTERS: dict[str, Emitter] = {}


def emitter(name: str, writes_out: bool = False, **names: Any):
    def register(fn):
        EMITTERS[name] = Emitter(fn, writes_out, names)
        return fn
    return register


def _out(out: str | None) -> str:
    return f", out={out}" if out else ""


def _ufunc(prim: str, ufunc: np.ufunc) -> None:
    local = f"_np_{ufunc.__name__}"
    EMITTERS[prim] = Emitter(lambda args, params, value, out: f"{local}({', '.join(args)}{_out(out)})", True,
                             {local: ufunc})


for _prim, (_kind, _kernel) in {**primitives.elementwise.UNARY, **primitives.elementwise.BINARY}.items():
    if isinstance(_kernel, np.ufunc):
        _ufunc(_prim, _kernel)


@emitter("div", writes_out=True, _np_true_divide=np.true_divide, _np_floor_divide=np.floor_divide)
def _emit_div(args, params, value, out):
    fn = "_np_floor_divide" if value.dtype.kind in "iu" else "_np_true_divide"
    return f"{fn}({', '.join(args)}{_out(out)})"


@emitter("matmul", writes_out=True, _np_matmul=np.matmul)
def _emit_matmul(args, params, value, out):
    return f"_np_matmul({args[0]}, {args[1]}{_out(out if value.shape else None)})"


def _reduction(ufunc: np.ufunc):
    def code(args, params, value, out):
        axes, keepdims = tuple(params["axes"]), params.get("keepdims", False)
        return f"_np_{ufunc.__name__}_reduce({args[0]}, axis={axes!r}, keepdims={keepdims!r}{_out(out)})"
    return code


for _prim, _ufn in {"reduce_sum": np.add, "reduce_max": np.maximum, "reduce_min": np.minimum,
                    "reduce_prod": np.multiply}.items():
    # np.sum(x, axis) is np.add.reduce(x, axis): the same pairwise summation
    EMITTERS[_prim] = Emitter(_reduction(_ufn), True, {f"_np_{_ufn.__name__}_reduce": _ufn.reduce})


@emitter("reshape")
def _emit_reshape(args, params, value, out):
    return f"{args[0]}.reshape({tuple(params['shape'])!r})"  # np.reshape, without its Python wrapper


@emitter("transpose")
def _emit_transpose(args, params, value, out):
    return f"{args[0]}.transpose({tuple(int(p) for p in params['perm'])!r})"


@emitter("broadcast_to", _np_broadcast_to=np.broadcast_to)
def _emit_broadcast_to(args, params, value, out):
    return f"_np_broadcast_to({args[0]}, {tuple(params['shape'])!r})"


@emitter("where", _np_where=np.where)
def _emit_where(args, params, value, out):
    return f"_np_where({', '.join(args)})"


@emitter("stop_gradient")
def _emit_identity(args, params, value, out):
    return args[0]


# ---------------------------------------------------------------- the plan
@attrs.define(eq=False)
class Plan:
    """One compiled step: `fn(ctx, *roots)` returns (values, adjoints); None for no adjoint."""

    fn: Callable[..., tuple[tuple, tuple]]
    roots: list[tuple[str, str]]  # (kind, name) of each argument
    source: str
    random: bool  # reads the context: draws random numbers (rewound when a guard fails), `training()`
    guarded: bool
    replays: int = 0
    grad_types: list[tuple[np.dtype, tuple[int, ...]]] = attrs.Factory(list)  # dtype, shape of each wrt root
    buffers: list[tuple[str, tuple[int, ...], np.dtype]] = attrs.Factory(list)  # not allocated yet

    def run(self, ctx: Context | None, *roots: Any) -> tuple[tuple, tuple]:
        """One replay. Buffers are allocated by the first, after compiling has freed its values."""
        if self.buffers:
            space = self.fn.__globals__
            for name, shape, dtype in self.buffers:
                space[name] = np.empty(shape, dtype)
            self.buffers = []
        return self.fn(ctx, *roots)


def compile_step(evaluation: Evaluation, names: list[str], output_name: str, wrt: list[str]
                 ) -> tuple[Plan, list[Any], dict[str, Any]]:
    """Compile an evaluation recorded with `wrt` active. Also returns this step's values (of
    `names`) and the adjoints of `wrt` (None where none), computed by the traced reverse pass."""
    trace = evaluation.trace
    output = trace.outputs[output_name]
    root_entry = {(e.op, e.name): e.index for e in trace.entries if e.op in ROOTS}
    opaque: set[int] = set()
    for _ in range(4):
        graph, node_of, adj, adj_value = _build(evaluation, output, opaque)
        value_nodes = [node_of[trace.outputs[n]] for n in names]
        wrt_entries = [_root_index(root_entry, n) for n in wrt]
        grad_nodes = [adj.get(i) if i is not None else None for i in wrt_entries]
        if any(i < 0 for i, _ in evaluation.guards):
            raise NotCompilable("a branch on a value the trace does not hold")
        guards = [(node_of[i], want) for i, want in evaluation.guards]
        order, rep = _optimise(graph, value_nodes + grad_nodes, guards)
        tainted = {graph.nodes[a].owner for n in order for a in graph.nodes[n].args if graph.nodes[a].taint}
        tainted |= {graph.nodes[n].owner for n in order if graph.nodes[n].taint}
        if not tainted:
            break
        opaque |= tainted
    else:
        raise NotCompilable("rules of unknown provenance")
    plan = _generate(graph, order, rep, value_nodes, grad_nodes, guards)
    values = [ops.primal(trace.entries[trace.outputs[n]].value) for n in names]
    grads = {n: (adj_value.get(i) if i is not None else None) for n, i in zip(wrt, wrt_entries)}
    return plan, values, grads


def _root_index(root_entry: dict[tuple[str, str], int], name: str) -> int | None:
    for kind in ROOTS:
        if (kind, name) in root_entry:
            return root_entry[(kind, name)]
    return None


def _generate(graph: Graph, order: list[int], rep: dict[int, int], value_nodes: list[int],
              grad_nodes: list[int | None], guards: list[tuple[int, Any]]) -> Plan:
    nodes = graph.nodes
    ns: dict[str, Any] = {"_GuardFailed": GuardFailed, "_isfinite": np.isfinite, "_np_where": np.where,
                          "_np_multiply": np.multiply, "_np_add": np.add, "_all": np.logical_and.reduce}
    name: dict[int, str] = {}
    roots: list[tuple[str, str]] = []
    lines: list[str] = []
    outputs = {rep[n] for n in value_nodes} | {rep[n] for n in grad_nodes if n is not None}
    last_use: dict[int, int] = {}
    for pos, n in enumerate(order):
        for a in nodes[n].args:
            last_use[a] = pos
    store = Storage()  # which buffers values may share (for in-place adds)
    buffers: list[tuple[str, tuple[int, ...], np.dtype]] = []
    guards_at: dict[int, list[Any]] = {}
    for n, want in guards:
        guards_at.setdefault(rep[n], []).append(want)
    random = False
    for pos, n in enumerate(order):
        node = nodes[n]
        if node.op == "root":
            name[n] = f"a{len(roots)}"
            roots.append((node.params["kind"], node.params["name"]))
            store.set(n, {n})
        elif node.op == "const":
            name[n] = f"_c{n}"
            ns[name[n]] = node.value
            store.set(n, {n})
        else:
            name[n] = f"v{n}"
            args = [name[a] for a in node.args]
            lines.extend(_emit(node, n, args, pos, ns, nodes, store, last_use, outputs, buffers))
            random |= node.effect
        for want in guards_at.get(n, ()):
            if nodes[n].op == "const":
                continue  # decided by the shapes alone
            test = f"bool({name[n]}) is not {want!r}" if isinstance(want, bool) else f"int({name[n]}) != {want!r}"
            lines.append(f"if {test}: raise _GuardFailed")
        # values without a buffer of their own are freed after their last use (peak memory)
        dead = [name[a] for a in dict.fromkeys(node.args) if last_use[a] == pos and a not in outputs
                and a not in store.owns and name[a].startswith("v")]
        if dead:
            lines.append(f"del {', '.join(dead)}")
    values = ", ".join(name[rep[n]] for n in value_nodes)
    grads = ", ".join("None" if n is None else name[rep[n]] for n in grad_nodes)
    body = "\n".join("    " + line for line in lines) or "    pass"
    params = ", ".join(["ctx"] + [f"a{k}" for k in range(len(roots))])
    source = f"def step({params}):\n{body}\n    return ({values},), ({grads},)\n"
    code = compile(source, "<wengert plan>", "exec")
    exec(code, ns)  # noqa: S102 - our own generated code
    return Plan(ns["step"], roots, source, random, bool(guards), buffers=buffers)


# Kernels that may return (a view of) an operand; every other kernel returns a new array.
VIEWS = {"reshape", "transpose", "broadcast_to", "slice", "index", "gather", "stop_gradient", "cast", "const",
         "item", "vjp"}


class Storage:
    """Which buffers each node's value may live in, and the nodes that may live in each buffer."""

    def __init__(self) -> None:
        self.of: dict[int, set[int]] = {}
        self.sharers: dict[int, list[int]] = {}
        self.owns: dict[int, int] = {}  # node -> the buffer (named after the node that made it) it writes

    def set(self, n: int, places: set[int]) -> None:
        self.of[n] = places
        for b in places:
            self.sharers.setdefault(b, []).append(n)


def _emit(node: Node, n: int, args: list[str], pos: int, ns: dict[str, Any], nodes: list[Node],
          store: Storage, last_use: dict[int, int], outputs: set[int],
          buffers: list[tuple[str, tuple[int, ...], np.dtype]]) -> list[str]:
    """The statements computing one node into `v{n}`; records which storage it may share."""
    v, value = f"v{n}", node.meta
    if node.op in VIEWS:
        store.set(n, set().union(*(store.of[a] for a in node.args), {n}))
    else:
        store.set(n, {n})

    def buffer() -> str:  # allocated before the first replay, written by every replay
        buffers.append((f"_b{n}", value.shape, value.dtype))
        store.owns[n] = n
        return f"_b{n}"

    if node.op == "scale":  # ops.scale: g * d, but exactly 0 where g is 0 when d has an inf or NaN
        out = buffer() if value.array else None
        ns[f"_z{n}"] = np.zeros((), dtype=value.dtype)
        return [f"{v} = _np_multiply({args[0]}, {args[1]}{_out(out)})",
                f"if not _all(_isfinite({args[1]}), axis=None): {v} = _np_where({args[0]} != 0, {v}, _z{n})"]
    if node.op == "item":
        return [f"{v} = {args[0]}[{node.params['index']}]"]
    if node.op == "vjp":
        ns[f"_f{n}"] = functools.partial(node.params["rule"], **node.params["params"])
        return [f"{v} = _f{n}({', '.join(args)})"]
    prim = primitives.REGISTRY[node.op]
    if node.accum and node.op == "add" and _can_add_in_place(node, n, pos, nodes, store, last_use, outputs):
        store.owns[n] = store.owns[node.args[0]]
        store.set(n, {store.owns[n]})
        return [f"{v} = _np_add({args[0]}, {args[1]}, out={args[0]})"]
    em = EMITTERS.get(node.op)
    if em is not None and not prim.needs_context:
        ns.update(em.names)
        out = buffer() if em.writes_out and value.array else None
        return [f"{v} = {em.code(args, node.params, value, out)}"]
    ns[f"_f{n}"] = functools.partial(prim.impl, **node.params) if node.params else prim.impl
    return [f"{v} = _f{n}({', '.join((['ctx'] if prim.needs_context else []) + args)})"]


def _can_add_in_place(node: Node, n: int, pos: int, nodes: list[Node], store: Storage, last_use: dict[int, int],
                      outputs: set[int]) -> bool:
    """`a + b` may go into a's buffer when a owns one of the result's type and nothing that
    may share it (a itself, views of it) is read after this node."""
    a = node.args[0]
    if a not in store.owns or a in outputs or last_use.get(a) != pos or node.meta != nodes[a].meta:
        return False
    return not any(m not in (a, n) and (m in outputs or last_use.get(m, -1) >= pos)
                   for m in store.sharers.get(store.owns[a], ()))


class PlanCache:
    """A Program's compiled steps, by request and fed shapes; falls back to the interpreter."""

    def __init__(self, prog: Any) -> None:
        self.prog = prog
        self.plans: dict[tuple, list[Plan]] = {}
        self.seen: dict[tuple, set[tuple]] = {}  # structures traced once (compiled when seen again)
        self.refused: set[tuple] = set()  # keys that cannot be compiled
        self.stats = {"replays": 0, "traced": 0, "compiled": 0, "guard_failures": 0}
        self._dtypes = {n: np.dtype(NUMPY_DTYPE[d.var.type.dtype]) for n, d in prog.module.inputs.items()}

    def _fed(self, inputs: dict[str, Any]) -> dict[str, np.ndarray] | None:
        """The inputs as the interpreter converts them (arrays of the declared dtype)."""
        fed = {}
        for name, value in inputs.items():
            dtype = self._dtypes.get(name)
            if dtype is None:
                return None  # the interpreter reports it
            if type(value) is not np.ndarray or value.dtype != dtype:
                value = self.prog._convert(name, value)
            fed[name] = value
        return fed

    def value_and_grad(self, of: str, wrt: list[str], inputs: dict[str, Any], also: list[str], training: bool,
                       resident: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Program.value_and_grad, replayed when a plan fits. With `resident`, the gradients may
        be the plan's own buffers: valid until the next call (the Trainer's step reads them once)."""
        prog = self.prog
        names = [of] + [n for n in also if n != of]
        fed = self._fed(inputs)
        key = None if fed is None else (tuple(names), tuple(wrt), training,
                                        tuple((n, v.shape, v.dtype.char) for n, v in fed.items()))
        plans = self.plans.get(key, ())
        for k, plan in enumerate(plans):
            result = self._replay(plan, fed, names, wrt, training, resident)
            if result is not None:
                if k:  # the structure changed: try this plan first from now on
                    plans.insert(0, plans.pop(k))
                return result
        self.stats["traced"] += 1
        evaluation, outs = prog._evaluate(names, fed if fed is not None else inputs, record=True, active=wrt,
                                          training=training)
        values = {n: ops.primal(v) for n, v in zip(names, outs)}
        prog._require_scalar(of, values[of])
        if key is not None and key not in self.refused and len(self.plans.get(key, ())) < MAX_PLANS:
            shape = _structure(evaluation)
            if shape in self.seen.setdefault(key, set()):
                try:
                    plan, _, adjoints = compile_step(evaluation, names, of, wrt)
                except Exception:  # noqa: BLE001 - NotCompilable, or a rule that cannot be traced: interpret
                    self.refused.add(key)
                else:
                    plan.grad_types = [(like.dtype, like.shape) for like in (prog._root_value(n, fed) for n in wrt)]
                    self.plans.setdefault(key, []).insert(0, plan)
                    self.stats["compiled"] += 1
                    return values, self._grads(wrt, [adjoints[n] for n in wrt], fed)
            else:
                self.seen[key].add(shape)
        trace = evaluation.trace
        output = evaluation.entry_of[prog._var(of).id]
        from .autodiff import release_unneeded
        release_unneeded(trace, output)
        prog._backward(trace, output)
        return values, {n: prog._adjoint(evaluation, n, inputs) for n in wrt}

    def _replay(self, plan: Plan, fed: dict[str, np.ndarray], names: list[str], wrt: list[str], training: bool,
                resident: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        prog = self.prog
        store = prog._store
        ctx = state = None
        if plan.random:
            rng = prog._rng if prog.replay_seed is None else np.random.default_rng(prog.replay_seed)
            ctx = Context(rng, training)
            state = rng.bit_generator.state if plan.guarded else None
        try:
            args = [fed[name] if kind == "input" else store[name] for kind, name in plan.roots]
            with np.errstate(all="ignore"):
                values, adjoints = plan.run(ctx, *args)
        except Exception:  # noqa: BLE001 - a guard, or a kernel error the interpreter reports at its line
            if state is not None:
                rng.bit_generator.state = state
            self.stats["guard_failures"] += 1
            return None
        plan.replays += 1
        self.stats["replays"] += 1
        grads = {}
        for n, adj, (dtype, shape) in zip(wrt, adjoints, plan.grad_types):
            if adj is None:
                adj = np.zeros(shape, dtype)
            else:  # a copy unless resident: the plan's buffers are written again by the next replay
                adj = np.asarray(adj, dtype=dtype) if resident else np.array(adj, dtype=dtype)
            grads[n] = adj if adj.shape == shape else adj.reshape(shape)
        # values are always copies: the Trainer stores `update` values as the new state
        return {n: np.array(v) for n, v in zip(names, values)}, grads

    def _grads(self, wrt: list[str], adjoints: Any, fed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for n, adj in zip(wrt, adjoints):
            like = self.prog._root_value(n, fed)
            if adj is None:
                out[n] = np.zeros_like(like)
            else:  # a copy: the plan's buffers are written again by the next replay
                adj = np.array(adj, dtype=like.dtype)
                out[n] = adj if adj.shape == like.shape else adj.reshape(like.shape)
        return out


def _structure(evaluation: Evaluation) -> tuple:
    """What must match between two traces for one plan to replay both."""
    return (tuple((e.op, e.operands, e.shape, e.dtype, e.active) for e in evaluation.trace.entries),
            tuple(evaluation.guards))

