"""Optimizers, learning-rate schedules, gradient clipping and gradient noise for `train` blocks.

Each update rule follows the algorithm box of its torch.optim documentation page (the
equilibrated SGD of Dauphin et al. 2015 and the gradient noise of Neelakantan et al. 2015
follow their papers); docs/optimizers.md writes every rule out with its source. Rules are
element-wise NumPy in each parameter's own dtype (f32 stays f32); scalar factors such as
bias corrections are computed as Python floats, as torch does.

An optimizer is a `Rule`: `slots(hyper, param)` names the per-parameter state arrays and
their initial values, `update(hyper, param, grad, slots, t, lr)` returns the new value of
the parameter (and updates its slots in place) for step `t` (counting from 1). The
registry `RULES` maps optimizer names to rules; ESGD needs Hessian-vector products and is
handled by `Optimizer.step`, which feeds its curvature estimate into the rule.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]
Hyper = dict[str, Any]

# The keywords of each optimizer with torch.optim's defaults (docs/optimizers.md has each rule and its
# source); the checker validates a train block's `optimizer = ...` against this table.
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.001, "momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0},
    "adagrad": {"lr": 0.01, "lr_decay": 0.0, "weight_decay": 0.0, "eps": 1e-10},
    "rmsprop": {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0, "centered": False},
    "adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0},
    "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False},
    "adamax": {"lr": 0.002, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
    "nadam": {"lr": 0.002, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "momentum_decay": 0.004},
    "rprop": {"lr": 0.01, "eta_minus": 0.5, "eta_plus": 1.2, "step_min": 1e-6, "step_max": 50.0},
    "esgd": {"lr": 0.01, "eps": 1e-4, "weight_decay": 0.0, "update_every": 20},
}


# ----------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rule:
    """How one optimizer keeps state and updates one parameter."""
    slots: Callable[[Hyper, np.ndarray], Arrays]
    update: Callable[[Hyper, np.ndarray, np.ndarray, Arrays, int, float], np.ndarray]


def _decayed(h: Hyper, p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """torch's (coupled) weight decay: g + weight_decay * theta."""
    return g + h["weight_decay"] * p if h.get("weight_decay", 0.0) != 0 else g


def _sgd_slots(h: Hyper, p: np.ndarray) -> Arrays:
    return {"momentum_buffer": np.zeros_like(p)} if h["momentum"] != 0 else {}


def _sgd(h: Hyper, p: np.ndarray, g: np.ndarray, s: Arrays, t: int, lr: float) -> np.ndarray:
    g = _decayed(h, p, g)
    mu = h["momentum"]
    if mu != 0:
        buf = s["momentum_buffer"]
        buf[...] = g if t == 1 else mu * buf + (1 - h["dampening"]) * g
        g = g + mu * buf if h["nesterov"] else buf
    return p - lr * g


def _adagrad_slots(h: Hyper, p: np.ndarray) -> Arrays:
    return {"sum": np.zeros_like(p)}


def _adagrad(h: Hyper, p: np.ndarray, g: np.ndarray, s: Arrays, t: int, lr: float) -> np.ndarray:
    g = _decayed(h, p, g)
    clr = lr / (1 + (t - 1) * h["lr_decay"])
    s["sum"] += g * g
    return p - clr * g / (np.sqrt(s["sum"]) + h["eps"])


def _rmsprop_slots(h: Hyper, p: np.ndarray) -> Arrays:
    slots = {"square_avg": np.zeros_like(p)}
    if h["centered"]:
        slots["grad_avg"] = np.zeros_like(p)
    if h["momentum"] > 0:
        slots["momentum_buffer"] = np.zeros_like(p)
    return slots


def _rmsprop(h: Hyper, p: np.ndarray, g: np.ndarray, s: Arrays, t: int, lr: float) -> np.ndarray:
    g = _decayed(h, p, g)
    alpha = h["alpha"]
    s["square_avg"][...] = alpha * s["square_avg"] + (1 - alpha) * g * g
    v = s["square_avg"]
    if h["centered"]:
        s["grad_avg"][...] = alpha * s["grad_avg"] + (1 - alpha) * g
        v = v - s["grad_avg"] * s["grad_avg"]
    denom = np.sqrt(v) + h["eps"]
    if h["momentum"] > 0:
        s["momentum_buffer"][...] = h["momentum"] * s["momentum_buffer"] + g / denom
        return p - lr * s["momentum_buffer"]
    return p - lr * g / denom


