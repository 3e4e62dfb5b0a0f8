"""The Python API: load a program, run it, differentiate it, look at its trace."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .diagnostics import Diagnostic, DiagnosticError, Source, did_you_mean
from .dsl.lower import check_file, lower_source
from .runtime.autodiff import backward, release_unneeded
from .runtime.executor import Context, Evaluation, EvaluationError, free_vars
from .runtime.init import initial_value
from .runtime.ir import Module, Var
from .runtime.ops import Dual, primal
from .runtime.trace import Trace
from .runtime.types import FLOATS, INTS, NUMPY_DTYPE, Sym, format_type
from .train import params as params_file

DEVICES = ("cpu", "opencl", "opencl:P:D")


class FeedError(DiagnosticError):
    """A value fed to an input does not fit its declaration."""


def load(path: str | Path, device: str = "cpu", params: str | Path | None = None) -> "Program":
    """Check and load a .dl file; `params`: a params.npz (from `wengert train`) to start from."""
    prog = Program(check_file(path), device)
    if params is not None:
        prog.load_params(params)
    return prog


def compile(source: str, device: str = "cpu", path: str = "<string>") -> "Program":  # noqa: A001
    return Program(lower_source(Source(path, source)), device)


def _feeds(inputs: dict[str, Any] | None, named: dict[str, Any]) -> dict[str, Any]:
    """Inputs given as keywords and as a dict (the dict reaches inputs named `wrt`, `mode`, `inputs`...)."""
    if inputs is not None and not isinstance(inputs, dict):
        raise TypeError(f"`inputs` must be a dict of input names to values, got {type(inputs).__name__}")
    return {**(inputs or {}), **named}


class Program:
    def __init__(self, module: Module, device: str = "cpu", seed: int | None = None):
        if device != "cpu" and not device.startswith("opencl"):
            raise DiagnosticError([Diagnostic.plain(module.path, f"unknown device `{device}`; available: "
                                                                 + ", ".join(DEVICES))])
        self.module = module
        self.device = device
        # The OpenCL backend (wengert/opencl/) when device is opencl[:P:D]: params, slots and
        # activations then live in its buffers; None on the CPU.
        self.backend = None if device == "cpu" else _opencl_backend(module, device)
        self.seed = module.seed if seed is None else seed  # `--seed` overrides the program's `seed`
        self._store: dict[str, np.ndarray] = {}
        for name, decl in module.params.items():
            shape = tuple(module.dims.resolve_shape(decl.type.shape))
            self._store[name] = self._resident(initial_value(decl, shape, self.seed))
        self._rng = np.random.default_rng(self.seed)
        self.replay_seed: int | None = None  # when set, every evaluation draws the same random numbers
        # When True, every evaluation and reverse pass stops at the first NaN/Inf with an
        # AnomalyError at its source line (runtime/anomaly.py; the CLI's --detect-anomaly).
        self.detect_anomaly: bool = False
        # How value_and_grad runs a step whose Wengert list repeats: "native" (numba code, the
        # default), "numpy" (the NumPy replay) or "off" (interpreted); True and False mean
        # native and off (wengert/compiler/; the CLI's --compile LEVEL, --no-compile).
        self.compile: bool | str = True
        self._plans = None  # compiler.plan.PlanCache, made on first use
        self._inputs_needed: dict[tuple, list[str]] = {}  # by requested var ids (the IR does not change)
        for name, (var, _) in module.updates.items():  # update expressions can be evaluated like values
            module.hidden.setdefault(f"update:{name}", var)

    # ---------------------------------------------------------------- params
    @property
    def params(self) -> dict[str, np.ndarray]:
        """Copies of the params and state, by name."""
        return {k: np.array(v) for k, v in self._store.items()}

    def set_params(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name == "meta" and name not in self._store:  # dict(np.load(params.npz)) has the file's meta
                raise DiagnosticError([Diagnostic.plain(self.module.path, "`meta` is the description a params "
                                                        "file carries, not a param: read the file with "
                                                        "load_params(path)")])
            if name not in self._store:
                raise self._unknown(name, self._store, "param or state")
            want = self._store[name]
            decl = self.module.params[name]
            arr = _numbers(decl, f"{decl.kind} `{name}`", value)
            if arr.size == 1:
                arr = np.broadcast_to(arr.reshape(()), want.shape)
            if arr.shape != want.shape:
                raise FeedError([Diagnostic(decl.span, f"{decl.kind} `{name}` is "
                                                       f"{format_type(decl.type.dtype, want.shape)}, "
                                                       f"but the value given has shape {list(arr.shape)}")])
            self._store[name] = self._resident(np.array(arr, dtype=want.dtype))

    def load_params(self, path: str | Path) -> list[str]:
        """Set every param and state from a params file (`wengert train`'s params.npz, or
        save_params'); refused, naming what differs, unless it fits this program exactly.
        Returns the names loaded."""
        arrays = params_file.load(path, self._store)
        for name, value in arrays.items():
            self._assign(name, value)
        return list(arrays)

    def save_params(self, path: str | Path) -> None:
        """Write the params and state as a params file (atomically; load_params reads it)."""
        params_file.save(path, self.params)

    # ---------------------------------------------------------------- running
    def run(self, name: str | list[str], /, *, inputs: dict[str, Any] | None = None, **named: Any) -> Any:
        """Named values for the inputs given as keywords, or as the dict `inputs` (for inputs named like
        this method's own keywords: `inputs={"mode": ...}`)."""
        inputs = _feeds(inputs, named)
        names = [name] if isinstance(name, str) else list(name)
        evaluation, outs = self._evaluate(names, inputs, record=False)
        values = {n: np.array(primal(v)) for n, v in zip(names, outs)}
        return values[names[0]] if isinstance(name, str) else values

    def apply_updates(self, inputs: dict[str, Any] | None = None, training: bool = True) -> dict[str, np.ndarray]:
        """Evaluate every `update NAME = EXPR` with the current values, then assign them all
        at once (Theano's `updates`); returns the new values."""
        updates = self.module.updates
        if not updates:
            return {}
        names = list(updates)
        _, outs = self._evaluate([f"update:{n}" for n in names], dict(inputs or {}), record=False,
                                 training=training)
        new = {n: self._assign(n, primal(v)) for n, v in zip(names, outs)}
        return {n: np.array(v) for n, v in new.items()}

    def train(self, name: str | None = None, progress: bool | None = None, **overrides: Any) -> list[dict[str, float]]:
        """Run a `train` block in place (the params change); returns the history, one dict per epoch.
        With `progress` (by default: in a Jupyter notebook) it is drawn as it goes (progress.py)."""
        from .progress import ConsoleReport, in_notebook
        from .train.loop import Trainer
        show = in_notebook() if progress is None else progress
        return Trainer(self, name, overrides, report=ConsoleReport() if show else None).run()

    def value_and_grad(self, of: str, wrt: list[str], inputs: dict[str, Any], also: list[str] = (),
                       training: bool = False, compile: bool | None = None,  # noqa: A002
                       resident: bool = False) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """One evaluation of `of` (and the values `also`), then reverse mode: (values, grads).
        With `compile` (default: `self.compile`), a repeating step runs as a compiled plan.
        With `resident` on a device, values and grads stay in device buffers (the Trainer's step)."""
        if not self.detect_anomaly and self.device == "cpu":
            from .compiler.plan import PlanCache, compile_level
            level = compile_level(self.compile if compile is None else compile)
            if level != "off":
                if self._plans is None:
                    self._plans = PlanCache(self)
                return self._plans.value_and_grad(of, list(wrt), inputs, list(also), training, resident=resident,
                                                  level=level)
        names = [of] + [n for n in also if n != of]
        evaluation, outs = self._evaluate(names, inputs, record=True, active=wrt, training=training)
        values = {n: primal(v) for n, v in zip(names, outs)}
        self._require_scalar(of, values[of])
        output = evaluation.entry_of[self._var(of).id]
        release_unneeded(evaluation.trace, output)
        self._backward(evaluation.trace, output)
        return values, {n: self._adjoint(evaluation, n, inputs, host=not resident) for n in wrt}

    def trace(self, of: str, /, *, inputs: dict[str, Any] | None = None, **named: Any) -> Trace:
        inputs = _feeds(inputs, named)
        evaluation, _ = self._evaluate([of], inputs, record=True)
        return evaluation.trace

    def trace_with_derivatives(self, of: str, inputs: dict[str, Any], adjoints: bool = False,
                               tangents: dict[str, Any] | None = None, wrt: Iterable[str] | None = None) -> Trace:
        """A trace whose entries also carry adjoints (reverse mode, w.r.t. `wrt` or every float
        root) and/or tangents (forward mode along the given directions)."""
        seeds = self._seeds(tangents or {}, inputs)
        if wrt is None:
            wrt = [n for n, d in list(self.module.inputs.items()) + list(self.module.params.items())
                   if d.var.type.dtype in FLOATS and (n in inputs or n in self.module.params)]
        evaluation, (out,) = self._evaluate([of], inputs, record=True, active=list(wrt) if adjoints else [],
                                            tangents=seeds)
        for entry in evaluation.trace.entries:
            if isinstance(entry.value, Dual):
                entry.tangent = entry.value.tangent
        if adjoints:
            self._require_scalar(of, primal(out))
            self._backward(evaluation.trace, evaluation.entry_of[self._var(of).id])
        return evaluation.trace

    def graph(self, of: str, /, trace: bool = False, adjoints: bool = False, expand: bool = False,
              **inputs: Any):
        """The picture of `wengert graph` (the dataflow graph, or with `trace` the Wengert list; with
        `adjoints` each node's adjoint) as a `Drawing`: Jupyter shows its SVG, `.save(path)` writes it."""
        from .inspect.graph import Drawing, graph_dot
        return Drawing(graph_dot(self, of, inputs, trace=trace, adjoints=adjoints, expand=expand))

    def _repr_html_(self) -> str:  # Jupyter: the program's inputs, params and values with their types
        m = self.module
        rows = [("input", n, d.var.type) for n, d in m.inputs.items()]
        rows += [(p.kind, n, p.type) for n, p in m.params.items()]
        rows += [("value", n, v.type) for n, v in m.values.items()]
        body = "".join(f"<tr><td>{k}</td><td><code>{html.escape(n)}</code></td>"
                       f"<td><code>{html.escape(format_type(t.dtype, m.dims.resolve_shape(t.shape)))}</code></td></tr>"
                       for k, n, t in rows)
        return (f"<p><code>{html.escape(Path(m.path).name)}</code>: {len(m.inputs)} inputs, "
                f"{sum(p.kind == 'param' for p in m.params.values())} params ({m.param_count:,} numbers), "
                f"{len(m.values)} values; seed {self.seed}</p>"
                f'<table class="wengert-program"><thead><tr><th>kind</th><th>name</th><th>type</th></tr></thead>'
                f"<tbody>{body}</tbody></table>")

    # ---------------------------------------------------------------- derivatives
    def grad(self, of: str, /, wrt: Iterable[str] | None = None, mode: str = "reverse", *,
             inputs: dict[str, Any] | None = None, **named: Any) -> dict[str, np.ndarray]:
        inputs = _feeds(inputs, named)
        wrt = self._wrt(wrt)
        if mode == "reverse":
            return self.vjp(of, None, wrt, inputs=inputs)
        if mode != "forward":
            raise ValueError(f'mode must be "reverse" or "forward", got {mode!r}')
        # Forward mode: all directions at once, one identity block per root.
        sizes = [self._root_value(n, inputs).size for n in wrt]
        total, offset, seeds = sum(sizes), 0, {}
        for n, size in zip(wrt, sizes):
            value = self._root_value(n, inputs)
            t = np.zeros((total, size), dtype=value.dtype)
            t[offset:offset + size] = np.eye(size, dtype=value.dtype)
            seeds[n] = t.reshape((total,) + value.shape)
            offset += size
        _, (out,) = self._evaluate([of], inputs, record=False, tangents=seeds)
        self._require_scalar(of, primal(out))
        flat = out.tangent.reshape(total) if isinstance(out, Dual) else np.zeros(total)
        result, offset = {}, 0
        for n, size in zip(wrt, sizes):
            root = self._root_value(n, inputs)
            result[n] = np.array(flat[offset:offset + size].reshape(root.shape).astype(root.dtype))
            offset += size
        return result

    def jvp(self, of: str, /, tangents: dict[str, Any], *, inputs: dict[str, Any] | None = None,
            **named: Any) -> tuple[np.ndarray, np.ndarray]:
        """(value, its derivative along `tangents`: a direction per float input or param, each of
        its shape; the others stay fixed)."""
        inputs = _feeds(inputs, named)
        seeds = self._seeds(tangents, inputs)
        _, (out,) = self._evaluate([of], inputs, record=False, tangents=seeds)
        value = np.array(primal(out))
        return value, (np.array(out.tangent[0]) if isinstance(out, Dual) else np.zeros_like(value))

    def vjp(self, of: str, /, cotangent: Any = None, wrt: Iterable[str] | None = None, *,
            inputs: dict[str, Any] | None = None, **named: Any) -> dict[str, np.ndarray]:
        inputs = _feeds(inputs, named)
        wrt = self._wrt(wrt)
        evaluation, (out,) = self._evaluate([of], inputs, record=True, active=wrt)
        if cotangent is None:
            self._require_scalar(of, primal(out))
        else:
            cotangent = np.asarray(cotangent, dtype=np.asarray(primal(out)).dtype).reshape(np.shape(primal(out)))
        trace = evaluation.trace
        output = evaluation.entry_of[self._var(of).id]
        release_unneeded(trace, output)
        self._backward(trace, output, cotangent)
        return {n: self._adjoint(evaluation, n, inputs) for n in wrt}

    def hvp(self, of: str, /, wrt: Iterable[str] | None = None, vector: dict[str, Any] | None = None, *,
            inputs: dict[str, Any] | None = None, **named: Any) -> dict[str, np.ndarray]:
        """Hessian-vector product by forward-over-reverse: H v, where `vector` gives v's part for
        some of `wrt` (each of its shape; the parts not given are zero)."""
        inputs = _feeds(inputs, named)
        wrt = self._wrt(wrt)
        if not vector:
            raise DiagnosticError([Diagnostic.plain(self.module.path, "hvp needs a vector: a direction for one or "
                                                                      f"more of {', '.join(wrt)}, such as "
                                                                      f"vector={{'{wrt[0]}': ...}}" if wrt else
                                                    "hvp needs a vector")])
        outside = [n for n in vector if n not in wrt]
        if outside:
            self._wrt(outside)  # an unknown name or a non-float one is reported as such
            raise DiagnosticError([Diagnostic.plain(self.module.path, f"the vector has a part for `{outside[0]}`, "
                                                                      "which is not differentiated (wrt: "
                                                                      f"{', '.join(wrt)}); add it to wrt")])
        seeds = self._seeds(vector, inputs)
        evaluation, (out,) = self._evaluate([of], inputs, record=True, active=wrt, tangents=seeds)
        self._require_scalar(of, primal(out))
        self._backward(evaluation.trace, evaluation.entry_of[self._var(of).id])
        result = {}
        for n in wrt:
            entry = self._root_entry(evaluation, n)
            adj = entry.adjoint if entry is not None else None
            value = self._root_value(n, inputs)
            result[n] = np.array(adj.tangent[0]) if isinstance(adj, Dual) and adj.tangent is not None \
                else np.zeros(value.shape, value.dtype)
        return result

    # ---------------------------------------------------------------- internals
    def _backward(self, trace: Trace, output: int, cotangent: Any = None) -> None:
        """Reverse mode, honouring `detect_anomaly`."""
        backward(trace, output, cotangent, detect_anomaly=self.detect_anomaly, path=self.module.path)

    def _var(self, name: str) -> Var:
        m = self.module
        if name in m.values:
            return m.values[name]
        if name in m.hidden:
            return m.hidden[name]
        if name in m.inputs:
            return m.inputs[name].var
        if name in m.params:
            return m.params[name].var
        raise self._unknown(name, list(m.values) + list(m.inputs) + list(m.params), "value")

    def _unknown(self, name: str, candidates, what: str) -> DiagnosticError:
        return DiagnosticError([Diagnostic.plain(self.module.path, f"unknown {what} `{name}`"
                                                 + did_you_mean(name, candidates))])

    def _wrt(self, wrt: Iterable[str] | None) -> list[str]:
        if wrt is None:
            return [n for n, p in self.module.params.items() if p.kind == "param"]
        names = [wrt] if isinstance(wrt, str) else list(wrt)
        for n in names:
            if n not in self.module.params and n not in self.module.inputs:
                raise self._unknown(n, list(self.module.params) + list(self.module.inputs), "param, state or input")
            decl = self.module.params.get(n) or self.module.inputs.get(n)
            if decl.var.type.dtype not in FLOATS:
                raise DiagnosticError([Diagnostic(decl.span, f"cannot differentiate with respect to `{n}`: "
                                                              f"it is {decl.var.type.dtype}, not a float")])
        return names

    def _seeds(self, tangents: dict[str, Any], inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """Forward-mode seeds (one direction each) for float inputs and params, checked: an
        unknown name, a non-float root or a direction of another shape is a diagnostic."""
        self._wrt(list(tangents))
        seeds = {}
        for n, t in tangents.items():
            value = self._root_value(n, inputs)
            decl = self.module.params.get(n) or self.module.inputs[n]
            arr = _numbers(decl, f"the direction for `{n}`", t)
            if arr.shape != value.shape and arr.size != 1:
                raise FeedError([Diagnostic(decl.span, f"the direction for `{n}` has shape {list(arr.shape)}, but "
                                                       f"`{n}` has shape {list(value.shape)}")])
            seeds[n] = np.broadcast_to(arr.astype(value.dtype), value.shape).reshape((1,) + value.shape)
        return seeds

    def _root_value(self, name: str, inputs: dict[str, Any]) -> np.ndarray:
        if name in self._store:
            return self._store[name]
        decl = self.module.inputs[name]
        if name not in inputs:
            raise FeedError([Diagnostic(decl.span, f"input `{name}` is needed but was not given")])
        return self._convert(name, inputs[name])

    def _root_entry(self, evaluation: Evaluation, name: str):
        var = self.module.params[name].var if name in self.module.params else self.module.inputs[name].var
        index = evaluation.entry_of.get(var.id)
        return evaluation.trace.entries[index] if index is not None else None

    def _adjoint(self, evaluation: Evaluation, name: str, inputs, host: bool = True) -> np.ndarray:
        entry = self._root_entry(evaluation, name)
        value = self._root_value(name, inputs)
        if entry is None or entry.adjoint is None:
            return np.zeros(value.shape, value.dtype) if host else np.zeros_like(value)
        adj = primal(entry.adjoint)
        if not host:  # stays where it was computed (a device buffer for the Trainer)
            return (adj if adj.dtype == value.dtype else adj.astype(value.dtype)).reshape(value.shape)
        return np.array(adj, dtype=value.dtype).reshape(value.shape)

    # ---------------------------------------------------------------- device residency
    def _resident(self, value: np.ndarray) -> Any:
        """A param/state value as the store keeps it: on the device when there is one."""
        return value if self.backend is None else self.backend.to_device(value)

    def _assign(self, name: str, value: Any) -> Any:
        """Store a new value of a param/state (an `update`, a restored checkpoint), in its dtype
        and shape, without a round trip through the host when it is already on the device."""
        want = self._store[name]
        if self.backend is not None and type(value) is type(want):
            new = (value if value.dtype == want.dtype else value.astype(want.dtype)).reshape(want.shape)
        else:
            new = self._resident(np.array(value, dtype=want.dtype).reshape(want.shape))
        self._store[name] = new
        return new

    def _require_scalar(self, of: str, value: Any) -> None:
        if np.size(value) != 1:
            message = (f"`{of}` has shape {list(np.shape(value))}; a gradient needs a scalar (reduce it with mean "
                       "or sum, or use vjp with a cotangent)")
            span = self._definition(of)
            raise DiagnosticError([Diagnostic(span, message) if span else Diagnostic.plain(self.module.path, message)])

    def _definition(self, name: str):
        """The source span of the equation that computes a named value, if any."""
        var = self._var(name)
        return next((e.span for e in self.module.main.eqns if var in e.outputs), None)

    def _convert(self, name: str, value: Any) -> np.ndarray:
        decl = self.module.inputs[name]
        return np.asarray(_numbers(decl, f"input `{name}`", value), dtype=NUMPY_DTYPE[decl.var.type.dtype])

    def _bind_dims(self, fed: dict[str, np.ndarray]) -> dict[str, int]:
        dims = self.module.dims
        bindings: dict[str, int] = {}
        where: dict[str, str] = {}
        for name, arr in fed.items():
            decl = self.module.inputs[name]
            declared = dims.resolve_shape(decl.var.type.shape)
            shown = format_type(decl.var.type.dtype, decl.var.type.shape)

            def fail(message: str) -> FeedError:
                return FeedError([Diagnostic(decl.span, f"input `{name}` is declared {shown} but was fed shape "
                                                        f"{list(arr.shape)}: {message}")])
            if arr.ndim != len(declared):
                raise fail(f"rank {arr.ndim} instead of {len(declared)}")
            for axis, (d, n) in enumerate(zip(declared, arr.shape)):
                if isinstance(d, int):
                    if d != n:
                        raise fail(f"dim {axis} is {n}, expected {d}")
                elif isinstance(d, Sym):
                    sym = decl.var.type.shape[axis]
                    if d.name in bindings and bindings[d.name] != n:
                        raise fail(f"symbolic dim `{sym}` is {n} here but {bindings[d.name]} in input "
                                   f"`{where[d.name]}`")
                    bindings[d.name] = n
                    where[d.name] = name
        return bindings

    def _evaluate(self, names: list[str], inputs: dict[str, Any], record: bool, active: list[str] = (),
                  tangents: dict[str, np.ndarray] | None = None, training: bool = False,
                  rng: np.random.Generator | None = None) -> tuple[Evaluation, list[Any]]:
        outputs = [self._var(n) for n in names]
        unknown = [k for k in inputs if k not in self.module.inputs]
        if unknown:
            decl = self.module.params.get(unknown[0])
            if decl is not None:
                raise FeedError([Diagnostic(decl.span, f"`{decl.name}` is a {decl.kind}, not an input: set it with "
                                                       "set_params or load_params (the CLI's --params P.npz)")])
            raise self._unknown(unknown[0], self.module.inputs, "input")
        needed = self._needed_inputs(outputs)
        fed = {n: self._root_value(n, inputs) for n in needed}
        for n in inputs:
            fed.setdefault(n, self._convert(n, inputs[n]))
        if self.backend is not None:  # data goes to the device once per evaluation; scalars stay kernel arguments
            fed = {n: self._upload(v) for n, v in fed.items()}
            tangents = {n: self._upload(t) for n, t in (tangents or {}).items()}
        bindings = self._bind_dims(fed)
        tangents = tangents or {}
        roots: dict[int, tuple[str, str, Any]] = {}
        for n, decl in self.module.inputs.items():
            if n in fed:
                roots[decl.var.id] = ("input", n, _with_tangent(fed[n], tangents.get(n)))
        for n, decl in self.module.params.items():
            roots[decl.var.id] = (decl.kind, n, _with_tangent(self._store[n], tangents.get(n)))
        active_ids = {self._var(n).id for n in active}
        if rng is None:
            rng = self._rng if self.replay_seed is None else np.random.default_rng(self.replay_seed)
        ctx = Context(rng, training, bindings, device=self.backend)
        evaluation = Evaluation(self.module, roots, ctx, record, active_ids, detect_anomaly=self.detect_anomaly)
        try:
            outs = evaluation.run(outputs)
        except EvaluationError as e:
            raise DiagnosticError([Diagnostic(e.span, str(e))]) from None
        if record:
            for n, v in zip(names, outputs):
                evaluation.trace.outputs[n] = evaluation.entry_of.get(v.id, -1)
        return evaluation, outs

    def _upload(self, value: Any) -> Any:
        return value if np.ndim(value) == 0 and type(value) is np.ndarray else self.backend.to_device(value)

    def _needed_inputs(self, outputs: list[Var]) -> list[str]:
        key = tuple(v.id for v in outputs)
        if key not in self._inputs_needed:
            self._inputs_needed[key] = self._find_needed_inputs(outputs)
        return self._inputs_needed[key]

    def _find_needed_inputs(self, outputs: list[Var]) -> list[str]:
        ids = {v.id for v in outputs}
        for e in reversed(self.module.main.eqns):
            if any(o.id in ids for o in e.outputs):
                ids.update(i.id for i in e.inputs)
                for r in e.regions:
                    ids |= free_vars(r)
        return [n for n, d in self.module.inputs.items() if d.var.id in ids]


def _opencl_backend(module: Module, device: str):
    """The backend of an opencl[:P:D] device, after checking that it can run the module: every
    primitive has a kernel (no silent fallback to the CPU) and f64 only with cl_khr_fp64."""
    from .opencl import NoOpenCLError
    try:
        from .opencl.backend import (
            get_backend,
            missing_kernels,
            module_dtypes,
            module_prims,
        )
        backend = get_backend(device)
    except (NoOpenCLError, ValueError, ImportError) as e:
        raise DiagnosticError([Diagnostic.plain(module.path, str(e))]) from None
    missing = missing_kernels(module_prims(module.main))
    if missing:
        raise DiagnosticError([Diagnostic.plain(module.path, f"no OpenCL kernel for {', '.join(missing)}: the program "
                                                             f"cannot run on `{device}`")])
    dtypes = module_dtypes(module.main) | {d.var.type.dtype for d in list(module.params.values())
                                           + list(module.inputs.values())}
    if "f64" in dtypes and not backend.fp64:
        raise DiagnosticError([Diagnostic.plain(module.path, f"the program uses f64, but the OpenCL device "
                                                             f"{backend.info.name!r} has no f64 support "
                                                             f"(cl_khr_fp64); use f32 or another device")])
    return backend


def _numbers(decl, what: str, value: Any) -> np.ndarray:
    """`value` as an array for a declaration (an input, a param or state): numbers, and whole
    numbers where the declared dtype is an integer one (nothing is truncated silently)."""
    try:
        arr = np.asarray(value)
    except ValueError as e:  # a ragged nested list
        raise FeedError([Diagnostic(decl.span, f"{what}: the value given is not an array ({e})")]) from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise FeedError([Diagnostic(decl.span, f"{what} needs numbers, got {arr.dtype} data")])
    dtype = decl.var.type.dtype
    if dtype in INTS and arr.dtype.kind == "f" and not np.all(np.mod(arr, 1) == 0):
        raise FeedError([Diagnostic(decl.span, f"{what} is {dtype}, but the value given has non-integer "
                                               f"{arr.dtype} entries")])
    if dtype in INTS and arr.size and arr.dtype.kind in "fiu":
        info = np.iinfo(NUMPY_DTYPE[dtype])
        low, high = arr.min(), arr.max()
        if low < info.min or high > info.max:  # numpy would wrap around (or make INT_MIN) silently
            raise FeedError([Diagnostic(decl.span, f"{what} is {dtype}, but the value given holds "
                                                   f"{high if high > info.max else low:.6g}, outside "
                                                   f"{info.min}..{info.max}")])
    return arr


def _with_tangent(value: np.ndarray, tangent: np.ndarray | None) -> Any:
    return Dual(value, tangent) if tangent is not None else value
