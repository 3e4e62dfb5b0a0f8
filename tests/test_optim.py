"""Optimizers, schedules, clipping and gradient noise (wengert/train/optim.py).

Expected values are hand-computed numbers or short reference implementations written
here from the published formulas (the torch.optim algorithm boxes, Dauphin et al. 2015
for ESGD, Neelakantan et al. 2015 for gradient noise), never calls into the module.
"""
from __future__ import annotations

import io

import numpy as np
import pytest

from wengert.train.optim import OPTIMIZERS
from wengert.train import optim

P0 = [1.0, -2.0, 3.0]
GRADS = [[0.5, -1.0, 2.0], [-0.25, 0.5, 1.0], [1.0, 1.0, -3.0]]


def run(name: str, grads=GRADS, lr: float | None = None, dtype=np.float64, **kwargs) -> list[np.ndarray]:
    """The params after each step of optimizer `name` (defaults from the checker's table)."""
    hyper = {**OPTIMIZERS[name], **kwargs, **({} if lr is None else {"lr": lr})}
    params = {"w": np.array(P0, dtype=dtype)}
    opt = optim.Optimizer(name, hyper, params)
    out = []
    for g in grads:
        opt.step(params, {"w": np.array(g, dtype=dtype)}, hyper["lr"])
        out.append(params["w"].copy())
    return out


def check(name: str, reference, grads=GRADS, **kwargs) -> None:
    got = run(name, grads, **kwargs)
    want = reference(np.array(P0), [np.array(g) for g in grads], **{**OPTIMIZERS[name], **kwargs})
    assert len(want) == len(got)
    for step, (w, g) in enumerate(zip(want, got), 1):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14, err_msg=f"{name} step {step}")


# ----------------------------------------------------------------------------- references
def ref_sgd(p, grads, lr, momentum, dampening, nesterov, weight_decay):
    out, b = [], None
    for t, g in enumerate(grads, 1):
        g = g + weight_decay * p
        if momentum:
            b = g if t == 1 else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        p = p - lr * g
        out.append(p)
    return out


def ref_adagrad(p, grads, lr, lr_decay, weight_decay, eps):
    out, s = [], 0.0
    for t, g in enumerate(grads, 1):
        g = g + weight_decay * p
        s = s + g ** 2
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s) + eps)
        out.append(p)
    return out


def ref_rmsprop(p, grads, lr, alpha, eps, weight_decay, momentum, centered):
    out, v, gave, b = [], 0.0, 0.0, 0.0
    for g in grads:
        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g ** 2
        vt = v
        if centered:
            gave = alpha * gave + (1 - alpha) * g
            vt = v - gave ** 2
        if momentum > 0:
            b = momentum * b + g / (np.sqrt(vt) + eps)
            p = p - lr * b
        else:
            p = p - lr * g / (np.sqrt(vt) + eps)
        out.append(p)
    return out


def ref_adadelta(p, grads, lr, rho, eps, weight_decay):
    out, v, u = [], 0.0, 0.0
    for g in grads:
        g = g + weight_decay * p
        v = v * rho + g ** 2 * (1 - rho)
        dx = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        u = u * rho + dx ** 2 * (1 - rho)
        p = p - lr * dx
        out.append(p)
    return out


def ref_adam(p, grads, lr, beta1, beta2, eps, weight_decay, amsgrad):
    out, m, v, vmax = [], 0.0, 0.0, 0.0
    for t, g in enumerate(grads, 1):
        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g ** 2
        mhat = m / (1 - beta1 ** t)
        if amsgrad:
            vmax = np.maximum(vmax, v)
            vhat = vmax / (1 - beta2 ** t)
        else:
            vhat = v / (1 - beta2 ** t)
        p = p - lr * mhat / (np.sqrt(vhat) + eps)
        out.append(p)
    return out


