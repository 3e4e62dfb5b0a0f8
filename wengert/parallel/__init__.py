"""Parallel and distributed training (docs/distributed.md): a train block's `parallel` setting picks
an engine that runs each epoch's steps on several processes, while the ordinary training loop
(wengert/train/loop.py) keeps the history, progress, validation, early stopping and checkpoints.

- `hogwild(workers=N)`: N processes on one machine update one set of params in shared memory
  without locks (Niu et al., 2011); hogwild.py.
- `downpour(replicas=R, shards=S, fetch_every=F, push_every=P)`: R model replicas as Dask tasks
  and a parameter server of S Dask actors (Dean et al., 2012); downpour.py and server.py.
"""
from __future__ import annotations

from typing import Any

from ..diagnostics import Diagnostic, DiagnosticError
from ..train import engines

# optimizers whose update needs more than (param, grad, slots): ESGD's Hessian-vector products
UNSUPPORTED_OPTIMIZERS = {"esgd": "it needs Hessian-vector products on the full batch"}


def _refuse_what_engines_cannot_run(trainer) -> None:
    name = trainer.settings.parallel[0]
    problem = None
    if trainer.settings.cluster is not None and name != "downpour":
        problem = f"`cluster` is for `downpour`; `{name}` runs on this machine"
    opt = trainer.settings.optimizer[0]
    if problem is None and trainer.prog.device != "cpu":  # shared memory and Dask messages hold host arrays
        problem = f"`{name}` runs on the cpu device, not `{trainer.prog.device}`"
    if problem is None and opt in UNSUPPORTED_OPTIMIZERS:
        problem = f"`{name}` cannot run the `{opt}` optimizer: {UNSUPPORTED_OPTIMIZERS[opt]}"
    if problem is not None:
        raise DiagnosticError([Diagnostic(trainer.spec.span, problem)])


def _hogwild(trainer) -> Any:
    _refuse_what_engines_cannot_run(trainer)
    from .hogwild import Hogwild
    return Hogwild(trainer, **trainer.settings.parallel[1])


def _downpour(trainer) -> Any:
    _refuse_what_engines_cannot_run(trainer)
    from .downpour import Downpour
    return Downpour(trainer, **trainer.settings.parallel[1])


engines.register("hogwild", {"workers": 2}, _hogwild)
engines.register("downpour", {"replicas": 2, "shards": 1, "fetch_every": 1, "push_every": 1}, _downpour)
