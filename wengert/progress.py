"""Training progress: a live bar per epoch and one summary line per epoch (rich). On a terminal the
bar is drawn in place; in a Jupyter notebook rich draws it in an output widget (with ipywidgets
installed) and the history is shown as a table at the end."""
from __future__ import annotations

import importlib.util
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table


def summary(row: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {int(row['epoch'])}/{epochs}"]
    for key, value in row.items():
        if key in ("epoch", "seconds", "lr"):
            continue
        parts.append(f"{key} {value:.4f}")
    parts.append(f"{row.get('seconds', 0.0):.1f}s")
    return "  ".join(parts)


class ConsoleReport:
    """Receives the trainer's events and draws them."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=False, highlight=False)
        self.progress: Progress | None = None
        self.task = None

    def __call__(self, event: str, **info: Any) -> None:
        getattr(self, "on_" + event, lambda **_: None)(**info)

    def on_start(self, epochs: int, steps_per_epoch: int, examples: int, resumed_at: int) -> None:
        if resumed_at >= epochs > 0:
            self.console.print(f"the checkpoint is at epoch {resumed_at} of {epochs}: nothing left to train "
                               "(raise --epochs to train further)")
        elif resumed_at:
            self.console.print(f"resuming after epoch {resumed_at}, at epoch {resumed_at + 1}/{epochs}")
        steps = f"{steps_per_epoch} step{'s' if steps_per_epoch != 1 else ''}"
        self.console.print(f"training on {examples} example{'s' if examples != 1 else ''}, {steps} per epoch")

    def on_step(self, epoch: int, epochs: int, step: int, steps: int, loss: float, examples_per_s: float,
                **_: Any) -> None:
        if not (self.console.is_terminal or self.console.is_jupyter and live_in_notebook()):
            return  # a log file or a pipe gets the epoch lines only
        if self.progress is None:
            self.progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("loss {task.fields[loss]:.4f}"),
                                     TextColumn("{task.fields[rate]:.0f} ex/s"), TimeRemainingColumn(),
                                     console=self.console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task("train", total=steps, epoch=f"{epoch + 1}/{epochs}", loss=loss,
                                               rate=examples_per_s)
        self.progress.update(self.task, completed=step, loss=loss, rate=examples_per_s,
                             epoch=f"{epoch + 1}/{epochs}")

    def _stop_bar(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_epoch(self, row: dict[str, Any], epochs: int) -> None:
        self._stop_bar()
        self.console.print(summary(row, epochs), soft_wrap=True)

    def on_early_stop(self, epoch: int, best_epoch: int) -> None:
        self.console.print(f"early stopping after epoch {epoch}; restored the params of epoch {best_epoch}")

    def on_removed_stale(self, path: str) -> None:
        self.console.print(f"removed {path}, left by a run that was killed")

    def on_interrupted(self, epoch: int) -> None:
        self._stop_bar()
        self.console.print(f"interrupted: {epoch} epochs are saved; continue with --resume")

    def on_recovered(self, what: str, **info: Any) -> None:
        """A parallel run lost a worker, replica or server shard and carries on (wengert/parallel/)."""
        self._stop_bar()
        detail = ", ".join(f"{k} {v}" for k, v in info.items() if v not in (None, "", []))
        self.console.print(f"recovered: a {what} died and was restarted" + (f" ({detail})" if detail else ""))

    def on_anomaly(self, **_: Any) -> None:
        self._stop_bar()  # the diagnostic follows (--detect-anomaly)

    def on_end(self, history: list[dict[str, Any]], restored: int | None = None) -> None:
        """The final figures: those of the last epoch, or of the epoch whose params early stopping
        restored (`restored`, an index into history), which are the params saved."""
        self._stop_bar()
        if not history:
            return
        last = history[restored if restored is not None else -1]
        shown = [k for k in last if k not in ("epoch", "lr", "seconds")]
        if any(k.startswith("valid_") for k in shown):  # with a validation set, its numbers are the result
            shown = ["loss"] + [k for k in shown if k.startswith("valid_")]
        final = [f"{k} {last[k]:.4f}" for k in shown]
        where = f" (epoch {int(last['epoch'])}, restored)" if restored is not None and restored != len(history) - 1 else ""
        self.console.print("final: " + "  ".join(final) + where, soft_wrap=True)
        if self.console.is_jupyter:
            self.console.print(history_table(history))


def history_table(history: list[dict[str, Any]]) -> Table:
    """One row per epoch: every number the trainer recorded."""
    keys = list(dict.fromkeys(k for row in history for k in row))
    table = Table(title="training history")
    for k in keys:
        table.add_column(k, justify="right")
    for row in history:
        table.add_row(*("" if k not in row else str(int(row[k])) if k == "epoch" else f"{row[k]:.4g}"
                        for k in keys))
    return table


def in_notebook() -> bool:
    """True in a Jupyter kernel (where rich renders to the notebook)."""
    return Console().is_jupyter


def live_in_notebook() -> bool:
    """rich draws a live bar in a notebook only through ipywidgets (it warns on each refresh without)."""
    return importlib.util.find_spec("ipywidgets") is not None


class RowsBar:
    """A bar of rows done (`wengert predict`), drawn on stderr only when it is a terminal."""

    def __init__(self, what: str, console: Console | None = None):
        self.console = console or Console(stderr=True, highlight=False)
        self.what = what
        self.progress: Progress | None = None
        self.task = None

    def __call__(self, done: int, total: int) -> None:
        if not self.console.is_terminal:
            return
        if self.progress is None:
            self.progress = Progress(TextColumn(self.what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                     console=self.console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.what, total=total)
        self.progress.update(self.task, completed=done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