def ref_adamax(p, grads, lr, beta1, beta2, eps, weight_decay):
    out, m, u = [], 0.0, 0.0
    for t, g in enumerate(grads, 1):
        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        u = np.maximum(beta2 * u, np.abs(g) + eps)
        p = p - lr * m / ((1 - beta1 ** t) * u)
        out.append(p)
    return out


def ref_nadam(p, grads, lr, beta1, beta2, eps, weight_decay, momentum_decay):
    mu = [beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay)) for t in range(len(grads) + 2)]
    out, m, v = [], 0.0, 0.0
    for t, g in enumerate(grads, 1):
        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g ** 2
        prod_t, prod_next = np.prod(mu[1:t + 1]), np.prod(mu[1:t + 2])
        mhat = mu[t + 1] * m / (1 - prod_next) + (1 - mu[t]) * g / (1 - prod_t)
        vhat = v / (1 - beta2 ** t)
        p = p - lr * mhat / (np.sqrt(vhat) + eps)
        out.append(p)
    return out


def ref_rprop(p, grads, lr, eta_minus, eta_plus, step_min, step_max):
    out, prev, eta = [], np.zeros_like(p), np.full_like(p, lr)
    for g in grads:
        s = g * prev
        eta = np.clip(np.where(s > 0, eta * eta_plus, np.where(s < 0, eta * eta_minus, eta)), step_min, step_max)
        g = np.where(s < 0, 0.0, g)
        p = p - eta * np.sign(g)
        prev = g
        out.append(p)
    return out


REFERENCES = {"sgd": ref_sgd, "adagrad": ref_adagrad, "rmsprop": ref_rmsprop, "adadelta": ref_adadelta,
              "adam": ref_adam, "adamax": ref_adamax, "nadam": ref_nadam, "rprop": ref_rprop}


# ----------------------------------------------------------------------------- hand numbers
def test_sgd_hand_numbers():
    w1, w2 = run("sgd", GRADS[:2], lr=0.1)
    np.testing.assert_allclose(w1, [0.95, -1.9, 2.8], rtol=1e-14)
    np.testing.assert_allclose(w2, [0.975, -1.95, 2.7], rtol=1e-14)


def test_sgd_momentum_hand_numbers():
    # buffer = g1 on the first step, then 0.9 * buffer + g2 = [0.2, -0.4, 2.8]
    w1, w2 = run("sgd", GRADS[:2], lr=0.1, momentum=0.9)
    np.testing.assert_allclose(w1, [0.95, -1.9, 2.8], rtol=1e-14)
    np.testing.assert_allclose(w2, [0.93, -1.86, 2.52], rtol=1e-14)


def test_sgd_nesterov_hand_numbers():
    # step 1: g + 0.9 * g = 1.9 g; step 2: g2 + 0.9 * [0.2, -0.4, 2.8]
    w1, w2 = run("sgd", GRADS[:2], lr=0.1, momentum=0.9, nesterov=True)
    np.testing.assert_allclose(w1, [1 - 0.095, -2 + 0.19, 3 - 0.38], rtol=1e-14)
    np.testing.assert_allclose(w2, [0.905 - 0.1 * (-0.25 + 0.18), -1.81 - 0.1 * (0.5 - 0.36),
                                    2.62 - 0.1 * (1.0 + 2.52)], rtol=1e-14)


def test_sgd_weight_decay_hand_numbers():
    # g + 0.5 * w = [1.0, -2.0, 3.5]
    (w1,) = run("sgd", GRADS[:1], lr=0.1, weight_decay=0.5)
    np.testing.assert_allclose(w1, [0.9, -1.8, 2.65], rtol=1e-14)


def test_adam_and_adagrad_first_step_is_signed_lr():
    # Adam: m_hat = g, v_hat = g^2; Adagrad: sum = g^2; both move lr * g / (|g| + eps)
    for name, eps in (("adam", 1e-8), ("adagrad", 1e-10)):
        (w1,) = run(name, GRADS[:1], lr=0.1)
        g = np.array(GRADS[0])
        np.testing.assert_allclose(w1, np.array(P0) - 0.1 * g / (np.abs(g) + eps), rtol=1e-14)
        np.testing.assert_allclose(w1, [0.9, -1.9, 2.9], rtol=1e-7)


