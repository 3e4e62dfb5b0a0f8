"""`data` pipelines and `train` blocks: checked against tables of what each name accepts."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

from ..diagnostics import did_you_mean
from ..runtime.ir import DataSpec, TrainSpec, Var
from ..train import data, engines, loop, optim
from . import ast
from .calls import REQUIRED
from .values import AllVal, DType, RangeVal, describe

ANY_KEYWORDS = "**"  # the source takes column names as keywords


def keywords(fn: Callable[..., Any]) -> dict[str, Any]:
    """What a data source, transform, schedule or early-stopping rule accepts, read from its signature
    (wengert/train/): the parameters after the positional-only ones, REQUIRED where there is no
    default; `**columns` means it takes column names as keywords."""
    table: dict[str, Any] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            table[ANY_KEYWORDS] = None
        elif p.kind is not p.POSITIONAL_ONLY:
            table[p.name] = REQUIRED if p.default is p.empty else p.default
    return table


DATA_SOURCES = {name: keywords(fn) for name, fn in data.SOURCES.items()}
DATA_TRANSFORMS = {name: keywords(fn) for name, fn in {**data.ROW_TRANSFORMS, **data.VALUE_TRANSFORMS}.items()}
SCHEDULES = {name: keywords(fn) for name, fn in optim.SCHEDULES.items()}
EARLY_STOPPING = {name: keywords(fn) for name, fn in loop.EARLY_STOPPING.items()}
TRAIN_KEYS = ("data", "valid", "minimize", "optimizer", "epochs", "steps", "batch", "shuffle", "schedule",
              "clip_norm", "clip_value", "gradient_noise", "early_stopping", "metrics", "checkpoint", "parallel",
              "cluster", "seed", "strict")


def static_call(lw, e: ast.Expr, scope, table: dict[str, dict[str, Any]], what: str,
                first_arg: Any = None) -> tuple[str, dict[str, Any]] | None:
    """A call such as `adam(lr=0.01)` checked against a table of names and keywords."""
    if isinstance(e, ast.Name):
        e = ast.Call(e, (), (), span=e.span)
    if not isinstance(e, ast.Call) or not isinstance(e.func, ast.Name):
        lw.b.error(e.span, f"expected {what} such as `{next(iter(table))}(...)`")
        return None
    name = e.func.id
    if name not in table:
        lw.b.error(e.func.span, f"unknown {what} `{name}`" + did_you_mean(name, table)
                   + f"; known: {', '.join(table)}")
        return None
    spec = table[name]
    names = [k for k in spec if k != ANY_KEYWORDS]
    args = list(e.args)
    if e.piped:
        args = args[1:]  # the piped value is the data flowing in
    kwargs: dict[str, Any] = {}
    if len(args) > len(names):
        lw.b.error(args[len(names)].span, f"`{name}` takes at most {len(names)} positional arguments "
                                          f"({', '.join(names) or 'none'})")
        return None
    for n, a in zip(names, args):
        kwargs[n] = a.id if n == "column" and isinstance(a, ast.Name) else _static(lw, a, scope)
    for kw in e.kwargs:
        if kw.name not in spec and ANY_KEYWORDS not in spec:
            lw.b.error(kw.span, f"`{name}` has no argument `{kw.name}`" + did_you_mean(kw.name, names))
            return None
        if kw.name in kwargs:
            lw.b.error(kw.span, f"`{name}` got two values for `{kw.name}`")
            return None
        kwargs[kw.name] = kw.value.id if kw.name == "column" and isinstance(kw.value, ast.Name) \
            else _static(lw, kw.value, scope)
    missing = [n for n in names if spec[n] is REQUIRED and n not in kwargs]
    if missing:
        lw.b.error(e.span, f"`{name}` needs " + ", ".join(f"`{m}`" for m in missing))
        return None
    for n in names:
        kwargs.setdefault(n, spec[n])
    return name, kwargs


def _static(lw, e: ast.Expr, scope) -> Any:
    if isinstance(e, ast.Name) and scope.lookup(e.id) is None and e.id not in ("f32", "f64", "i32", "i64", "bool"):
        return e.id  # a column name such as `standardize(x)`
    v = lw.expr(e, scope)
    if isinstance(v, Var):
        lw.b.error(e.span, f"expected a value known when the program is checked, got {describe(v)}")
        return None
    if isinstance(v, RangeVal):
        return (v.start, v.stop)
    if isinstance(v, DType):
        return v.name
    return v


def _pipeline(e: ast.Expr) -> list[ast.Call]:
    """`src |> t1 |> t2` (nested calls) -> [src, t1, t2]."""
    stages = []
    while isinstance(e, ast.Call) and e.piped and e.args:
        stages.append(e)
        e = e.args[0]
    stages.append(e)
    return stages[::-1]


POSITIVE_COUNTS = {"examples", "features", "classes", "n", "per_language", "max_len"}


def _check_values(lw, stage: ast.Expr, name: str, kwargs: dict[str, Any]) -> bool:
    """Numbers a data source or transform needs in range (counts positive, fractions in (0, 1))."""
    for key, value in kwargs.items():
        if key in POSITIVE_COUNTS and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            lw.b.error(stage.span, f"`{name}`: `{key}` must be a positive integer, got {value!r}")
            return False
        if name == "split" and key == "fraction" and not (
                isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1):
            lw.b.error(stage.span, f"`split` takes the fraction of the examples in the first part, between 0 "
                                   f"and 1 (such as 0.8), got {value!r}")
            return False
    return True


def lower_data(lw, s: ast.DataDef, scope) -> None:
    if len(set(s.names)) != len(s.names):
        twice = next(n for n in s.names if s.names.count(n) > 1)
        lw.b.error(s.span, f"`{twice}` is bound twice in this data statement")
        return
    stages = _pipeline(s.pipeline)
    source = static_call(lw, stages[0], scope, DATA_SOURCES, "data source")
    transforms = []
    for stage in stages[1:]:
        t = static_call(lw, stage, scope, DATA_TRANSFORMS, "data transform")
        if t is None or not _check_values(lw, stage, *t):
            return
        transforms.append(t)
    if source is None or not _check_values(lw, stages[0], *source):
        return
    splits = sum(1 for name, _ in transforms if name == "split")
    if len(s.names) > 1 and splits != len(s.names) - 1:
        lw.b.error(s.span, f"binding {len(s.names)} names needs {len(s.names) - 1} `split` "
                           f"transform{'s' if len(s.names) > 2 else ''}, the pipeline has {splits}")
        return
    if len(s.names) == 1 and splits:
        lw.b.error(s.span, "`split` yields two data sets: bind them as `data (train, valid) = ...`")
        return
    for name in s.names:
        if name in lw.data:
            lw.b.error(s.span, f"data `{name}` is already defined (line {lw.data[name].span.line})")
            return
    spec = DataSpec(tuple(s.names), source, transforms, s.span, str(Path(s.span.source.path).parent))
    for name in s.names:
        lw.data[name] = spec


def lower_train(lw, s: ast.TrainDef, scope) -> None:
    if s.name in lw.trains:
        what = f"train `{s.name}`" if s.name else "an unnamed train block"
        lw.b.error(s.span, f"{what} is already defined (line {lw.trains[s.name].span.line})")
        return
    config: dict[str, Any] = {}
    minimize = None
    metrics: list[tuple[str, str]] = []
    seen: dict[str, ast.Keyword] = {}
    for entry in s.entries:
        key, value = entry.name, entry.value
        if key not in TRAIN_KEYS:
            lw.b.error(entry.span, f"unknown train setting `{key}`" + did_you_mean(key, TRAIN_KEYS))
            continue
        if key in seen:
            lw.b.error(entry.span, f"`{key}` is set twice (line {seen[key].span.line})")
            continue
        seen[key] = entry
        if key in ("data", "valid"):
            if not isinstance(value, ast.Name) or value.id not in lw.data:
                shown = value.id if isinstance(value, ast.Name) else "this"
                lw.b.error(value.span, f"`{shown}` is not a data set" + (
                    did_you_mean(value.id, lw.data) if isinstance(value, ast.Name) else ""))
                continue
            config[key] = value.id
        elif key == "minimize":
            minimize = _minimize(lw, value)
        elif key == "optimizer":
            config[key] = static_call(lw, value, scope, optim.OPTIMIZERS, "optimizer")
        elif key == "schedule":
            config[key] = static_call(lw, value, scope, SCHEDULES, "schedule")
        elif key == "parallel":
            config[key] = static_call(lw, value, scope, engines.keyword_tables(), "parallel engine")
            problem = engines.parallel_problem(*config[key]) if config[key] is not None else None
            if problem is not None:
                lw.b.error(value.span, problem)
        elif key == "early_stopping":
            config[key] = static_call(lw, value if isinstance(value, ast.Call) else ast.Call(
                ast.Name("early_stopping", span=value.span), (value,), (), span=value.span), scope,
                EARLY_STOPPING, "early stopping rule")
        elif key == "metrics":
            metrics = _metrics(lw, value, scope)
        else:
            config[key] = _train_value(lw, key, value, scope)
    if minimize is None and "minimize" not in seen:
        lw.b.error(s.span, "a train block needs `minimize = <a scalar named value>`")
    if "data" not in seen:
        lw.b.error(s.span, "a train block needs `data = <a data set>`")
    if "steps" in seen and "epochs" in seen:
        lw.b.error(seen["steps"].span, f"`steps` and `epochs` (line {seen['epochs'].span.line}) both say how long "
                                       "to train: keep one")
    if "cluster" in seen and (config.get("parallel") or ("",))[0] != "downpour":
        lw.b.error(seen["cluster"].span, "`cluster` is the Dask scheduler of `parallel = downpour(...)`, "
                                         "which this train block does not use")
    lw.trains[s.name] = TrainSpec(s.name, config, minimize, metrics, s.span,
                                  {k: e.value.span for k, e in seen.items()})


def _minimize(lw, value: ast.Expr) -> str | None:
    if not isinstance(value, ast.Name) or value.id not in lw.values:
        shown = f"`{value.id}`" if isinstance(value, ast.Name) else "this"
        lw.b.error(value.span, f"`minimize` needs a named value; {shown} is not one" + (
            did_you_mean(value.id, lw.values) if isinstance(value, ast.Name) else ""))
        return None
    t = lw.values[value.id].type
    if not t.is_error and any(lw.dims.resolve(d) != 1 for d in t.shape):
        lw.b.error(value.span, f"`minimize` needs a scalar, but `{value.id}` is {lw.fmt(t)} "
                               "(reduce it with mean or sum)")
        return None
    return value.id


def _metrics(lw, value: ast.Expr, scope) -> list[tuple[str, str]]:
    items = value.items if isinstance(value, ast.ListLit) else (value,)
    out, counts = [], {}
    for item in items:
        base = item.func.id if isinstance(item, ast.Call) and isinstance(item.func, ast.Name) else (
            item.id if isinstance(item, ast.Name) else "metric")
        counts[base] = counts.get(base, 0) + 1
        label = base if counts[base] == 1 else f"{base}_{counts[base]}"
        v = lw.tensor(lw.expr(item, scope), item.span)
        if not v.type.is_error and any(lw.dims.resolve(d) != 1 for d in v.type.shape):
            lw.b.error(item.span, f"a metric must be a scalar, got {lw.fmt(v.type)}")
            continue
        hidden, k = f"metric:{label}", 1
        while hidden in lw.hidden:  # the same label in another train block may be another value
            k += 1
            hidden = f"metric:{label}#{k}"
        lw.hidden[hidden] = v
        out.append((label, hidden))
    return out


def _train_value(lw, key: str, value: ast.Expr, scope) -> Any:
    v = _static(lw, value, scope)
    if key == "batch":
        if isinstance(v, AllVal) or (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            return "all" if isinstance(v, AllVal) else v
        lw.b.error(value.span, f"`batch` must be a positive integer or `all`, got {describe(v)}")
    elif key in ("epochs", "steps", "seed"):
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            return v
        lw.b.error(value.span, f"`{key}` must be a non-negative integer, got {describe(v)}")
    elif key in ("clip_norm", "clip_value", "gradient_noise"):
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return float(v)
        lw.b.error(value.span, f"`{key}` must be a positive number, got {describe(v)}")
    elif key in ("shuffle", "strict"):
        if isinstance(v, bool):
            return v
        lw.b.error(value.span, f"`{key}` must be true or false, got {describe(v)}")
    elif key in ("checkpoint", "cluster"):
        if isinstance(v, str) and (key != "cluster" or (v and not any(c.isspace() for c in v))):
            return v
        if isinstance(v, str):
            lw.b.error(value.span, f"`cluster` must be a Dask scheduler's address such as \"tcp://host:8786\", "
                                   f"got {v!r}")
            return None
        lw.b.error(value.span, f"`{key}` must be a string, got {describe(v)}")
    return None
