"""The `wengert` command line."""
from __future__ import annotations

import sys
from typing import Any, Iterable

import click

from .diagnostics import DiagnosticError
from .feeds import parse_inputs, usage_error


def report(diagnostics: Iterable, stream=None) -> None:
    stream = stream or sys.stderr
    for d in diagnostics:
        print(d.render(), file=stream)


_strict_option = click.option("--strict", is_flag=True,
                              help="Warnings (such as outer-broadcast) are errors (exit status 2).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wengert")
def main() -> None:
    """wengert: deep-learning programs as small .dl files."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--ir", "show_ir", is_flag=True, help="Print the checked IR of each file.")
@_strict_option
def check(files: tuple[str, ...], show_ir: bool, strict: bool = False) -> None:
    """Parse and check FILES: one summary line each, or the diagnostics (exit status 2)."""
    from .dsl.lower import check_file
    failed = False
    for path in files:
        try:
            module = check_file(path, strict)
        except DiagnosticError as e:
            report(e.diagnostics)
            failed = True
            continue
        report(module.notes)
        click.echo(summary(module))
        if show_ir:
            click.echo(format_module(module))
    sys.exit(2 if failed else 0)


def summary(module) -> str:
    def typ(v) -> str:
        return module.type_of(v).__str__()

    def declared(v) -> str:  # an input's dims as written; a symbol other code fixed shows its size: `n=4`
        dims = [str(d) if not isinstance(module.dims.resolve(d), int) or module.dims.resolve(d) == d
                else f"{d}={module.dims.resolve(d)}" for d in v.type.shape]
        return f"{v.type.dtype}[{', '.join(dims)}]"
    inputs = ", ".join(f"{n}: {declared(d.var)}" for n, d in module.inputs.items()) or "none"
    params = ", ".join(f"{n}: {typ(p.var)}" for n, p in module.params.items() if p.kind == "param") or "none"
    state = [f"{n}: {typ(p.var)}" for n, p in module.params.items() if p.kind == "state"]
    values = ", ".join(module.values) or "none"
    parts = [f"{module.path}: ok", f"inputs {inputs}", f"params {params} ({module.param_count:,} parameters)"]
    if state:
        parts.append("state " + ", ".join(state))
    parts.append(f"values {values}")
    return "; ".join(parts)


def format_module(module) -> str:
    from .runtime.ir import format_block
    names = {d.var.id: n for n, d in module.inputs.items()}
    names.update({p.var.id: n for n, p in module.params.items()})
    for n, v in module.values.items():
        names.setdefault(v.id, n)
    args = ", ".join(f"{n}:{module.type_of(v)}" for v, n in
                     [(d.var, n) for n, d in module.inputs.items()] + [(p.var, n) for n, p in module.params.items()])
    outs = ", ".join(f"{n}={names.get(v.id, repr(v))}" for n, v in module.values.items())
    lines = [f"{{ lambda {args} . let", format_block(module.main, module.dims, names), f"  in ({outs}) }}"]
    for n, (v, _) in module.updates.items():
        lines.append(f"update {n} = {names.get(v.id, repr(v))}")
    return "\n".join(lines)


# ---------------------------------------------------------------- running programs
def _program(file: str, device: str = "cpu", params: str | None = None, strict: bool = False):
    """FILE checked (its warnings printed) and loaded (on `device`), with the params of
    `--params P.npz` when given."""
    from .program import Program
    prog = Program(_checked(file, strict), device)
    if params is not None:
        prog.load_params(params)
    return _announce(prog)


def _checked(file: str, strict: bool = False):
    """The checked module of FILE, its warnings printed on stderr."""
    from .dsl.lower import check_file
    module = check_file(file, strict)
    report(d for d in module.notes if d.severity == "warning")
    return module


def _announce(prog):
    """Say which OpenCL device a program runs on (on stderr, so --json output stays clean)."""
    if prog.backend is not None:
        info = prog.backend.info
        click.echo(f"device: {info.name} ({info.type}, {info.platform}) as opencl:{info.platform_index}:"
                   f"{info.device_index}", err=True)
    return prog


def _guard(fn):
    """Run a command body; user mistakes print as diagnostics with exit status 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DiagnosticError as e:
            report(e.diagnostics)
            sys.exit(2)
    return wrapper