def test_rprop_sign_change_hand_numbers():
    # step 1: no previous gradient, step 0.1 everywhere
    # step 2: elements 0, 1 change sign: step halves, no move, stored gradient 0;
    #         element 2 keeps its sign: step 0.12
    # step 3: elements 0, 1 see a 0 product: step stays 0.05 and they move;
    #         element 2 changes sign: step 0.06, no move
    w1, w2, w3 = run("rprop", lr=0.1)
    np.testing.assert_allclose(w1, [0.9, -1.9, 2.9], rtol=1e-14)
    np.testing.assert_allclose(w2, [0.9, -1.9, 2.78], rtol=1e-14)
    np.testing.assert_allclose(w3, [0.85, -1.95, 2.78], rtol=1e-14)


def test_rprop_step_bounds():
    # always the same sign: the step grows by 1.2 until step_max
    grads = [[1.0, 1.0, 1.0]] * 4
    w = run("rprop", grads, lr=0.1, step_max=0.13)
    np.testing.assert_allclose(w[-1], np.array(P0) - (0.1 + 0.12 + 0.13 + 0.13), rtol=1e-14)
    # alternating signs: the step shrinks by 0.5 down to step_min
    grads = [[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]] * 3
    hyper = {**OPTIMIZERS["rprop"], "lr": 0.1, "step_min": 0.03}
    params = {"w": np.array(P0)}
    opt = optim.Optimizer("rprop", hyper, params)
    for g in grads:
        opt.step(params, {"w": np.array(g)}, 0.1)
    np.testing.assert_allclose(opt.slots["w"]["step_size"], 0.03)


# ----------------------------------------------------------------------------- references
CASES = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.01}),
    ("adagrad", {}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.5, "weight_decay": 0.1}),
    ("rmsprop", {}),
    ("rmsprop", {"centered": True}),
    ("rmsprop", {"momentum": 0.9, "alpha": 0.8}),
    ("rmsprop", {"centered": True, "momentum": 0.7, "weight_decay": 0.2, "alpha": 0.9}),
    ("adadelta", {}),
    ("adadelta", {"lr": 0.5, "rho": 0.8, "weight_decay": 0.1}),
    ("adam", {}),
    ("adam", {"lr": 0.1, "beta1": 0.8, "beta2": 0.9, "weight_decay": 0.1}),
    ("adam", {"lr": 0.1, "amsgrad": True}),
    ("adamax", {}),
    ("adamax", {"lr": 0.1, "beta1": 0.7, "beta2": 0.5, "weight_decay": 0.1}),
    ("nadam", {}),
    ("nadam", {"lr": 0.1, "momentum_decay": 0.5, "beta1": 0.8, "weight_decay": 0.1}),
    ("rprop", {}),
    ("rprop", {"lr": 0.2, "eta_minus": 0.3, "eta_plus": 1.5, "step_min": 0.05, "step_max": 0.25}),
]


