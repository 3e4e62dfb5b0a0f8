"""`wengert train --plot`: learning curves, and the decision boundary of a 2-feature classifier
(the book's figures 8-11 and 9-10). matplotlib is an optional extra: pip install "wengert[plot]"."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .diagnostics import Diagnostic, DiagnosticError


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DiagnosticError([Diagnostic.plain("wengert", "--plot needs matplotlib: "
                                                           "pip install \"wengert[plot]\"")]) from None
    return plt


def plot_run(trainer, history: list[dict[str, float]], out: Path) -> list[Path]:
    """curves.png (when an epoch ran) and, for a 2-feature classifier, boundary.png."""
    plt = _pyplot()
    written = [_curves(history, out, plt)] if history else []
    boundary = decision_boundary(trainer, out, plt)
    if boundary is not None:
        written.append(boundary)
    return written


def _curves(history: list[dict[str, float]], out: Path, plt) -> Path:
    keys = [k for k in history[0] if k not in ("epoch", "lr", "seconds")]
    groups = [[k for k in keys if k.endswith("loss")], [k for k in keys if not k.endswith("loss")]]
    groups = [g for g in groups if g]
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4), squeeze=False)
    epochs = [row["epoch"] for row in history]
    for ax, group in zip(axes[0], groups):
        for key in group:
            ax.plot(epochs, [row[key] for row in history], label=key)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _score_value(prog, feature_input: str) -> str | None:
    """The last named value that depends on the features only and gives a score per example
    (a float score such as a probability, else a class)."""
    module = prog.module
    candidates = [n for n in reversed(list(module.values))
                  if n != prog_minimize(prog) and module.values[n].type.rank in (1, 2)
                  and module.values[n].type.dtype != "bool"
                  and prog._needed_inputs([module.values[n]]) == [feature_input]]
    floats = [n for n in candidates if module.values[n].type.dtype in ("f32", "f64")]
    return (floats or candidates or [None])[0]


def prog_minimize(prog) -> str | None:
    specs = list(prog.module.trains.values())
    return specs[0].minimize if specs else None


def decision_boundary(trainer, out: Path, plt) -> Path | None:
    prog = trainer.prog
    feature = next((n for n, d in prog.module.inputs.items()
                    if d.var.type.rank == 2 and prog.module.dims.resolve(d.var.type.shape[1]) == 2), None)
    if feature is None:
        return None
    score = _score_value(prog, feature)
    if score is None:
        return None
    train = trainer.datasets[trainer.settings.data]
    rows = train.rows(slice(0, len(train)))
    x = np.asarray(rows[feature], dtype=np.float64)
    label_column = next((k for k in rows if k != feature), None)
    lo, hi = x.min(axis=0) - 0.5, x.max(axis=0) + 0.5
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    values = np.asarray(prog.run(score, inputs={feature: grid}))
    z = values[:, -1] if values.ndim == 2 else values
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contourf(gx, gy, z.reshape(gx.shape), levels=20, cmap="RdBu", alpha=0.6)
    labels = rows.get(label_column)
    if labels is not None:
        labels = np.asarray(labels)
        c = labels.argmax(axis=-1) if labels.ndim == 2 else labels
        ax.scatter(x[:, 0], x[:, 1], c=c, cmap="RdBu", edgecolors="k", s=12)
    ax.set_title(f"{score} over {feature}")
    path = out / "boundary.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def distinct_colours(plt, n: int) -> list:
    """n colours, no two alike (matplotlib's default cycle repeats after 10)."""
    if n <= 10:
        return [plt.get_cmap("tab10")(k) for k in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(k) for k in range(n)]
    return [plt.get_cmap("turbo")(k / (n - 1)) for k in range(n)]


def plot_comparison(curves: dict[str, list[tuple[int, float]]], path: Path) -> Path:
    """The training loss after each update of several train blocks in one figure (the book's 8-14)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for (name, points), colour in zip(curves.items(), distinct_colours(plt, len(curves))):
        if points:
            steps, losses = zip(*points)
            ax.plot(steps, losses, label=name, color=colour)
    ax.set_xlabel("update")
    ax.set_ylabel("training loss (exponential moving average, 0.98)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_values(values: dict[str, np.ndarray], x: str | None, ys: list[str], points: list[tuple[str, str]],
                path: Path, logx: bool = False, logy: bool = False, title: str = "") -> Path:
    """`wengert plot`: named values of one run as curves over `x`, and `points` as scattered
    (x, y) pairs (the book's figures 2-2..2-5: data, fitted curves, errors against lambda)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    for px, py in points:
        ax.scatter(np.ravel(values[px]), np.ravel(values[py]), s=14, color="k", label=f"{py} over {px}", zorder=3)
    for y in ys:
        ax.plot(np.ravel(values[x]), np.ravel(values[y]), label=y)
    if x is not None:
        ax.set_xlabel(x)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    if title:
        ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
