"""W6: Embedding(20000, 128) -> LSTM(128) over 80 steps -> Dense(1), batch 32, 10 steps, f32.

The LSTM is wengert's (docs/language.md §7): peephole connections, gates i, f, c, o side by side
in W [128, 512] and U [128, 512]. torch.nn.LSTM has no peepholes, so every framework runs the
same cell written out step by step (JAX through lax.scan); the NumPy reference backpropagates
through time by hand.
"""
from __future__ import annotations

import numpy as np

from .common import HERE, Arrays, Setup, Workload, frameworks_of, load_setup

DL = HERE / "w6_lstm.dl"
VOCAB, TIME, UNITS = 20000, 80, 128


def setup(small: bool) -> Setup:
    rows = 8 if small else 320
    rng = np.random.default_rng(0)
    data = {"x": rng.integers(0, VOCAB, (rows, TIME)), "y": rng.integers(0, 2, rows).astype(np.float32)}
    return load_setup(DL, batch=4 if small else 32, data=data)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def numpy_step(p: Arrays, b: Arrays) -> tuple[float, Arrays]:
    x, y = b["x"], b["y"]
    E, W, U = p["Embedding_1.E"], p["LSTM_1.W"], p["LSTM_1.U"]
    pi, pf, po = p["LSTM_1.peep_i"], p["LSTM_1.peep_f"], p["LSTM_1.peep_o"]
    n, steps = x.shape
    u = U.shape[0]
    emb = E[x]
    zs = emb @ W + p["LSTM_1.b"]
    h = np.zeros((n, u), np.float32)
    c = np.zeros((n, u), np.float32)
    tape = []
    for t in range(steps):
        z = zs[:, t] + h @ U
        i = _sigmoid(z[:, :u] + pi * c)
        f = _sigmoid(z[:, u:2 * u] + pf * c)
        g = np.tanh(z[:, 2 * u:3 * u])
        c_new = f * c + i * g
        o = _sigmoid(z[:, 3 * u:] + po * c_new)
        tc = np.tanh(c_new)
        tape.append((h, c, i, f, g, c_new, o, tc))
        h, c = o * tc, c_new
    q = _sigmoid(h @ p["Dense_1.W"] + p["Dense_1.b"])[:, 0]
    loss = np.mean(-(y * np.log(q) + (1 - y) * np.log(1 - q)))
    # backward
    dlogit = ((q - y) / np.float32(n))[:, None]
    grads = {"Dense_1.W": h.T @ dlogit, "Dense_1.b": dlogit.sum(axis=0)}
    dh = dlogit @ p["Dense_1.W"].T
    dc = np.zeros_like(dh)
    dzs = np.empty_like(zs)
    dU = np.zeros_like(U)
    dpi, dpf, dpo = np.zeros_like(pi), np.zeros_like(pf), np.zeros_like(po)
    for t in reversed(range(steps)):
        h_prev, c_prev, i, f, g, c_new, o, tc = tape[t]
        dzo = dh * tc * o * (1 - o)
        dcn = dc + dh * o * (1 - tc * tc) + dzo * po
        dzi = dcn * g * i * (1 - i)
        dzf = dcn * c_prev * f * (1 - f)
        dzg = dcn * i * (1 - g * g)
        dpo += np.sum(dzo * c_new, axis=0)
        dpi += np.sum(dzi * c_prev, axis=0)
        dpf += np.sum(dzf * c_prev, axis=0)
        dz = np.concatenate([dzi, dzf, dzg, dzo], axis=1)
        dzs[:, t] = dz
        dU += h_prev.T @ dz
        dh = dz @ U.T
        dc = dcn * f + dzi * pi + dzf * pf
    dzs2 = dzs.reshape(-1, 4 * u)
    dE = np.zeros_like(E)
    np.add.at(dE, x.reshape(-1), dzs2 @ W.T)
    grads.update({"Embedding_1.E": dE, "LSTM_1.W": emb.reshape(-1, emb.shape[2]).T @ dzs2,
                  "LSTM_1.U": dU, "LSTM_1.b": dzs2.sum(axis=0), "LSTM_1.peep_i": dpi,
                  "LSTM_1.peep_f": dpf, "LSTM_1.peep_o": dpo})
    return loss, grads


def make_loss(xp):
    def cell(hc, z_t, p):
        h, c = hc
        u = h.shape[1]
        z = z_t + h @ p["LSTM_1.U"]
        i = xp.sigmoid(z[:, :u] + p["LSTM_1.peep_i"] * c)
        f = xp.sigmoid(z[:, u:2 * u] + p["LSTM_1.peep_f"] * c)
        c_new = f * c + i * xp.tanh(z[:, 2 * u:3 * u])
        o = xp.sigmoid(z[:, 3 * u:] + p["LSTM_1.peep_o"] * c_new)
        return o * xp.tanh(c_new), c_new

    def loss(p, b):
        x, y = b["x"], b["y"]
        zs = p["Embedding_1.E"][x] @ p["LSTM_1.W"] + p["LSTM_1.b"]
        u = p["LSTM_1.U"].shape[0]
        h0 = xp.zeros((x.shape[0], u), zs)
        if xp.name == "jax":
            jax = xp.jax
            (h, _), _ = jax.lax.scan(lambda hc, z_t: (cell(hc, z_t, p), None), (h0, h0), zs.transpose(1, 0, 2))
        else:
            hc = (h0, h0)
            for t in range(x.shape[1]):
                hc = cell(hc, zs[:, t], p)
            h = hc[0]
        q = xp.sigmoid(h @ p["Dense_1.W"] + p["Dense_1.b"])[:, 0]
        return xp.mean(-(y * xp.log(q) + (1 - y) * xp.log(1 - q)))
    return loss


WORKLOAD = Workload("W6", "Embedding(20000,128) -> LSTM(128) x 80 steps -> Dense(1), batch 32", DL, "f32",
                    steps=10, round_steps=1, setup=setup, runners=frameworks_of(make_loss, numpy_step))