@pytest.mark.parametrize("name, kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_three_steps_match_reference(name, kwargs):
    check(name, REFERENCES[name], **kwargs)


def test_amsgrad_uses_the_running_maximum():
    # a large gradient then small ones: v decreases, so amsgrad's max differs from Adam's v
    grads = [[4.0, -4.0, 4.0], [0.1, 0.1, -0.1], [0.1, -0.1, 0.1]]
    plain = run("adam", grads, lr=0.1, beta2=0.5)
    ams = run("adam", grads, lr=0.1, beta2=0.5, amsgrad=True)
    assert not np.allclose(plain[-1], ams[-1])
    check("adam", ref_adam, grads, lr=0.1, beta2=0.5, amsgrad=True)


def test_nadam_mu_product_is_tracked():
    hyper = {**OPTIMIZERS["nadam"], "momentum_decay": 0.5}
    params = {"w": np.array(P0)}
    opt = optim.Optimizer("nadam", hyper, params)
    for g in GRADS:
        opt.step(params, {"w": np.array(g)}, 0.002)
    mus = [0.9 * (1 - 0.5 * 0.96 ** (t * 0.5)) for t in (1, 2, 3)]
    assert float(opt.slots["w"]["mu_product"]) == pytest.approx(mus[0] * mus[1] * mus[2], rel=1e-14)


def test_scheduled_lr_is_used():
    # the lr passed to step is the one applied (here sgd with a different lr each step)
    hyper = {**OPTIMIZERS["sgd"], "lr": 0.1}
    params = {"w": np.array(P0)}
    opt = optim.Optimizer("sgd", hyper, params)
    opt.step(params, {"w": np.array(GRADS[0])}, 0.1)
    opt.step(params, {"w": np.array(GRADS[1])}, 0.01)
    np.testing.assert_allclose(params["w"], [0.9525, -1.905, 2.79], rtol=1e-14)


# ----------------------------------------------------------------------------- esgd
def esgd_run(h: np.ndarray, grads, lr: float, eps: float, update_every: int, seed: int = 3):
    """Run ESGD on a quadratic with H = diag(h); returns params per step and the v's drawn."""
    hyper = {**OPTIMIZERS["esgd"], "lr": lr, "eps": eps, "update_every": update_every}
    params = {"w": np.array(P0)}
    opt = optim.Optimizer("esgd", hyper, params, seed=seed)
    drawn: list[np.ndarray] = []

    def hvp(v):
        drawn.append(v["w"].copy())
        return {"w": h * v["w"]}

    out = []
    for g in grads:
        opt.step(params, {"w": np.array(g)}, lr, hvp=hvp)
        out.append(params["w"].copy())
    return out, drawn


def test_esgd_known_hessian():
    h = np.array([2.0, 0.5, 4.0])
    grads = GRADS + [[0.3, -0.2, 0.1], [1.0, 2.0, 3.0]]
    got, drawn = esgd_run(h, grads, lr=0.1, eps=1e-4, update_every=2)
    assert len(drawn) == 3  # steps 0, 2 and 4 (counting from 0) update D
    p, d, n = np.array(P0), np.zeros(3), 0
    for k, g in enumerate(grads):
        if k % 2 == 0:
            d, n = d + (h * drawn[n]) ** 2, n + 1
        p = p - 0.1 * np.array(g) / (np.sqrt(d / n) + 1e-4)
        np.testing.assert_allclose(got[k], p, rtol=1e-12, err_msg=f"step {k}")


def test_esgd_weight_decay_and_update_every_one():
    h = np.array([1.0, 3.0, 0.2])
    hyper = {**OPTIMIZERS["esgd"], "lr": 0.05, "weight_decay": 0.1, "update_every": 1}
    params = {"w": np.array(P0)}
    opt = optim.Optimizer("esgd", hyper, params, seed=1)
    drawn = []
    p, d = np.array(P0), np.zeros(3)
    for k, g in enumerate(GRADS, 1):
        opt.step(params, {"w": np.array(g)}, 0.05, hvp=lambda v: drawn.append(v["w"].copy()) or {"w": h * v["w"]})
        d = d + (h * drawn[-1]) ** 2
        p = p - 0.05 * (np.array(g) + 0.1 * p) / (np.sqrt(d / k) + 1e-4)
        np.testing.assert_allclose(params["w"], p, rtol=1e-12)
    assert len(drawn) == 3


def test_esgd_estimate_converges_to_hessian_diagonal_and_is_seeded():
    # E[(H v)^2] = h^2 for v ~ N(0, I): sqrt(D / samples) estimates |h|
    h = np.array([2.0, 0.5, 4.0])
    hyper = {**OPTIMIZERS["esgd"], "update_every": 1}
    params = {"w": np.array(P0)}
    opt = optim.Optimizer("esgd", hyper, params, seed=7)
    for _ in range(4000):
        opt.step(params, {"w": np.zeros(3)}, 0.01, hvp=lambda v: {"w": h * v["w"]})
    np.testing.assert_allclose(np.sqrt(opt.slots["w"]["curvature"] / 4000), h, rtol=0.05)
    _, a = esgd_run(h, GRADS, 0.1, 1e-4, 1, seed=5)
    _, b = esgd_run(h, GRADS, 0.1, 1e-4, 1, seed=5)
    _, c = esgd_run(h, GRADS, 0.1, 1e-4, 1, seed=6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_esgd_without_hvp_is_a_clear_error():
    params = {"w": np.array(P0)}
    opt = optim.Optimizer("esgd", dict(OPTIMIZERS["esgd"]), params)
    with pytest.raises(ValueError, match="Hessian-vector"):
        opt.step(params, {"w": np.ones(3)}, 0.01)


# ----------------------------------------------------------------------------- dtypes, errors
HVP = {"w": lambda v: {"w": 2 * v["w"]}}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_f32_stays_f32_and_updates_in_place(name):
    params = {"w": np.array(P0, dtype=np.float32), "b": np.ones((2, 2), dtype=np.float32)}
    same = params["w"]
    opt = optim.Optimizer(name, dict(OPTIMIZERS[name]), params)
    for g in GRADS:
        grads = {"w": np.array(g), "b": np.full((2, 2), g[0])}  # f64 gradients are cast
        opt.step(params, grads, 0.01, hvp=lambda v: {k: 2 * x for k, x in v.items()})
    assert params["w"] is same and params["w"].dtype == np.float32 and params["b"].dtype == np.float32
    assert not np.array_equal(params["w"], np.array(P0, dtype=np.float32))
    for slots in opt.slots.values():
        for sname, value in slots.items():
            assert value.dtype == np.float32 or sname == "mu_product", (sname, value.dtype)


def test_f32_matches_f64_reference_closely():
    for name, kwargs in CASES:
        got = run(name, dtype=np.float32, **kwargs)
        want = REFERENCES[name](np.array(P0), [np.array(g) for g in GRADS], **{**OPTIMIZERS[name], **kwargs})
        np.testing.assert_allclose(got[-1], want[-1], rtol=1e-5, atol=1e-6, err_msg=name)


def test_unknown_optimizer_and_keyword():
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.Optimizer("adamw", {}, {"w": np.zeros(1)})
    with pytest.raises(ValueError, match="momentum"):
        optim.Optimizer("adam", {"momentum": 0.9}, {"w": np.zeros(1)})


def test_missing_keywords_take_defaults():
    params = {"w": np.array(P0)}
    opt = optim.Optimizer("adam", {"lr": 0.1}, params)
    assert opt.hyper["beta2"] == 0.999 and opt.hyper["amsgrad"] is False


# ----------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_round_trip_continues_bit_for_bit(name):
    rng = np.random.default_rng(0)
    hyper = {**OPTIMIZERS[name], "lr": 0.05}
    if name == "sgd":
        hyper["momentum"] = 0.9
    if name == "esgd":
        hyper["update_every"] = 2
    grads = [{"w": rng.standard_normal(3).astype(np.float32), "b": rng.standard_normal((2, 3)).astype(np.float32)}
             for _ in range(8)]

    def hvp(v):
        return {k: 1.5 * x for k, x in v.items()}

    params = {"w": np.array(P0, dtype=np.float32), "b": np.zeros((2, 3), dtype=np.float32)}
    opt = optim.Optimizer(name, hyper, params, seed=11)
    for g in grads[:3]:
        opt.step(params, g, 0.05, hvp=hvp)
    buffer = io.BytesIO()
    np.savez(buffer, **opt.state_arrays())
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as f:
        saved = {k: f[k] for k in f.files}
    restored_params = {k: v.copy() for k, v in params.items()}
    fresh = {k: np.zeros_like(v) for k, v in params.items()}
    restored = optim.Optimizer(name, hyper, fresh, seed=999)  # a different seed: the rng comes from the state
    restored.load_state_arrays(saved)
    assert restored.step_count == 3
    for g in grads[3:]:
        opt.step(params, g, 0.05, hvp=hvp)
        restored.step(restored_params, g, 0.05, hvp=hvp)
    for k, value in params.items():
        assert np.array_equal(value, restored_params[k]), k
    assert opt.rng.bit_generator.state == restored.rng.bit_generator.state


def test_state_for_another_optimizer_is_refused():
    params = {"w": np.array(P0)}
    arrays = optim.Optimizer("adam", {}, params).state_arrays()
    with pytest.raises(ValueError, match="adam"):
        optim.Optimizer("nadam", {}, params).load_state_arrays(arrays)


# ----------------------------------------------------------------------------- schedules
def test_schedules():
    assert optim.scheduled_lr(None, 0.1, 7) == 0.1
    assert optim.scheduled_lr(("constant", {}), 0.1, 7) == 0.1
    step = ("step", {"every": 2, "factor": 0.5})
    assert [optim.scheduled_lr(step, 0.1, e) for e in range(5)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    expo = ("exponential", {"decay": 0.9})
    assert [optim.scheduled_lr(expo, 0.1, e) for e in range(3)] == pytest.approx([0.1, 0.09, 0.081])
    inv = ("inverse_time", {"decay": 0.5})
    assert [optim.scheduled_lr(inv, 0.1, e) for e in range(4)] == pytest.approx([0.1, 0.1 / 1.5, 0.05, 0.04])
    with pytest.raises(ValueError, match="unknown schedule"):
        optim.scheduled_lr(("cosine", {}), 0.1, 0)


# ----------------------------------------------------------------------------- clipping, noise
def test_clip_by_global_norm():
    grads = {"a": np.array([3.0, 4.0]), "b": np.array([[12.0]], dtype=np.float32)}  # global norm 13
    clipped = optim.clip_by_global_norm(grads, 6.5)
    np.testing.assert_allclose(clipped["a"], [1.5, 2.0], rtol=1e-6)
    np.testing.assert_allclose(clipped["b"], [[6.0]], rtol=1e-6)
    assert clipped["b"].dtype == np.float32
    assert np.array_equal(grads["a"], [3.0, 4.0])  # inputs untouched
    total = np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in clipped.values()))
    assert total == pytest.approx(6.5, rel=1e-6) and total <= 6.5
    same = optim.clip_by_global_norm(grads, 13.5)
    assert all(np.array_equal(same[k], grads[k]) for k in grads)


def test_clip_by_value():
    grads = {"a": np.array([-3.0, 0.5, 7.0], dtype=np.float32), "b": np.array(-0.25)}
    clipped = optim.clip_by_value(grads, 1.0)
    np.testing.assert_array_equal(clipped["a"], [-1.0, 0.5, 1.0])
    assert clipped["a"].dtype == np.float32 and float(clipped["b"]) == -0.25
    assert grads["a"][0] == -3.0


def test_gradient_noise_variance_decays():
    sigma, n = 2.0, 200_000
    grads = {"a": np.full(n, 1.0), "b": np.zeros((2, 5), dtype=np.float32)}
    for step in (0, 9, 99):
        noisy = optim.add_gradient_noise(grads, sigma, step, np.random.default_rng(step))
        noise = noisy["a"] - 1.0
        expected = sigma ** 2 / (1 + step) ** 0.55
        assert np.var(noise) == pytest.approx(expected, rel=0.02), step
        assert abs(np.mean(noise)) < 4 * np.sqrt(expected / n)
        assert noisy["b"].dtype == np.float32 and noisy["b"].shape == (2, 5)
    assert np.all(grads["a"] == 1.0)  # inputs untouched
    a = optim.add_gradient_noise(grads, sigma, 3, np.random.default_rng(1))
    b = optim.add_gradient_noise(grads, sigma, 3, np.random.default_rng(1))
    assert np.array_equal(a["a"], b["a"])
