"""check_grads: derivatives against numerical differentiation (JAX's method).

A random direction t: the JVP is compared with central differences along t, refined by
Richardson extrapolation; the VJP through the identity <t, vjp(c)> = <jvp(t), c>; order 2
compares the Hessian-vector product with differences of the gradient.
"""
from __future__ import annotations

from typing import Any, Iterable

import attrs
import numpy as np

from . import primitives
from .executor import free_vars
from .ir import Block, Var

TOLERANCE = {"f64": 1e-5, "f32": 2e-2}  # relative and absolute, per dtype
STEP = {"f64": 1e-3, "f32": 3e-2}


class GradCheckError(AssertionError):
    pass


@attrs.frozen
class Comparison:
    what: str
    got: Any
    want: Any
    tolerance: float

    def check(self) -> None:
        got, want = np.asarray(self.got, np.float64), np.asarray(self.want, np.float64)
        err = np.abs(got - want)
        bound = self.tolerance * (1 + np.abs(want))
        if np.all(err <= bound) and np.all(np.isfinite(got)):
            return
        worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.ndim else ()
        raise GradCheckError(
            f"{self.what}: mismatch at index {tuple(int(i) for i in worst)}: got {got[worst]!r}, "
            f"expected {want[worst]!r}; absolute error {err[worst]:.3g}, relative error "
            f"{err[worst] / (abs(want[worst]) + 1e-300):.3g}, tolerance {self.tolerance:g}")


def differentiable_roots(module, var: Var) -> set[int]:
    """The ids of the vars `var` depends on through differentiable operations: a value that
    reaches it only through comparisons, argmax or stop_gradient (a mask) is not among them."""
    wanted = {var.id}
    _walk(module.main, wanted)
    return wanted


def _walk(block: Block, wanted: set[int]) -> None:
    for e in reversed(block.eqns):
        if not any(o.id in wanted for o in e.outputs):
            continue
        if e.prim == "if":  # the condition decides, it is not differentiated
            for region in e.regions:
                wanted.update(r.id for r in region.results)
                _walk(region, wanted)
        elif e.regions:  # a loop: everything carried, conservatively
            wanted.update(i.id for i in e.inputs)
            for region in e.regions:
                wanted.update(r.id for r in region.results)
                _walk(region, wanted)
                wanted |= free_vars(region)
        elif primitives.REGISTRY[e.prim].differentiable:
            wanted.update(i.id for i in e.inputs)


def check_grads(prog, of: str, /, wrt: Iterable[str] | None = None, modes=("forward", "reverse"), order: int = 2,
                seed: int = 0, *, inputs: dict[str, Any] | None = None, **named: Any) -> None:
    """Raise GradCheckError (with position, both values and errors, and the param or input whose
    derivative is wrong) when a derivative is wrong. By default `wrt` is every float param and
    every float input given that `of` depends on differentiably (not a mask used in comparisons).
    Inputs are keywords, or the dict `inputs` for those named like a keyword here (`order`, `seed`)."""
    inputs = {**(inputs or {}), **named}
    if wrt is None:
        reach = differentiable_roots(prog.module, prog._var(of))
        wrt = [n for n, p in prog.module.params.items() if p.kind == "param" and p.var.type.dtype in ("f32", "f64")
               and p.var.id in reach]
        wrt += [n for n in inputs if n in prog.module.inputs and prog.module.inputs[n].var.type.dtype in ("f32", "f64")
                and prog.module.inputs[n].var.id in reach]
        if not wrt:
            raise GradCheckError(f"nothing to check: `{of}` depends differentiably on no float param and on no "
                                 "float input given")
    wrt = prog._wrt(wrt)
    try:
        _check(prog, of, wrt, modes, order, seed, inputs)
    except GradCheckError as joint:
        if len(wrt) == 1:
            raise _naming(joint, wrt[0]) from None
        for n in wrt:  # which root's derivative is wrong: each one alone
            try:
                _check(prog, of, [n], modes, order, seed, inputs)
            except GradCheckError as alone:
                raise _naming(alone, n) from None
        raise GradCheckError(f"{joint} (w.r.t. {', '.join(f'`{n}`' for n in wrt)} together; each alone agrees)") \
            from None


def _naming(error: GradCheckError, name: str) -> GradCheckError:
    text = str(error)
    return GradCheckError(text if f"w.r.t. `{name}`" in text else f"{text} (w.r.t. `{name}`)")


def _check(prog, of: str, wrt: list[str], modes, order: int, seed: int, inputs: dict[str, Any]) -> None:
    rng = np.random.default_rng(seed)
    base = {n: np.array(prog._root_value(n, inputs)) for n in wrt}
    dtype = "f32" if any(v.dtype == np.float32 for v in base.values()) else "f64"
    tol, h = TOLERANCE[dtype], STEP[dtype]
    direction = {n: rng.standard_normal(v.shape).astype(v.dtype) for n, v in base.items()}
    prog.replay_seed = seed
    try:
        def f(point: dict[str, np.ndarray], name: str = of) -> np.ndarray:
            return np.asarray(_at(prog, point, inputs, lambda kw: prog.run(name, inputs=kw)), np.float64)

        def moved(scale: float) -> dict[str, np.ndarray]:
            return {n: (base[n] + scale * direction[n]).astype(base[n].dtype) for n in wrt}

        numeric = _richardson(lambda s: f(moved(s)), h)
        value, tangent = _at(prog, base, inputs, lambda kw: prog.jvp(of, direction, inputs=kw))
        if "forward" in modes:
            Comparison(f"JVP of `{of}` along a random direction", tangent, numeric, tol).check()
        if "reverse" in modes:
            cot = rng.standard_normal(np.shape(value)).astype(np.asarray(value).dtype)
            grads = _at(prog, base, inputs, lambda kw: prog.vjp(of, cot, wrt, inputs=kw))
            lhs = sum(float(np.vdot(direction[n], grads[n])) for n in wrt)
            rhs = float(np.vdot(np.asarray(tangent, np.float64), cot))
            Comparison(f"VJP of `{of}` (<t, vjp(c)> against <jvp(t), c>)", lhs, rhs, tol).check()
        if order >= 2 and np.size(value) == 1:
            hv = _at(prog, base, inputs, lambda kw: prog.hvp(of, wrt, direction, inputs=kw))
            for n in wrt:
                def grad_at(s: float, n=n) -> np.ndarray:
                    return np.asarray(_at(prog, moved(s), inputs, lambda kw: prog.grad(of, wrt, inputs=kw))[n], np.float64)
                Comparison(f"Hessian-vector product of `{of}` w.r.t. `{n}`", hv[n], _richardson(grad_at, h),
                           tol * 10).check()
    finally:
        prog.replay_seed = None


def _richardson(g, h: float) -> np.ndarray:
    d1 = (g(h) - g(-h)) / (2 * h)
    d2 = (g(h / 2) - g(-h / 2)) / h
    return (4 * d2 - d1) / 3


def _at(prog, point: dict[str, np.ndarray], inputs: dict[str, Any], fn):
    """Run fn with params and inputs temporarily set to `point`."""
    saved = {n: prog._store[n] for n in point if n in prog._store}
    kw = dict(inputs)
    for n, v in point.items():
        if n in prog._store:
            prog._store[n] = v
        else:
            kw[n] = v
    try:
        return fn(kw)
    finally:
        prog._store.update(saved)