def _adadelta_slots(h: Hyper, p: np.ndarray) -> Arrays:
    return {"square_avg": np.zeros_like(p), "acc_delta": np.zeros_like(p)}


def _adadelta(h: Hyper, p: np.ndarray, g: np.ndarray, s: Arrays, t: int, lr: float) -> np.ndarray:
    g = _decayed(h, p, g)
    rho, eps = h["rho"], h["eps"]
    s["square_avg"][...] = rho * s["square_avg"] + (1 - rho) * g * g
    delta = np.sqrt(s["acc_delta"] + eps) / np.sqrt(s["square_avg"] + eps) * g
    s["acc_delta"][...] = rho * s["acc_delta"] + (1 - rho) * delta * delta
    return p - lr * delta


def _adam_slots(h: Hyper, p: np.ndarray) -> Arrays:
    slots = {"exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p)}
    if h["amsgrad"]:
        slots["max_exp_avg_sq"] = np.zeros_like(p)
    return slots


def _adam(h: Hyper, p: np.ndarray, g: np.ndarray, s: Arrays, t: int, lr: float) -> np.ndarray:
    g = _decayed(h, p, g)
    b1, b2 = h["beta1"], h["beta2"]
    s["exp_avg"][...] = b1 * s["exp_avg"] + (1 - b1) * g
    s["exp_avg_sq"][...] = b2 * s["exp_avg_sq"] + (1 - b2) * g * g
    v = s["exp_avg_sq"]
    if h["amsgrad"]:
        np.maximum(s["max_exp_avg_sq"], v, out=s["max_exp_avg_sq"])
        v = s["max_exp_avg_sq"]
    # m_hat / (sqrt(v_hat) + eps), arranged as torch computes it
    denom = np.sqrt(v) / math.sqrt(1 - b2 ** t) + h["eps"]
    return p - (lr / (1 - b1 ** t)) * s["exp_avg"] / denom


def _adamax_slots(h: Hyper, p: np.ndarray) -> Arrays:
    return {"exp_avg": np.zeros_like(p), "exp_inf": np.zeros_like(p)}


def _adamax(h: Hyper, p: np.ndarray, g: np.ndarray, s: Arrays, t: int, lr: float) -> np.ndarray:
    g = _decayed(h, p, g)
    b1 = h["beta1"]
    s["exp_avg"][...] = b1 * s["exp_avg"] + (1 - b1) * g
    s["exp_inf"][...] = np.maximum(h["beta2"] * s["exp_inf"], np.abs(g) + h["eps"])
    return p - (lr / (1 - b1 ** t)) * s["exp_avg"] / s["exp_inf"]


def _nadam_slots(h: Hyper, p: np.ndarray) -> Arrays:
    # mu_product (the product of the momentum coefficients so far) is a float64 scalar
    return {"exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p), "mu_product": np.array(1.0)}


def _nadam_mu(h: Hyper, t: int) -> float:
    return h["beta1"] * (1 - 0.5 * 0.96 ** (t * h["momentum_decay"]))


def _nadam(h: Hyper, p: np.ndarray, g: np.ndarray, s: Arrays, t: int, lr: float) -> np.ndarray:
    g = _decayed(h, p, g)
    b1, b2 = h["beta1"], h["beta2"]
    mu, mu_next = _nadam_mu(h, t), _nadam_mu(h, t + 1)
    mu_product = float(s["mu_product"]) * mu
    mu_product_next = mu_product * mu_next
    s["mu_product"][...] = mu_product
    s["exp_avg"][...] = b1 * s["exp_avg"] + (1 - b1) * g
    s["exp_avg_sq"][...] = b2 * s["exp_avg_sq"] + (1 - b2) * g * g
    denom = np.sqrt(s["exp_avg_sq"] / (1 - b2 ** t)) + h["eps"]
    p = p - (lr * (1 - mu) / (1 - mu_product)) * g / denom
    return p - (lr * mu_next / (1 - mu_product_next)) * s["exp_avg"] / denom


def _rprop_slots(h: Hyper, p: np.ndarray) -> Arrays:
    # torch sets every step size to the group's lr when the state is created: the base lr
    return {"prev": np.zeros_like(p), "step_size": np.full_like(p, h["lr"])}


def _rprop(h: Hyper, p: np.ndarray, g: np.ndarray, s: Arrays, t: int, lr: float) -> np.ndarray:
    product = g * s["prev"]
    factor = np.where(product > 0, h["eta_plus"], np.where(product < 0, h["eta_minus"], 1.0))
    s["step_size"][...] = np.clip(s["step_size"] * factor.astype(p.dtype), h["step_min"], h["step_max"])
    g = np.where(product < 0, np.zeros_like(g), g)  # after a sign change: no move, forget g
    s["prev"][...] = g
    return p - np.sign(g) * s["step_size"]


def _esgd_slots(h: Hyper, p: np.ndarray) -> Arrays:
    # D: the running sum of (H v)^2 (Dauphin et al. 2015, Algorithm 1)
    return {"curvature": np.zeros_like(p)}


def _esgd(h: Hyper, p: np.ndarray, g: np.ndarray, s: Arrays, t: int, lr: float) -> np.ndarray:
    g = _decayed(h, p, g)
    samples = (t - 1) // h["update_every"] + 1  # D was last updated at step_count % update_every == 0
    return p - lr * g / (np.sqrt(s["curvature"] / samples) + h["eps"])


RULES: dict[str, Rule] = {
    "sgd": Rule(_sgd_slots, _sgd),
    "adagrad": Rule(_adagrad_slots, _adagrad),
    "rmsprop": Rule(_rmsprop_slots, _rmsprop),
    "adadelta": Rule(_adadelta_slots, _adadelta),
    "adam": Rule(_adam_slots, _adam),
    "adamax": Rule(_adamax_slots, _adamax),
    "nadam": Rule(_nadam_slots, _nadam),
    "rprop": Rule(_rprop_slots, _rprop),
    "esgd": Rule(_esgd_slots, _esgd),
}


def _normalize(value: Any, default: Any) -> Any:
    """A hyperparameter as a Python scalar of its default's type (flags bool, counts int,
    the rest float), so that f32 arrays stay f32 under NumPy's promotion rules."""
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, int) and float(value).is_integer():
        return int(value)
    return float(value)


def _array(x: Any, dtype: Any = None) -> Any:
    """x as an array of `dtype`, leaving arrays of other backends (OpenCL device arrays) where they are."""
    if getattr(x, "backend", None) is not None:
        return x if dtype is None or x.dtype == dtype else x.astype(dtype)
    return np.asarray(x, dtype=dtype)


# ----------------------------------------------------------------------------- optimizer
class Optimizer:
    """One optimizer's state over a set of named parameters; `step` updates them in place.

    Missing keywords take the defaults of `OPTIMIZERS`.
    """

    def __init__(self, name: str, hyper: dict[str, float], params: Arrays, seed: int = 0):
        if name not in RULES:
            raise ValueError(f"unknown optimizer `{name}`; known: {', '.join(RULES)}")
        unknown = sorted(set(hyper) - set(OPTIMIZERS[name]))
        if unknown:
            raise ValueError(f"optimizer `{name}` has no argument {', '.join(unknown)}; "
                             f"known: {', '.join(OPTIMIZERS[name])}")
        self.name = name
        self.hyper: Hyper = {k: _normalize(v, OPTIMIZERS[name][k]) for k, v in {**OPTIMIZERS[name], **hyper}.items()}
        if name == "esgd" and (not isinstance(self.hyper["update_every"], int) or self.hyper["update_every"] < 1):
            raise ValueError(f"esgd: `update_every` must be a positive integer, got {self.hyper['update_every']!r}")
        self.rule = RULES[name]
        self.slots: dict[str, Arrays] = {n: self.rule.slots(self.hyper, _array(p)) for n, p in params.items()}
        self.step_count = 0
        self.rng = np.random.default_rng(seed)

    def step(self, params: Arrays, grads: Arrays, lr: float,
             hvp: Callable[[Arrays], Arrays] | None = None) -> None:
        """One update of every parameter in `params` (in place) with learning rate `lr`."""
        lr = float(lr)
        if self.name == "esgd":
            self._update_curvature(params, hvp)
        self.step_count += 1
        for name, p in params.items():
            if name not in grads:
                raise ValueError(f"no gradient for parameter `{name}`")
            g = _array(grads[name], p.dtype)
            p[...] = self.rule.update(self.hyper, p, g, self.slots[name], self.step_count, lr)

    def _update_curvature(self, params: Arrays, hvp: Callable[[Arrays], Arrays] | None) -> None:
        """ESGD: every `update_every` steps (from step 0), D += (H v)^2 with v ~ N(0, I)."""
        if hvp is None:
            raise ValueError("the esgd optimizer needs Hessian-vector products: pass `hvp` to Optimizer.step")
        if self.step_count % self.hyper["update_every"] != 0:
            return
        v = {n: self.rng.standard_normal(params[n].shape).astype(params[n].dtype) for n in sorted(params)}
        hv = hvp(v)
        for n, p in params.items():
            hvn = _array(hv[n], p.dtype)
            self.slots[n]["curvature"] += hvn * hvn

    # ------------------------------------------------------------------ checkpoints
    def state_arrays(self) -> Arrays:
        """Everything a restored optimizer needs, as plain arrays (no pickle): `name`,
        `step_count`, `rng` (the generator's state as JSON) and `slots/<param>/<slot>`."""
        arrays: Arrays = {
            "name": np.array(self.name),
            "step_count": np.array(self.step_count, dtype=np.int64),
            "rng": np.array(json.dumps(self.rng.bit_generator.state)),
        }
        for pname, slots in self.slots.items():
            for sname, value in slots.items():
                arrays[f"slots/{pname}/{sname}"] = value.copy()
        return arrays

    def load_state_arrays(self, arrays: Arrays) -> None:
        """Restore what `state_arrays` saved; the optimizer then continues bit for bit."""
        if "name" in arrays and str(arrays["name"]) != self.name:
            raise ValueError(f"optimizer state is for `{arrays['name']}`, not `{self.name}`")
        for pname, slots in self.slots.items():
            for sname, value in slots.items():
                key = f"slots/{pname}/{sname}"
                if key not in arrays:
                    raise ValueError(f"optimizer state lacks `{key}`")
                saved = np.asarray(arrays[key])
                if saved.shape != value.shape:
                    raise ValueError(f"optimizer state `{key}` has shape {saved.shape}, expected {value.shape}")
                value[...] = saved
        self.step_count = int(arrays["step_count"])
        self.rng.bit_generator.state = json.loads(str(arrays["rng"]))


# ----------------------------------------------------------------------------- schedules
# Each maps (lr, epoch) to the epoch's learning rate; the checker reads a schedule's keywords from the
# parameters after `/` (no default: required).
def _constant(lr: float, epoch: int, /) -> float:
    return lr


def _step_schedule(lr: float, epoch: int, /, every: int, factor: float = 0.1) -> float:
    return lr * factor ** (epoch // every)


def _exponential(lr: float, epoch: int, /, decay: float) -> float:
    return lr * decay ** epoch


def _inverse_time(lr: float, epoch: int, /, decay: float) -> float:
    return lr / (1 + decay * epoch)


SCHEDULES: dict[str, Callable[..., float]] = {
    "constant": _constant,
    "step": _step_schedule,
    "exponential": _exponential,
    "inverse_time": _inverse_time,
}


def scheduled_lr(schedule: tuple[str, dict] | None, lr: float, epoch: int) -> float:
    """The learning rate for `epoch` (counting from 0) under `schedule` (None: constant)."""
    if schedule is None:
        return float(lr)
    name, kwargs = schedule
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule `{name}`; known: {', '.join(SCHEDULES)}")
    return float(SCHEDULES[name](float(lr), int(epoch), **kwargs))


# ----------------------------------------------------------------------------- gradients
def global_norm(grads: Arrays) -> float:
    """The L2 norm of all gradients together (accumulated in float64)."""
    return math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values()))