def _show(values: dict[str, Any], as_json: bool) -> None:
    import json

    import numpy as np
    if as_json:
        click.echo(json.dumps({k: np.asarray(v).tolist() for k, v in values.items()}))
        return
    for k, v in values.items():
        text = np.array2string(np.asarray(v), precision=8, max_line_width=100)
        click.echo(f"{k} = {text}" if "\n" not in text else f"{k} =\n{text}")


_inputs_option = click.option("-i", "--input", "inputs", multiple=True, metavar="NAME=VALUE",
                              help="An input: a literal ([[1,2]], 3.5), file.npy, or file.npz:KEY.")
_params_option = click.option("--params", "params_path", default=None, type=click.Path(dir_okay=False),
                              metavar="P.npz", help="Start from these params and state (a params.npz "
                                                    "written by `wengert train`).")
_anomaly_option = click.option("--detect-anomaly", "detect_anomaly", is_flag=True,
                               help="Stop at the first NaN or Inf (forward or backward) and report its line.")
_device_option = click.option("--device", default="cpu", show_default=True, metavar="DEVICE",
                              help="cpu, opencl (the first GPU, else the first device) or opencl:P:D "
                                   "(see `wengert devices`).")


def _compile_options(fn):
    """--compile LEVEL (native, numpy, off) and --no-compile (off), as `compile_steps`."""
    fn = click.option("--no-compile", "compile_steps", flag_value="off",
                      help="Interpret every step (the same as --compile off).")(fn)
    return click.option("--compile", "compile_steps", type=click.Choice(["native", "numpy", "off"]),
                        default="native", show_default=True,
                        help="How repeating training steps run: native code (numba; the NumPy replay "
                             "when numba is missing), the NumPy replay (bit-identical to the "
                             "interpreter) or off (interpreted).")(fn)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--eval", "names", required=True, help="Named values to compute, comma separated.")
@_inputs_option
@click.option("--json", "as_json", is_flag=True, help="Print the values as JSON.")
@click.option("--update", "update", is_flag=True, help="Then apply the program's `update` statements once "
                                                      "and print the new values.")
@click.option("--steps", type=click.IntRange(1), default=1, show_default=True,
              help="With --update: apply the updates this many times (a training loop written with "
                   "`grad` and `update`), then print the values again.")
@click.option("--data", "data_name", default=None, metavar="NAME",
              help="Feed every row of the data set NAME (a `data` statement) as inputs; -i overrides.")
@_params_option
@_anomaly_option
@_device_option
@_strict_option
@_guard
def run(file: str, names: str, inputs: tuple[str, ...], as_json: bool, update: bool, steps: int = 1,
        data_name: str | None = None, params_path: str | None = None, detect_anomaly: bool = False,
        device: str = "cpu", strict: bool = False) -> None:
    """Evaluate named values of FILE."""
    prog = _program(file, device, params_path, strict)
    prog.detect_anomaly = detect_anomaly
    fed = {**_data_inputs(prog, data_name), **parse_inputs(inputs)}
    wanted = names.split(",")
    values = prog.run(wanted, inputs=fed)
    if update:
        for _ in range(steps):
            new = prog.apply_updates(fed)
        values.update({f"{k} (updated)" if not as_json else k: v for k, v in new.items()})
        if steps > 1:
            values.update({f"{k} (after {steps} steps)": v for k, v in prog.run(wanted, inputs=fed).items()})
    _show(values, as_json)


def _data_inputs(prog, name: str | None) -> dict[str, Any]:
    """Every row of a data set's columns that feed inputs of the program."""
    if name is None:
        return {}
    from .train import data as data_module
    if name not in prog.module.data:
        from .diagnostics import did_you_mean
        raise usage_error(f"--data {name}: no data set of that name" + did_you_mean(name, prog.module.data))
    dataset = data_module.load(prog.module.data[name])[name]
    rows = dataset.rows(slice(None))
    return {k: v for k, v in rows.items() if k in prog.module.inputs}


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--of", "of", required=True, help="The scalar named value to differentiate.")
@click.option("--wrt", default=None, help="Params, state or inputs, comma separated (default: all params).")
@click.option("--mode", type=click.Choice(["reverse", "forward"]), default="reverse")
@_inputs_option
@click.option("--json", "as_json", is_flag=True)
@_params_option
@_anomaly_option
@_device_option
@_guard
def grad(file: str, of: str, wrt: str | None, mode: str, inputs: tuple[str, ...], as_json: bool,
         params_path: str | None = None, detect_anomaly: bool = False, device: str = "cpu") -> None:
    """The gradient of a scalar named value."""
    prog = _program(file, device, params_path)
    prog.detect_anomaly = detect_anomaly
    grads = prog.grad(of, wrt=wrt.split(",") if wrt else None, mode=mode, inputs=parse_inputs(inputs))
    _show({f"d{of}/d{k}": v for k, v in grads.items()} if not as_json else grads, as_json)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--of", "of", required=True, help="The named value whose evaluation is listed.")
