"""Engines that run an epoch's steps on several processes (`parallel = NAME(...)` in a train block,
`--parallel NAME:ARGS` on the command line) plug into the training loop through this registry.

An engine registers its name, its keyword arguments (every one a positive count, with its
default) and a constructor taking the Trainer; the constructor returns a context manager
with `epoch(train, lr, epochs, per_epoch)`. The loop looks engines up here by name and never
imports them (wengert/parallel/ registers hogwild and downpour when the package is imported).
"""
from __future__ import annotations

from typing import Any, Callable

import attrs

from ..diagnostics import Diagnostic, DiagnosticError, did_you_mean


@attrs.frozen
class Engine:
    keywords: dict[str, int]  # argument -> default
    build: Callable[[Any], Any]  # Trainer -> context manager with `epoch(...)`; raises DiagnosticError


ENGINES: dict[str, Engine] = {}


def register(name: str, keywords: dict[str, int], build: Callable[[Any], Any]) -> None:
    ENGINES[name] = Engine(dict(keywords), build)


def keyword_tables() -> dict[str, dict[str, int]]:
    """name -> keywords with defaults, the table the checker validates `parallel = ...` against."""
    return {name: dict(engine.keywords) for name, engine in ENGINES.items()}


def parallel_problem(name: str, kwargs: dict[str, Any]) -> str | None:
    """What is wrong with a parallel setting `name(**kwargs)` (every argument is a count), or None;
    shared by train blocks and the CLI's --parallel."""
    if name not in ENGINES:
        return f"unknown parallel engine `{name}`" + did_you_mean(name, ENGINES) + f"; known: {', '.join(ENGINES)}"
    keywords = ENGINES[name].keywords
    for key, value in kwargs.items():
        if key not in keywords:
            return f"`{name}` has no argument `{key}`" + did_you_mean(key, keywords)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return f"`{name}`: `{key}` must be a positive integer, got {value!r}"
    return None


def engine_for(trainer):
    """The engine of `trainer.settings.parallel`, built for this run."""
    if trainer.settings.parallel is None:
        raise DiagnosticError([Diagnostic(trainer.spec.span, "`cluster` is for `parallel = downpour(...)`, "
                                                             "which this run does not use")])
    name, kwargs = trainer.settings.parallel
    problem = parallel_problem(name, kwargs)
    if problem is not None:
        raise DiagnosticError([Diagnostic(trainer.spec.span, problem)])
    return ENGINES[name].build(trainer)


def parse_option(text: str) -> tuple[str, dict[str, Any]]:
    """The CLI's `--parallel`: `NAME:N,M,...`, the engine's arguments in order (`hogwild:2`,
    `downpour:R,S,F,P`); raises ValueError with the reason."""
    name, _, args = text.partition(":")
    if name not in ENGINES:
        raise ValueError(f"unknown parallel engine `{name}`; known: {', '.join(ENGINES)}")
    defaults = ENGINES[name].keywords
    keys = list(defaults)
    values = [a.strip() for a in args.split(",")] if args else []
    if len(values) > len(keys):
        raise ValueError(f"`{name}` takes at most {len(keys)} numbers ({', '.join(keys)})")
    if not all(v.isdigit() for v in values):
        raise ValueError(f"expected {name}:{','.join(k.upper() for k in keys)} with positive integers")
    kwargs = dict(defaults)
    kwargs.update({k: int(v) for k, v in zip(keys, values)})
    problem = parallel_problem(name, kwargs)
    if problem is not None:
        raise ValueError(problem)
    return name, kwargs
