"""One training step (forward + backward w.r.t. every param) of the book's listing 7-7 CNN.

    python bench/cnn_step.py [--reps 7] [--batch 128] [--no-torch] [--no-memory]

Variants, timed interleaved (A B C A B C ...) after a warm-up, median ms/step:
  wengert         `prog.value_and_grad('loss', params, {'x', 'y'}, training=True)`
  numpy    the same network in NumPy, hand-derived gradients, im2col + one matmul per conv
  torch    PyTorch CPU (only when `import torch` works)
The NumPy reference is checked against wengert's gradients (dropout off, rtol 1e-4, f32)
before timing. Peak memory: each variant runs two steps in a fresh subprocess and reports
the growth of the peak RSS over what it held after setup (VmHWM).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SOURCE = """\
input x: f32[batch, 28, 28, 1]
input y: f32[batch, 10]
logits = x |> Conv2D(32, 3) |> relu |> Conv2D(64, 3) |> relu |> MaxPooling2D(2)
           |> Dropout(0.25) |> Flatten |> Dense(128) |> relu |> Dropout(0.5) |> Dense(10)
loss = mean(softmax_crossentropy(logits, y))
"""
NAMES = ["Conv2D_1.W", "Conv2D_1.b", "Conv2D_2.W", "Conv2D_2.b", "Dense_1.W", "Dense_1.b", "Dense_2.W", "Dense_2.b"]


def make_data(batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
    return x, y


# ---------------------------------------------------------------- NumPy reference
def im2col(x, kh, kw):
    """[N, H, W, C] -> [N*OH*OW, kh*kw*C] (valid, stride 1), rows in (kh, kw, C) order."""
    n, h, w, c = x.shape
    oh, ow = h - kh + 1, w - kw + 1
    win = sliding_window_view(x, (kh, kw), axis=(1, 2))  # N, OH, OW, C, kh, kw
    cols = np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3))
    return cols.reshape(n * oh * ow, kh * kw * c), (n, oh, ow)


def col2im(dcols, x_shape, kh, kw):
    n, h, w, c = x_shape
    oh, ow = h - kh + 1, w - kw + 1
    d = dcols.reshape(n, oh, ow, kh, kw, c)
    dx = np.zeros(x_shape, dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, i:i + oh, j:j + ow, :] += d[:, :, :, i, j, :]
    return dx


class NumpyCNN:
    def __init__(self, params: dict, rng_seed: int = 1):
        self.p = {k: np.array(v) for k, v in params.items()}
        self.rng = np.random.default_rng(rng_seed)

    def step(self, x, y, training=True):
        p = self.p
        W1, b1, W2, b2 = p["Conv2D_1.W"], p["Conv2D_1.b"], p["Conv2D_2.W"], p["Conv2D_2.b"]
        D1, c1, D2, c2 = p["Dense_1.W"], p["Dense_1.b"], p["Dense_2.W"], p["Dense_2.b"]
        n = x.shape[0]
        # forward
        cols1, (_, oh1, ow1) = im2col(x, 3, 3)
        z1 = (cols1 @ W1.reshape(-1, W1.shape[3])).reshape(n, oh1, ow1, -1) + b1
        a1 = np.maximum(z1, 0)
        cols2, (_, oh2, ow2) = im2col(a1, 3, 3)
        z2 = (cols2 @ W2.reshape(-1, W2.shape[3])).reshape(n, oh2, ow2, -1) + b2
        a2 = np.maximum(z2, 0)
        c = a2.shape[3]
        blocks = a2.reshape(n, oh2 // 2, 2, ow2 // 2, 2, c)
        pooled = blocks.max(axis=(2, 4))
        if training:
            m1 = (self.rng.random(pooled.shape, dtype=np.float32) < 0.75).astype(np.float32) / np.float32(0.75)
        else:
            m1 = np.ones(pooled.shape, dtype=np.float32)
        flat = (pooled * m1).reshape(n, -1)
        h = flat @ D1 + c1
        ah = np.maximum(h, 0)
        if training:
            m2 = (self.rng.random(ah.shape, dtype=np.float32) < 0.5).astype(np.float32) / np.float32(0.5)
        else:
            m2 = np.ones(ah.shape, dtype=np.float32)
        hd = ah * m2
        logits = hd @ D2 + c2
        mx = logits.max(axis=1, keepdims=True)
        e = np.exp(logits - mx)
        s = e.sum(axis=1, keepdims=True)
        logp = logits - mx - np.log(s)
        loss = -(y * logp).sum(axis=1).mean()
        # backward
        dlogits = (e / s * y.sum(axis=1, keepdims=True) - y) / np.float32(n)
        g = {"Dense_2.W": hd.T @ dlogits, "Dense_2.b": dlogits.sum(axis=0)}
        dh = (dlogits @ D2.T) * m2 * (h > 0)
        g["Dense_1.W"], g["Dense_1.b"] = flat.T @ dh, dh.sum(axis=0)
        dpooled = (dh @ D1.T).reshape(pooled.shape) * m1
        hit = blocks == pooled[:, :, None, :, None, :]
        hit = hit / hit.sum(axis=(2, 4), keepdims=True, dtype=np.float32)  # ties share, as wengert does
        dz2 = (hit * dpooled[:, :, None, :, None, :]).reshape(a2.shape) * (z2 > 0)
        dz2m = dz2.reshape(-1, dz2.shape[3])
        g["Conv2D_2.W"], g["Conv2D_2.b"] = (cols2.T @ dz2m).reshape(W2.shape), dz2m.sum(axis=0)
        dz1 = col2im(dz2m @ W2.reshape(-1, W2.shape[3]).T, a1.shape, 3, 3) * (z1 > 0)
        dz1m = dz1.reshape(-1, dz1.shape[3])
        g["Conv2D_1.W"], g["Conv2D_1.b"] = (cols1.T @ dz1m).reshape(W1.shape), dz1m.sum(axis=0)
        return loss, g


# ---------------------------------------------------------------- PyTorch
def torch_step_factory(params: dict, x, y):
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    # NCHW and [cout, cin, kh, kw] for torch
    xt = torch.tensor(x).permute(0, 3, 1, 2).contiguous()
    yt = torch.tensor(y)

    def step():
        for v in tp.values():
            v.grad = None
        F = torch.nn.functional
        h = F.relu(F.conv2d(xt, tp["Conv2D_1.W"].permute(3, 2, 0, 1), tp["Conv2D_1.b"]))
        h = F.relu(F.conv2d(h, tp["Conv2D_2.W"].permute(3, 2, 0, 1), tp["Conv2D_2.b"]))
        h = F.dropout(F.max_pool2d(h, 2), 0.25, training=True)
        h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)  # flatten in NHWC order, like the others
        h = F.dropout(F.relu(h @ tp["Dense_1.W"] + tp["Dense_1.b"]), 0.5, training=True)
        logits = h @ tp["Dense_2.W"] + tp["Dense_2.b"]
        loss = -(yt * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
        loss.backward()
        return loss.item()
    return step


# ---------------------------------------------------------------- harness
def make_variant(name: str, batch: int):
    import wengert
    x, y = make_data(batch)
    prog = wengert.compile(SOURCE)
    params = prog.params
    if name == "wengert":
        wrt = list(params)
        return lambda: prog.value_and_grad("loss", wrt, {"x": x, "y": y}, training=True)
    if name == "numpy":
        ref = NumpyCNN(params)
        return lambda: ref.step(x, y)
    if name == "torch":
        return torch_step_factory(params, x, y)
    raise ValueError(name)


def verify(batch: int) -> float:
    """NumPy reference vs wengert (dropout off): the largest relative error over the grads."""
    import wengert
    x, y = make_data(batch)
    prog = wengert.compile(SOURCE)
    params = prog.params
    values, grads = prog.value_and_grad("loss", list(params), {"x": x, "y": y}, training=False)
    loss, g = NumpyCNN(params).step(x, y, training=False)
    np.testing.assert_allclose(values["loss"], loss, rtol=1e-4)
    worst = 0.0
    for k in NAMES:
        assert grads[k].dtype == np.float32, (k, grads[k].dtype)
        # rtol 1e-4 on the gradient as a whole (atol scaled to its largest entry: f32 sums)
        scale = float(np.abs(g[k]).max())
        np.testing.assert_allclose(grads[k], g[k], rtol=1e-4, atol=1e-4 * scale, err_msg=k)
        worst = max(worst, float(np.abs(grads[k] - g[k]).max()) / scale)
    return worst


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
        return True
    except (ImportError, OSError):
        return False


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+)", f.read(), re.MULTILINE).group(1))


def measure_in_child(name: str, batch: int) -> float:
    """Peak RSS growth (MB) of two steps over the RSS after setup. VmHWM, reset through
    clear_refs, because ru_maxrss survives fork/exec (it would start at the parent's peak)."""
    f = make_variant(name, batch)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    r0 = _status_kb("VmRSS")
    f()
    f()
    return (_status_kb("VmHWM") - r0) / 1024


def peak_memory_mb(name: str, batch: int) -> float | None:
    """Two steps in a fresh interpreter (see measure_in_child)."""
    code = (f"import sys, json; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import cnn_step as b; print(json.dumps(b.measure_in_child({name!r}, {batch})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args(argv)

    err = verify(min(args.batch, 16))
    print(f"numpy reference matches wengert's gradients (max rel. error {err:.1e}, rtol 1e-4, f32)")
    names = ["wengert", "numpy"] + (["torch"] if not args.no_torch and torch_available() else [])
    fns = {n: make_variant(n, args.batch) for n in names}
    for _ in range(args.warmup):
        for n in names:
            fns[n]()
    times = {n: [] for n in names}
    for _ in range(args.reps):
        for n in names:
            t = time.perf_counter()
            fns[n]()
            times[n].append(time.perf_counter() - t)
    mem = {n: (None if args.no_memory else peak_memory_mb(n, args.batch)) for n in names}
    ref = statistics.median(times["numpy"])
    print(f"listing 7-7 CNN, one training step, batch {args.batch}, {os.cpu_count()} cores, "
          f"median of {args.reps} (warm-up {args.warmup}), interleaved")
    print(f"{'variant':<15} {'ms/step':>9} {'min ms':>8} {'vs numpy':>9} {'peak MB':>8}")
    for n in names:
        med = statistics.median(times[n])
        m = "-" if mem[n] is None else f"{mem[n]:.0f}"
        print(f"{n:<15} {med * 1e3:9.1f} {min(times[n]) * 1e3:8.1f} {med / ref:8.2f}x {m:>8}")


if __name__ == "__main__":
    main()