@_inputs_option
@click.option("--values/--no-values", default=True, help="Show each entry's value (default on).")
@click.option("--adjoints", is_flag=True, help="Add the adjoint column (reverse mode).")
@click.option("--tangents", is_flag=True, help="Add the tangent column (forward mode along --wrt).")
@click.option("--wrt", default=None, help="With --tangents: the input or param to seed (tangent 1).")
@click.option("--range", "span", default=None, help="Only entries A..B of the list.")
@_params_option
@_device_option
@_guard
def trace(file: str, of: str, inputs: tuple[str, ...], values: bool, adjoints: bool, tangents: bool,
          wrt: str | None, span: str | None, params_path: str | None = None, device: str = "cpu") -> None:
    """Print the Wengert list of one evaluation (like the book's figures 9-3 to 9-7)."""
    import numpy as np
    prog = _program(file, device, params=params_path)
    marks = {}
    if prog.backend is not None:  # ops that copy to the host and back are marked, never silent
        from .opencl.host import HOST_ROUND_TRIPS
        marks = {op: "host round trip" for op in HOST_ROUND_TRIPS}
    fed = parse_inputs(inputs)
    seeds = None
    if tangents:
        if not wrt:
            raise usage_error("--tangents needs --wrt NAME (the direction to seed)")
        seeds = {n: np.ones_like(prog._root_value(n, fed)) for n in wrt.split(",")}
        prog._wrt(list(seeds))
    t = prog.trace_with_derivatives(of, fed, adjoints=adjoints, tangents=seeds)
    start, stop = 0, None
    if span:
        a, _, b = span.partition("..")
        if not (a or "0").isdigit() or (b and not b.isdigit()):
            raise usage_error(f"--range {span}: expected A..B with entry numbers, such as 10..20")
        start, stop = int(a or 0), int(b) if b else None
        if stop is not None and stop <= start:
            raise usage_error(f"--range {span}: B must be larger than A (A..B shows entries A to B - 1)")
        if start >= len(t.entries):
            raise usage_error(f"--range {span}: the list has {len(t.entries)} entries, v0 to v{len(t.entries) - 1}")
    click.echo(t.format(values=values, adjoints=adjoints, tangents=tangents, start=start, stop=stop, marks=marks))


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--of", "of", required=True)
@click.option("--wrt", default=None)
@click.option("--order", type=click.IntRange(1, 2), default=2)
@_inputs_option
@_params_option
@_guard
def gradcheck(file: str, of: str, wrt: str | None, order: int, inputs: tuple[str, ...],
              params_path: str | None = None) -> None:
    """Compare forward and reverse mode with numerical differentiation."""
    from .runtime.gradcheck import GradCheckError, check_grads
    prog = _program(file, params=params_path)
    try:
        check_grads(prog, of, wrt=wrt.split(",") if wrt else None, order=order, inputs=parse_inputs(inputs))
    except GradCheckError as e:
        click.echo(f"gradcheck failed: {e}", err=True)
        sys.exit(1)
    click.echo(f"ok: forward and reverse mode of `{of}` agree with numerical differentiation (order {order})")


@main.command(name="inspect")
@click.argument("file", type=click.Path(dir_okay=False))
@_inputs_option
@_params_option
@click.option("--script", type=click.File("r"), default=None, help="Run the commands in this file, then exit.")
@_guard
def inspect_program(file: str, inputs: tuple[str, ...], params_path: str | None, script) -> None:
    """An interactive session over FILE: :eval, :trace, :entry, :grad, :adjoint, :set, :load, :check
    (:help lists them). Commands piped on stdin or given by --script run in turn, each output after
    `>>> COMMAND`; a failing command prints its error and the session goes on (exit status 0)."""
    from .inspect.session import main as session_main
    session_main(_program(file, params=params_path), parse_inputs(inputs), script)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--params", "params_path", required=True, type=click.Path(dir_okay=False), metavar="P.npz",
              help="The trained params (a params.npz written by `wengert train`).")
