"""W5: listing 7-7's CNN, batch 128, 30 steps, f32 (adadelta).

The NumPy reference: im2col and one matrix product per convolution, hand-derived gradients
(formerly bench/cnn_step.py). Its dropout masks are drawn like wengert's (`rng.random(shape) <
1 - rate` from a generator seeded with the program's seed, in program order), so the two train
identically; PyTorch and JAX draw their own, autograd draws from NumPy's generator.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .common import (
    HERE,
    Arrays,
    AutogradTrainer,
    JaxTrainer,
    NumpyTrainer,
    Runner,
    Setup,
    TorchTrainer,
    Workload,
    jax_module,
    load_setup,
)

DL = HERE / "w5_cnn.dl"
RATES = (0.25, 0.5)
CLIP = 1e-7


def setup(small: bool) -> Setup:
    s = load_setup(DL, batch=8 if small else 128, small_rows=16 if small else None)
    s.options["dropout"] = True
    return s


# ----------------------------------------------------------------------------- NumPy
def im2col(x: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """[N, H, W, C] -> [N*OH*OW, kh*kw*C] (valid, stride 1), columns in (kh, kw, C) order (W's)."""
    n, h, w, _ = x.shape
    win = sliding_window_view(x, (kh, kw), axis=(1, 2))  # N, OH, OW, C, kh, kw
    return np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(n * (h - kh + 1) * (w - kw + 1), -1)


def col2im(dcols: np.ndarray, x_shape: tuple[int, ...], kh: int, kw: int) -> np.ndarray:
    n, h, w, c = x_shape
    oh, ow = h - kh + 1, w - kw + 1
    d = dcols.reshape(n, oh, ow, kh, kw, c)
    dx = np.zeros(x_shape, dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, i:i + oh, j:j + ow, :] += d[:, :, :, i, j, :]
    return dx


def dropout_mask(rng: np.random.Generator | None, shape, rate: float) -> np.ndarray | None:
    return None if rng is None else (rng.random(shape) < 1 - rate).astype(np.float32)


class NumpyCNN(NumpyTrainer):
    def __init__(self, setup: Setup):
        super().__init__(setup, self.loss_and_grads)
        self.rng = np.random.default_rng(setup.prog.seed) if setup.options.get("dropout", True) else None

    def loss_and_grads(self, p: Arrays, b: Arrays) -> tuple[float, Arrays]:
        W1, W2, D1, D2 = p["Conv2D_1.W"], p["Conv2D_2.W"], p["Dense_1.W"], p["Dense_2.W"]
        x, y = b["x"], b["y"]
        n = len(x)
        f32 = np.float32
        # forward
        img = x.reshape(n, 28, 28, 1)
        cols1 = im2col(img, 3, 3)
        z1 = (cols1 @ W1.reshape(-1, W1.shape[3])).reshape(n, 26, 26, -1) + p["Conv2D_1.b"]
        a1 = np.maximum(z1, 0)
        cols2 = im2col(a1, 3, 3)
        z2 = (cols2 @ W2.reshape(-1, W2.shape[3])).reshape(n, 24, 24, -1) + p["Conv2D_2.b"]
        a2 = np.maximum(z2, 0)
        blocks = a2.reshape(n, 12, 2, 12, 2, -1)
        pooled = blocks.max(axis=(2, 4))
        m1 = dropout_mask(self.rng, pooled.shape, RATES[0])
        dropped = pooled if m1 is None else pooled * m1 / f32(1 - RATES[0])
        flat = dropped.reshape(n, -1)
        h = flat @ D1 + p["Dense_1.b"]
        ah = np.maximum(h, 0)
        m2 = dropout_mask(self.rng, ah.shape, RATES[1])
        hd = ah if m2 is None else ah * m2 / f32(1 - RATES[1])
        logits = hd @ D2 + p["Dense_2.b"]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
        pc = np.clip(probs, f32(CLIP), f32(1 - CLIP))
        loss = np.mean(-np.sum(y * np.log(pc), axis=1))
        # backward
        dpc = -y / pc / f32(n)
        dprobs = dpc * ((probs >= f32(CLIP)) & (probs <= f32(1 - CLIP)))
        dlogits = probs * (dprobs - np.sum(dprobs * probs, axis=1, keepdims=True))
        g = {"Dense_2.W": hd.T @ dlogits, "Dense_2.b": dlogits.sum(axis=0)}
        dhd = dlogits @ D2.T
        dh = (dhd if m2 is None else dhd * m2 / f32(1 - RATES[1])) * (h > 0)
        g["Dense_1.W"], g["Dense_1.b"] = flat.T @ dh, dh.sum(axis=0)
        dflat = (dh @ D1.T).reshape(pooled.shape)
        dpooled = dflat if m1 is None else dflat * m1 / f32(1 - RATES[0])
        hit = blocks == pooled[:, :, None, :, None, :]
        hit = hit / hit.sum(axis=(2, 4), keepdims=True, dtype=f32)  # ties share, as wengert's maxpool does
        dz2 = ((hit * dpooled[:, :, None, :, None, :]).reshape(a2.shape) * (z2 > 0)).reshape(-1, a2.shape[3])
        g["Conv2D_2.W"], g["Conv2D_2.b"] = (cols2.T @ dz2).reshape(W2.shape), dz2.sum(axis=0)
        dz1 = (col2im(dz2 @ W2.reshape(-1, W2.shape[3]).T, a1.shape, 3, 3) * (z1 > 0)).reshape(-1, a1.shape[3])
        g["Conv2D_1.W"], g["Conv2D_1.b"] = (cols1.T @ dz1).reshape(W1.shape), dz1.sum(axis=0)
        return loss, g


# ----------------------------------------------------------------------------- PyTorch (NCHW inside)
def torch_loss(setup: Setup):
    import torch
    F = torch.nn.functional
    training = setup.options.get("dropout", True)

    def loss(p, b):
        n = b["x"].shape[0]
        h = b["x"].reshape(n, 1, 28, 28)
        h = F.relu(F.conv2d(h, p["Conv2D_1.W"].permute(3, 2, 0, 1), p["Conv2D_1.b"]))
        h = F.relu(F.conv2d(h, p["Conv2D_2.W"].permute(3, 2, 0, 1), p["Conv2D_2.b"]))
        h = F.dropout(F.max_pool2d(h, 2), RATES[0], training=training)
        h = h.permute(0, 2, 3, 1).reshape(n, -1)  # flattened in NHWC order, as Dense_1.W expects
        h = F.dropout(F.relu(h @ p["Dense_1.W"] + p["Dense_1.b"]), RATES[1], training=training)
        probs = torch.softmax(h @ p["Dense_2.W"] + p["Dense_2.b"], dim=1)
        return (-(b["y"] * torch.log(torch.clamp(probs, CLIP, 1 - CLIP))).sum(dim=1)).mean()
    return loss


# ----------------------------------------------------------------------------- JAX (NHWC, HWIO: wengert's layout)
def jax_loss(setup: Setup):
    jax = jax_module()
    jnp, lax = jax.numpy, jax.lax
    training = setup.options.get("dropout", True)
    dims = ("NHWC", "HWIO", "NHWC")

    def dropout(key, h, rate):
        return jnp.where(jax.random.bernoulli(key, 1 - rate, h.shape), h / (1 - rate), 0) if training else h

    def loss(p, b):
        n = b["x"].shape[0]
        k1, k2 = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(0), b["step"]))
        h = b["x"].reshape(n, 28, 28, 1)
        h = jax.nn.relu(lax.conv_general_dilated(h, p["Conv2D_1.W"], (1, 1), "VALID", dimension_numbers=dims)
                        + p["Conv2D_1.b"])
        h = jax.nn.relu(lax.conv_general_dilated(h, p["Conv2D_2.W"], (1, 1), "VALID", dimension_numbers=dims)
                        + p["Conv2D_2.b"])
        h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        h = dropout(k1, h, RATES[0]).reshape(n, -1)
        h = dropout(k2, jax.nn.relu(h @ p["Dense_1.W"] + p["Dense_1.b"]), RATES[1])
        probs = jax.nn.softmax(h @ p["Dense_2.W"] + p["Dense_2.b"], axis=1)
        return jnp.mean(-jnp.sum(b["y"] * jnp.log(jnp.clip(probs, CLIP, 1 - CLIP)), axis=1))
    return loss


