"""Optimizer updates as native loop bodies: one loop per param updating the param and its slots
in place (adam: p, m and v in one pass), for the fused training epoch (epochs.py).

Each renderer mirrors its rule in wengert/train/optim.py operation for operation, in the same
order and the same precision: a hyperparameter or a per-step factor (Python floats there, weak
under NumPy's promotion) is cast to the param's dtype before it meets an array element, and the
per-step factors are computed in float64 from the same formulas (`b ** t` as C's pow), so a
native epoch gives the bit-identical params of step-by-step training. An optimizer without a
renderer here keeps its NumPy rule (the step stays native, the update runs in Python).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from .native_codegen import literal


@attrs.frozen
class UpdateCode:
    slots: tuple[str, ...]  # slot names, in the order their arrays are passed
    prologue: list[str]  # scalar statements once per step (t: the step count as a float, lr)
    body: list[str]  # statements per element i (P, G, S_<slot>: flat views)


Renderer = Callable[[dict[str, Any], np.dtype], "UpdateCode | None"]
RENDERERS: dict[str, Renderer] = {}


def renderer(name: str) -> Callable[[Renderer], Renderer]:
    def register(fn: Renderer) -> Renderer:
        RENDERERS[name] = fn
        return fn
    return register


def render(name: str, hyper: dict[str, Any], dtype: np.dtype) -> UpdateCode | None:
    """The native update of optimizer `name` for a param of `dtype`, or None (keep the NumPy rule)."""
    fn = RENDERERS.get(name)
    return None if fn is None or dtype.kind != "f" else fn(hyper, np.dtype(dtype))


def _step_factor(expr: str, dtype: np.dtype) -> str:
    """A per-step Python float, as the param's dtype when it meets an element."""
    return expr if dtype == np.float64 else f"np.float32({expr})"


def _decayed(h: dict[str, Any], dtype: np.dtype) -> str:
    """torch's coupled weight decay, as optim._decayed: g + weight_decay * p."""
    wd = h.get("weight_decay", 0.0)
    return f"G[i] + {literal(wd, dtype)} * P[i]" if wd != 0 else "G[i]"


def _moment(slot: str, beta: float, x: str, dtype: np.dtype, name: str) -> list[str]:
    """`name = beta * S_slot[i] + (1 - beta) * x`, stored back: a running average as optim.py keeps it."""
    return [f"{name} = {literal(beta, dtype)} * S_{slot}[i] + {literal(1 - beta, dtype)} * {x}",
            f"S_{slot}[i] = {name}"]


@renderer("sgd")
def _sgd(h: dict[str, Any], dtype: np.dtype) -> UpdateCode:
    lit = lambda v: literal(v, dtype)  # noqa: E731
    body = [f"g = {_decayed(h, dtype)}"]
    slots: tuple[str, ...] = ()
    if h["momentum"] != 0:
        slots = ("momentum_buffer",)
        body += [f"b = g if t == 1.0 else {lit(h['momentum'])} * S_momentum_buffer[i] + {lit(1 - h['dampening'])} * g",
                 "S_momentum_buffer[i] = b",
                 f"g = g + {lit(h['momentum'])} * b" if h["nesterov"] else "g = b"]
    body.append("P[i] = P[i] - lr_ * g")
    return UpdateCode(slots, [f"lr_ = {_step_factor('lr', dtype)}"], body)


@renderer("adam")
def _adam(h: dict[str, Any], dtype: np.dtype) -> UpdateCode:
    lit = lambda v: literal(v, dtype)  # noqa: E731
    b1, b2 = h["beta1"], h["beta2"]
    prologue = [f"bc2 = {_step_factor(f'math.sqrt(1 - {b2!r} ** t)', dtype)}",
                f"step_ = {_step_factor(f'lr / (1 - {b1!r} ** t)', dtype)}"]
    body = [f"g = {_decayed(h, dtype)}"] + _moment("exp_avg", b1, "g", dtype, "m") \
        + _moment("exp_avg_sq", b2, "g * g", dtype, "v")
    slots = ("exp_avg", "exp_avg_sq")
    if h["amsgrad"]:
        slots += ("max_exp_avg_sq",)
        body += ["v = _maximum(S_max_exp_avg_sq[i], v)", "S_max_exp_avg_sq[i] = v"]
    body += [f"denom = np.sqrt(v) / bc2 + {lit(h['eps'])}", "P[i] = P[i] - step_ * m / denom"]
    return UpdateCode(slots, prologue, body)


@renderer("adagrad")
def _adagrad(h: dict[str, Any], dtype: np.dtype) -> UpdateCode:
    body = [f"g = {_decayed(h, dtype)}", "s = S_sum[i] + g * g", "S_sum[i] = s",
            f"P[i] = P[i] - clr * g / (np.sqrt(s) + {literal(h['eps'], dtype)})"]
    decay = h["lr_decay"]
    return UpdateCode(("sum",), [f"clr = {_step_factor(f'lr / (1 + (t - 1) * {decay!r})', dtype)}"], body)


@renderer("rmsprop")
def _rmsprop(h: dict[str, Any], dtype: np.dtype) -> UpdateCode:
    lit = lambda v: literal(v, dtype)  # noqa: E731
    alpha = h["alpha"]
    body = [f"g = {_decayed(h, dtype)}"] + _moment("square_avg", alpha, "g * g", dtype, "v")
    slots: tuple[str, ...] = ("square_avg",)
    if h["centered"]:
        slots += ("grad_avg",)
        body += _moment("grad_avg", alpha, "g", dtype, "a") + ["v = v - a * a"]
    body.append(f"denom = np.sqrt(v) + {lit(h['eps'])}")
    if h["momentum"] > 0:
        slots += ("momentum_buffer",)
        body += [f"b = {lit(h['momentum'])} * S_momentum_buffer[i] + g / denom", "S_momentum_buffer[i] = b",
                 "P[i] = P[i] - lr_ * b"]
    else:
        body.append("P[i] = P[i] - lr_ * g / denom")
    return UpdateCode(slots, [f"lr_ = {_step_factor('lr', dtype)}"], body)


@renderer("adadelta")
def _adadelta(h: dict[str, Any], dtype: np.dtype) -> UpdateCode:
    lit = lambda v: literal(v, dtype)  # noqa: E731
    rho, eps = h["rho"], h["eps"]
    body = [f"g = {_decayed(h, dtype)}"] + _moment("square_avg", rho, "g * g", dtype, "v") + [
            f"delta = np.sqrt(S_acc_delta[i] + {lit(eps)}) / np.sqrt(v + {lit(eps)}) * g",
            f"S_acc_delta[i] = {lit(rho)} * S_acc_delta[i] + {lit(1 - rho)} * delta * delta",
            "P[i] = P[i] - lr_ * delta"]
    return UpdateCode(("square_avg", "acc_delta"), [f"lr_ = {_step_factor('lr', dtype)}"], body)


@renderer("adamax")
def _adamax(h: dict[str, Any], dtype: np.dtype) -> UpdateCode:
    lit = lambda v: literal(v, dtype)  # noqa: E731
    b1 = h["beta1"]
    body = [f"g = {_decayed(h, dtype)}"] + _moment("exp_avg", b1, "g", dtype, "m") + [
            f"u = _maximum({lit(h['beta2'])} * S_exp_inf[i], abs(g) + {lit(h['eps'])})", "S_exp_inf[i] = u",
            "P[i] = P[i] - step_ * m / u"]
    return UpdateCode(("exp_avg", "exp_inf"), [f"step_ = {_step_factor(f'lr / (1 - {b1!r} ** t)', dtype)}"], body)