@click.option("--of", "of", required=True, help="The named values to predict, comma separated.")
@click.option("-i", "--input", "inputs", multiple=True, metavar="NAME=FILE",
              help="An input's rows: FILE.npy (memory-mapped), FILE.npz[:KEY] or FILE.csv (a header row optional).")
@click.option("--data", "data_name", default=None, metavar="DATA",
              help="Or read the inputs from a data set of the program (its pipeline, transforms included).")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False),
              help="OUT.npy, OUT.npz (one array per value) or OUT.csv (columns NAME_0..NAME_k).")
@click.option("--batch", type=click.IntRange(1), default=256, show_default=True, help="Rows per evaluation.")
@click.option("--argmax", is_flag=True, help="Write the index of each row's largest entry (class indices).")
@_device_option
@_guard
def predict(file: str, params_path: str, of: str, inputs: tuple[str, ...], data_name: str | None, out: str,
            batch: int, argmax: bool, device: str = "cpu") -> None:
    """Evaluate --of NAME for every row of the inputs with trained params (training off: no dropout),
    BATCH rows at a time, and write the rows to OUT."""
    from . import predict as predicting
    from .progress import RowsBar
    prog = _program(file, device, params_path)
    files = {}
    for item in inputs:
        name, sep, text = item.partition("=")
        if not sep or not name.isidentifier() or not text:
            raise usage_error(f"`-i {item}`: expected NAME=FILE (.npy, .npz, .npz:KEY or .csv)")
        files[name] = text
    if not files and data_name is None:
        raise usage_error("predict needs the inputs' rows: -i NAME=FILE for each input, or --data DATA")
    names = of.split(",")
    feeds = predicting.data_feeds(prog, data_name, predicting.needed_inputs(prog, names)) if data_name else {}
    feeds.update(predicting.file_feeds(prog, files))
    bar = RowsBar(f"predicting {of}")
    try:
        rows = predicting.predict(prog, names, feeds, out, batch=batch, argmax=argmax, progress=bar)
    finally:
        bar.close()
    click.echo(f"wrote {out} ({rows} rows)")


@main.command(name="export")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--params", "params_path", required=True, type=click.Path(dir_okay=False), metavar="P.npz",
              help="The trained params (a params.npz written by `wengert train`).")
@click.option("--of", "of", required=True, help="The named values the model computes, comma separated.")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="The model: OUT.onnx.")
@_guard
def export_command(file: str, params_path: str, of: str, out: str) -> None:
    """Write the inference graph of --of NAME (training off: no dropout, BatchNorm's running
    statistics) as an ONNX model, the params as initializers, symbolic dims as named dims."""
    from .export import OPSET, to_onnx
    if not out.lower().endswith(".onnx"):
        raise usage_error(f"-o {out}: an ONNX model is written to a file ending in .onnx")
    prog = _program(file, params=params_path)
    names = of.split(",")
    to_onnx(prog, names, out)

    def typ(names_vars) -> str:
        return ", ".join(f"{n}: {prog.module.type_of(v)}" for n, v in names_vars)
    inputs = typ((n, prog.module.inputs[n].var) for n in prog._needed_inputs([prog._var(n) for n in names]))
    click.echo(f"wrote {out} (ONNX opset {OPSET}; inputs {inputs or 'none'}; outputs "
               f"{typ((n, prog._var(n)) for n in names)})")


# ---------------------------------------------------------------- pictures
@main.command(name="graph")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--of", "of", required=True, help="The named value whose computation is drawn.")
@_inputs_option
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False),
              help="The picture: out.svg, out.png, out.pdf (drawn by Graphviz's dot) or out.dot.")
@click.option("--trace", "as_trace", is_flag=True, help="Draw the Wengert list of one evaluation, not the IR.")
@click.option("--adjoints", is_flag=True, help="Show each node's adjoint (reverse mode).")
@click.option("--tangents", is_flag=True, help="Show each node's tangent (forward mode along --wrt).")
@click.option("--wrt", default=None, help="With --tangents: the inputs or params to seed (tangent 1).")
@click.option("--expand", is_flag=True, help="Draw each layer's equations (in a cluster), not one box per layer.")
@click.option("--rankdir", type=click.Choice(["TB", "LR"]), default=None,
              help="Top to bottom or left to right (default: LR for small graphs).")