# ----------------------------------------------------------------------------- autograd (convolution by taps)
def autograd_loss(setup: Setup):
    import autograd.numpy as anp
    rng = np.random.default_rng(setup.prog.seed) if setup.options.get("dropout", True) else None

    def conv(x, W, b):
        kh, kw, cin, cout = W.shape
        n, hh, ww, _ = x.shape
        oh, ow = hh - kh + 1, ww - kw + 1
        out = 0
        for i in range(kh):
            for j in range(kw):
                out = out + anp.reshape(x[:, i:i + oh, j:j + ow, :], (-1, cin)) @ W[i, j]
        return anp.reshape(out, (n, oh, ow, cout)) + b

    def dropout(h, rate):
        m = dropout_mask(rng, h.shape, rate)
        return h if m is None else h * m / np.float32(1 - rate)

    def loss(p, b):
        n = b["x"].shape[0]
        h = anp.maximum(conv(anp.reshape(b["x"], (n, 28, 28, 1)), p["Conv2D_1.W"], p["Conv2D_1.b"]), 0)
        h = anp.maximum(conv(h, p["Conv2D_2.W"], p["Conv2D_2.b"]), 0)
        h = anp.max(anp.reshape(h, (n, 12, 2, 12, 2, -1)), axis=(2, 4))
        h = anp.reshape(dropout(h, RATES[0]), (n, -1))
        h = dropout(anp.maximum(h @ p["Dense_1.W"] + p["Dense_1.b"], 0), RATES[1])
        z = h @ p["Dense_2.W"] + p["Dense_2.b"]
        e = anp.exp(z - anp.max(z, axis=1, keepdims=True))
        probs = e / anp.sum(e, axis=1, keepdims=True)
        return anp.mean(-anp.sum(b["y"] * anp.log(anp.clip(probs, CLIP, 1 - CLIP)), axis=1))
    return loss


def runners() -> dict[str, callable]:
    def torch_runner(s: Setup) -> Runner:
        return TorchTrainer(s, torch_loss(s))

    def jax_runner(s: Setup) -> Runner:
        return JaxTrainer(s, jax_loss(s))

    def autograd_runner(s: Setup) -> Runner:
        return AutogradTrainer(s, autograd_loss(s))
    return {"numpy": NumpyCNN, "torch": torch_runner, "jax": jax_runner, "autograd": autograd_runner}


WORKLOAD = Workload("W5", "listing 7-7 CNN, batch 128 (adadelta)", DL, "f32",
                    steps=30, round_steps=2, setup=setup, runners=runners(),
                    slow={"autograd": 0.5})
