"""The `wengert` command line."""
from __future__ import annotations

import sys
from typing import Iterable

import click

from .dsl.diagnostics import DiagnosticError


def report(diagnostics: Iterable, stream=None) -> None:
    stream = stream or sys.stderr
    for d in diagnostics:
        print(d.render(), file=stream)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wengert")
def main() -> None:
    """wengert: deep-learning programs as small .dl files."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--ir", "show_ir", is_flag=True, help="Print the checked IR of each file.")
def check(files: tuple[str, ...], show_ir: bool) -> None:
    """Parse and check FILES: one summary line each, or the diagnostics (exit status 2)."""
    from .dsl.lower import check_file
    failed = False
    for path in files:
        try:
            module = check_file(path)
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
    inputs = ", ".join(f"{n}: {typ(d.var)}" for n, d in module.inputs.items()) or "none"
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


if __name__ == "__main__":
    main()