@_params_option
@_guard
def graph_command(file: str, of: str, inputs: tuple[str, ...], out: str, as_trace: bool, adjoints: bool,
                  tangents: bool, wrt: str | None, expand: bool, rankdir: str | None,
                  params_path: str | None = None) -> None:
    """Draw what --of NAME depends on with Graphviz: the dataflow graph, or with --trace the
    Wengert list of one evaluation (like the book's figures 9-1 to 9-7). Without Graphviz's
    `dot`, the DOT text is written next to OUT (exit status 0)."""
    from .inspect.graph import INSTALL_HINT, check_output, graph_dot, render
    fmt = check_output(out)
    if tangents and not wrt:
        raise usage_error("--tangents needs --wrt NAME (the direction to seed)")
    text = graph_dot(_program(file, params=params_path), of, parse_inputs(inputs), trace=as_trace, adjoints=adjoints,
                     tangents=tangents, wrt=wrt.split(",") if wrt else None, expand=expand, rankdir=rankdir)
    written = render(text, out)
    if written.fallback:
        click.echo(f"Graphviz's `dot` is not on PATH, so wrote {written.path} instead of {out}; {INSTALL_HINT}, "
                   f"then run `dot -T{fmt} {written.path} -o {out}`", err=True)
    click.echo(f"wrote {written.path}")


@main.command(name="report")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--of", "of", required=True, help="The named value evaluated (and differentiated, when scalar).")
@_inputs_option
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="The page: report.html.")
@click.option("--expand", is_flag=True, help="Draw each layer's equations, not one box per layer.")
@_params_option
@_guard
def report_command(file: str, of: str, inputs: tuple[str, ...], out: str, expand: bool,
                   params_path: str | None = None) -> None:
    """One self-contained HTML page: the source, the graph, the Wengert list with values and
    adjoints, and the gradient of --of NAME with respect to each param and float input given."""
    from .inspect.graph import INSTALL_HINT, dot_binary
    from .inspect.report import command_line, write_report
    written = write_report(_program(file, params=params_path), of, parse_inputs(inputs), out, expand=expand,
                           command=command_line(file, of, inputs, out, expand, params_path))
    if dot_binary() is None:
        click.echo(f"Graphviz's `dot` is not on PATH, so the report holds the graph as DOT text; {INSTALL_HINT}",
                   err=True)
    click.echo(f"wrote {written}")


@main.command(name="plot")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--x", "x", default=None, help="The named value along the horizontal axis of the curves.")
@click.option("--y", "ys", default="", help="Named values drawn as curves over --x, comma separated.")
@click.option("--points", "points", default="", metavar="X:Y,...",
              help="Pairs of named values drawn as scattered points (the data).")
@click.option("--logx", is_flag=True)
@click.option("--logy", is_flag=True)
@click.option("--title", default="")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="The picture (.png).")
@_inputs_option
@_guard
def plot_command(file: str, x: str | None, ys: str, points: str, logx: bool, logy: bool, title: str, out: str,
                 inputs: tuple[str, ...]) -> None:
    """Draw named values of one run of FILE: curves over --x and scattered --points (needs matplotlib)."""
    from pathlib import Path

    from .plot import plot_values
    curves = [y for y in ys.split(",") if y]
    pairs = [tuple(p.split(":", 1)) for p in points.split(",") if p]
    if any(len(p) != 2 for p in pairs):
        raise usage_error(f"--points {points}: expected X:Y pairs such as x_train:y_train")
    if curves and x is None:
        raise usage_error("--y needs --x (the values along the horizontal axis)")
    if not curves and not pairs:
        raise usage_error("nothing to draw: give --x and --y, or --points")
    names = list(dict.fromkeys(([x] if curves else []) + curves + [n for p in pairs for n in p]))
    prog = _program(file)
    values = prog.run(names, inputs=parse_inputs(inputs))
    click.echo(f"wrote {plot_values(values, x, curves, pairs, Path(out), logx, logy, title)}")


