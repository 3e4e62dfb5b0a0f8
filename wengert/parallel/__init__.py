"""Parallel and distributed training (docs/distributed.md): a train block's `parallel` setting picks
an engine that runs each epoch's steps on several processes, while the ordinary training loop
(runtime/train.py) keeps the history, progress, validation, early stopping and checkpoints.

- `hogwild(workers=N)`: N processes on one machine update one set of params in shared memory
  without locks (Niu et al., 2011); hogwild.py.
- `downpour(replicas=R, shards=S, fetch_every=F, push_every=P)`: R model replicas as Dask tasks
  and a parameter server of S Dask actors (Dean et al., 2012); downpour.py and server.py.
"""
from __future__ import annotations

from typing import Any, Callable

from ..dsl.diagnostics import Diagnostic, DiagnosticError
from ..dsl.statements import PARALLEL, parallel_problem


def _hogwild(trainer):
    from .hogwild import Hogwild
    return Hogwild(trainer, **trainer.settings.parallel[1])


def _downpour(trainer):
    from .downpour import Downpour
    return Downpour(trainer, **trainer.settings.parallel[1])


# engine name -> constructor (each engine is a context manager with `epoch(train, lr, epochs, per_epoch)`)
ENGINES: dict[str, Callable[[Any], Any]] = {"hogwild": _hogwild, "downpour": _downpour}
# optimizers whose update needs more than (param, grad, slots): ESGD's Hessian-vector products
UNSUPPORTED_OPTIMIZERS = {"esgd": "it needs Hessian-vector products on the full batch"}


def engine_for(trainer):
    """The engine of `trainer.settings.parallel`, checked against what engines can run."""
    if trainer.settings.parallel is None:
        raise DiagnosticError([Diagnostic(trainer.spec.span, "`cluster` is for `parallel = downpour(...)`, "
                                                             "which this run does not use")])
    name, kwargs = trainer.settings.parallel
    problem = parallel_problem(name, kwargs)
    if problem is None and trainer.settings.cluster is not None and name != "downpour":
        problem = f"`cluster` is for `downpour`; `{name}` runs on this machine"
    opt = trainer.settings.optimizer[0]
    if problem is None and trainer.prog.device != "cpu":  # shared memory and Dask messages hold host arrays
        problem = f"`{name}` runs on the cpu device, not `{trainer.prog.device}`"
    if problem is None and opt in UNSUPPORTED_OPTIMIZERS:
        problem = f"`{name}` cannot run the `{opt}` optimizer: {UNSUPPORTED_OPTIMIZERS[opt]}"
    if problem is not None:
        raise DiagnosticError([Diagnostic(trainer.spec.span, problem)])
    return ENGINES[name](trainer)


def parse_option(text: str) -> tuple[str, dict[str, Any]]:
    """The CLI's `--parallel`: `hogwild:N`, `downpour:R` or `downpour:R,S,F,P` (the arguments of
    `hogwild(workers)` / `downpour(replicas, shards, fetch_every, push_every)` in order); raises
    ValueError with the reason."""
    name, _, args = text.partition(":")
    if name not in PARALLEL:
        raise ValueError(f"unknown parallel engine `{name}`; known: {', '.join(PARALLEL)}")
    keys = list(PARALLEL[name])
    values = [a.strip() for a in args.split(",")] if args else []
    if len(values) > len(keys):
        raise ValueError(f"`{name}` takes at most {len(keys)} numbers ({', '.join(keys)})")
    if not all(v.isdigit() for v in values):
        raise ValueError(f"expected {name}:{','.join(k.upper() for k in keys)} with positive integers")
    kwargs = dict(PARALLEL[name])
    kwargs.update({k: int(v) for k, v in zip(keys, values)})
    problem = parallel_problem(name, kwargs)
    if problem is not None:
        raise ValueError(problem)
    return name, kwargs
