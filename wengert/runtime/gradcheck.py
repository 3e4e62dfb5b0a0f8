"""check_grads: derivatives against numerical differentiation (JAX's method).

A random direction t: the JVP is compared with central differences along t, refined by
Richardson extrapolation; the VJP through the identity <t, vjp(c)> = <jvp(t), c>; order 2
compares the Hessian-vector product with differences of the gradient.
"""
from __future__ import annotations

from typing import Any, Iterable

import attrs
import numpy as np

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


def check_grads(prog, of: str, wrt: Iterable[str] | None = None, modes=("forward", "reverse"), order: int = 2,
                seed: int = 0, **inputs: Any) -> None:
    """Raise GradCheckError (with position, both values and errors) when a derivative is wrong."""
    if wrt is None:  # every float param and every float input that was given
        wrt = [n for n, p in prog.module.params.items() if p.kind == "param" and p.var.type.dtype in ("f32", "f64")]
        wrt += [n for n in inputs if n in prog.module.inputs and prog.module.inputs[n].var.type.dtype in ("f32", "f64")]
        if not wrt:
            raise GradCheckError(f"nothing to check: `{of}` has no float params and no float inputs were given")
    wrt = prog._wrt(wrt)
    rng = np.random.default_rng(seed)
    base = {n: np.array(prog._root_value(n, inputs)) for n in wrt}
    dtype = "f32" if any(v.dtype == np.float32 for v in base.values()) else "f64"
    tol, h = TOLERANCE[dtype], STEP[dtype]
    direction = {n: rng.standard_normal(v.shape).astype(v.dtype) for n, v in base.items()}
    prog.replay_seed = seed
    try:
        def f(point: dict[str, np.ndarray], name: str = of) -> np.ndarray:
            return np.asarray(_at(prog, point, inputs, lambda kw: prog.run(name, **kw)), np.float64)

        def moved(scale: float) -> dict[str, np.ndarray]:
            return {n: (base[n] + scale * direction[n]).astype(base[n].dtype) for n in wrt}

        numeric = _richardson(lambda s: f(moved(s)), h)
        value, tangent = _at(prog, base, inputs, lambda kw: prog.jvp(of, direction, **kw))
        if "forward" in modes:
            Comparison(f"JVP of `{of}` along a random direction", tangent, numeric, tol).check()
        if "reverse" in modes:
            cot = rng.standard_normal(np.shape(value)).astype(np.asarray(value).dtype)
            grads = _at(prog, base, inputs, lambda kw: prog.vjp(of, cot, wrt, **kw))
            lhs = sum(float(np.vdot(direction[n], grads[n])) for n in wrt)
            rhs = float(np.vdot(np.asarray(tangent, np.float64), cot))
            Comparison(f"VJP of `{of}` (<t, vjp(c)> against <jvp(t), c>)", lhs, rhs, tol).check()
        if order >= 2 and np.size(value) == 1:
            hv = _at(prog, base, inputs, lambda kw: prog.hvp(of, wrt, direction, **kw))
            for n in wrt:
                def grad_at(s: float, n=n) -> np.ndarray:
                    return np.asarray(_at(prog, moved(s), inputs, lambda kw: prog.grad(of, wrt, **kw))[n], np.float64)
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