# ---------------------------------------------------------------- training
@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--train", "name", default=None, help="Which train block (default: the unnamed one).")
@click.option("--epochs", type=click.IntRange(0), default=None)
@click.option("--batch", default=None, help="Examples per step, or `all`.")
@_device_option
@click.option("--seed", type=int, default=None, help="Overrides the program's `seed`.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where history.csv, params.npz and the checkpoint go (default: runs/<program>).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint of an earlier run.")
@click.option("--resume-params", "resume_params", is_flag=True,
              help="Start a fresh run (optimizer, epochs, history) from the params of the run's checkpoint.")
@click.option("--overwrite", "--restart", "overwrite", is_flag=True,
              help="Start from scratch, replacing the checkpoint an earlier run left in --out.")
@click.option("--allow-path", "allow_paths", multiple=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Let the program's checkpoint path point into DIR, outside --out (repeatable).")
@click.option("--plot", is_flag=True, help="Also write curves.png (needs matplotlib).")
@click.option("--parallel", "parallel", default=None, metavar="ENGINE",
              help="hogwild:N (N processes, shared memory) or downpour:R[,S,F,P] (R replicas, S server "
                   "shards, fetch every F, push every P steps, on Dask); overrides the train block's `parallel`.")
@click.option("--cluster", default=None, metavar="ADDR",
              help="The Dask scheduler for downpour, such as tcp://host:8786 (default: a local cluster).")
@_anomaly_option
@_compile_options
@_strict_option
@_guard
def train(file: str, name: str | None, epochs: int | None, batch: str | None, device: str, seed: int | None,
          out_dir: str | None, resume: bool, plot: bool, parallel: str | None = None, cluster: str | None = None,
          detect_anomaly: bool = False, compile_steps: str = "native", strict: bool = False,
          resume_params: bool = False, overwrite: bool = False, allow_paths: tuple[str, ...] = ()) -> None:
    """Train FILE's train block, with a progress bar and one summary line per epoch."""
    from pathlib import Path

    from .program import Program
    from .progress import ConsoleReport
    from .train.loop import Trainer
    prog = _announce(Program(_checked(file, strict), device, seed=seed))
    prog.detect_anomaly = detect_anomaly
    prog.compile = compile_steps
    overrides = {"epochs": epochs, "batch": _batch(batch), "parallel": _parallel(parallel), "cluster": cluster}
    out = Path(out_dir) if out_dir else Path("runs") / Path(file).stem
    reporter = ConsoleReport()
    if resume + resume_params + overwrite > 1:
        raise usage_error("--resume, --resume-params and --overwrite/--restart exclude each other")
    trainer = Trainer(prog, name, overrides, out_dir=out, report=reporter, allow_paths=allow_paths,
                      overwrite=overwrite or resume_params)
    if resume or resume_params:
        history = trainer.run(resume_from=trainer.checkpoint_path(), params_only=resume_params)
    else:
        history = trainer.run()
    click.echo(f"wrote {out / 'history.csv'} and {out / 'params.npz'}")
    if plot:
        from .plot import plot_run
        if not history:
            click.echo("no epochs ran, so there are no learning curves to plot", err=True)
        for written in plot_run(trainer, history, out):
            click.echo(f"wrote {written}")


def _parallel(value: str | None):
    if value is None:
        return None
    from .train.engines import parse_option
    try:
        return parse_option(value)
    except ValueError as e:
        raise usage_error(f"--parallel {value}: {e}") from None


def _batch(value: str | None):
    if value is None:
        return None
    if value == "all":
        return "all"
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise usage_error(f"--batch {value}: expected a positive integer or `all`")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--train", "names", default=None, help="Train blocks to compare, comma separated (default: every named one).")
@click.option("--epochs", type=click.IntRange(1), default=None)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None)
@_compile_options
@_guard
def compare(file: str, names: str | None, epochs: int | None, out_dir: str | None,
            compile_steps: str = "native") -> None:
    """Train several train blocks of FILE from the same start and plot their losses together
    (the book's figure 8-14 comparison of SGD variants)."""
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from .dsl.lower import check_file
    from .plot import plot_comparison
    from .program import Program
    from .progress import ConsoleReport
    from .train.loop import Trainer
    module = check_file(file)
    blocks = names.split(",") if names else [n for n in module.trains if n is not None]
    if not blocks:
        raise usage_error(f"{file} has no named train blocks to compare")
    out = Path(out_dir) if out_dir else Path("runs") / Path(file).stem
    out.mkdir(parents=True, exist_ok=True)
    console = Console(highlight=False)
    histories, curves = {}, {}
    for block in blocks:
        console.print(f"[bold]{block}[/bold]")
        draw, points = ConsoleReport(console), []

        def report(event, draw=draw, points=points, **info):
            if event == "step":  # the training loss after every update, smoothed (figure 8-14's x axis)
                previous = points[-1][1] if points else info["batch_loss"]
                points.append((len(points) + 1, 0.98 * previous + 0.02 * info["batch_loss"]))
            draw(event, **info)
        prog = Program(check_file(file))
        prog.compile = compile_steps
        histories[block] = Trainer(prog, block, {"epochs": epochs}, out_dir=out / block, report=report,
                                   overwrite=True).run()  # a comparison is rerun from scratch
        curves[block] = points
    table = Table("train block", "final loss", "final valid_loss", "final valid metric")
    for block, history in histories.items():
        last = history[-1] if history else {}
        metric = next((k for k in last if k.startswith("valid_") and k != "valid_loss"), None)
        table.add_row(block, _figure(last, "loss"), _figure(last, "valid_loss"),
                      f"{metric} {last[metric]:.4f}" if metric else "-")
    console.print(table)
    click.echo(f"wrote {plot_comparison(curves, out / 'comparison.png')}")