def clip_by_global_norm(grads: Arrays, max_norm: float) -> Arrays:
    """torch.nn.utils.clip_grad_norm_: when the global norm exceeds `max_norm`, scale every
    gradient by max_norm / (norm + 1e-6); otherwise return them unchanged."""
    coef = float(max_norm) / (global_norm(grads) + 1e-6)
    if coef >= 1.0:
        return dict(grads)
    return {n: _array(_array(g) * coef) for n, g in grads.items()}


def clip_by_value(grads: Arrays, limit: float) -> Arrays:
    """Element-wise clip to [-limit, limit] (torch.nn.utils.clip_grad_value_)."""
    return {n: np.clip(g, -limit, limit).astype(_array(g).dtype, copy=False) for n, g in grads.items()}


def add_gradient_noise(grads: Arrays, sigma: float, step: int, rng: np.random.Generator) -> Arrays:
    """Neelakantan et al. 2015: add N(0, sigma^2 / (1 + step)^0.55) to every gradient
    element (step counting from 0); draws in the order of `grads`."""
    std = float(sigma) / (1 + step) ** 0.275
    out = {}
    for n, g in grads.items():
        g = np.asarray(g)
        out[n] = (g + std * rng.standard_normal(g.shape)).astype(g.dtype, copy=False)
    return out