def _figure(row: dict[str, float], key: str) -> str:
    """A figure of an epoch's row, or "-" when the run has none (no validation set, no epoch)."""
    return f"{row[key]:.4f}" if key in row else "-"


@main.command(name="eval")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--params", "params_path", required=True, type=click.Path(dir_okay=False),
              help="A params.npz written by `wengert train`.")
@click.option("--data", "data_name", default=None, help="The data set (default: the train block's valid, else data).")
@click.option("--train", "name", default=None, help="Whose loss and metrics (default: the unnamed train block).")
@_device_option
@_guard
def evaluate(file: str, params_path: str, data_name: str | None, name: str | None, device: str = "cpu") -> None:
    """Loss and metrics of saved params on a data set."""
    from .train.loop import Trainer
    prog = _program(file, device, params_path)
    trainer = Trainer(prog, name, {"data": data_name} if data_name else {})
    which = data_name or trainer.settings.valid or trainer.settings.data
    dataset = trainer.datasets.get(which)
    if dataset is None:
        from .train import data as data_module
        dataset = data_module.load(prog.module.data[which])[which]
    result = trainer.evaluate(dataset)
    click.echo("  ".join(f"{k} {v:.6g}" for k, v in result.items()) + f"  ({which}, {len(dataset)} examples)")


@main.command()
def devices() -> None:
    """List every OpenCL platform and device (name, type, clock, compute units, memories, fp64)."""
    from .opencl import NoOpenCLError, format_listing, list_devices
    try:
        infos = list_devices()
    except NoOpenCLError as e:
        click.echo(f"wengert: error: {e}", err=True)
        sys.exit(2)
    click.echo(format_listing(infos))
    click.echo("cpu: NumPy on the host (--device cpu, the default)")


@main.command()
@click.option("--stdio", is_flag=True, help="Talk over stdin/stdout (the default; editors often pass it).")
def lsp(stdio: bool) -> None:
    """A Language Server Protocol server for .dl files on stdin/stdout (diagnostics, hover with
    types, definitions, references, rename, symbols, completion, semantic tokens)."""
    try:
        from .lsp.server import main as serve
    except ImportError as e:
        raise click.ClickException(f"`wengert lsp` needs pygls ({e}); pip install \"wengert[lsp]\"") from None
    serve()


if __name__ == "__main__":
    main()


@main.group()
def cache() -> None:
    """The cache of generated native code ($WENGERT_CACHE, else ~/.cache/wengert)."""


@cache.command("info")
def cache_info() -> None:
    """Where the cache is and what it holds."""
    from .compiler import cache as code_cache
    info = code_cache.info()
    sources = info["sources"]
    click.echo(f"{info['directory']}: {sources} generated source{'s' if sources != 1 else ''}, "
               f"{info['files']} files, {info['bytes'] / 1e6:.1f} MB")


@cache.command("clear")
def cache_clear() -> None:
    """Remove every generated file (they are rebuilt when needed)."""
    from .compiler import cache as code_cache
    removed = code_cache.clear()
    click.echo(f"removed {removed} file{'s' if removed != 1 else ''} from {code_cache.root()}")
