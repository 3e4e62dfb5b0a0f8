"""Timing and memory for `python -m bench` (bench/README.md).

Time: per workload, every framework first runs a warm-up (JIT compilation, wengert's plan
compilation, allocator and BLAS warm-up), then the frameworks take turns, round by round
(A B C A B C ...), each round `steps` training steps; a round's time per step is its wall time
divided by `steps`, and the table gives the median over the rounds. Interleaving spreads the
machine's load changes over all frameworks alike.

Memory: each (workload, framework) pair runs again in a fresh interpreter (`python -m
bench.harness --child ...`): after the setup (imports, data, params, the runner) the peak
resident set (VmHWM) is reset through /proc/self/clear_refs and the RSS noted; then up to 3
steps run from cold (3 for compiled wengert, whose plan takes over at the third). "Peak MB" is
VmHWM minus that RSS: the memory the training steps need beyond the data and the parameters,
including JIT compilation, compiled plans and allocator caches. `ru_maxrss` cannot be reset and
is inherited across fork, which is why it is not used.

NumPy warnings are silenced while timing: W2's loss is NaN by design (its gradient is finite).
"""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from .workloads import available, workload

REPO = Path(__file__).resolve().parent.parent
MEMORY_STEPS = 3  # steps of a memory child: a round's, at most 3 (3 for compiled wengert: its plan runs from the third)


@attrs.define
class Result:
    workload: str
    title: str
    framework: str
    steps: int                      # timed steps per round
    seconds_per_step: list[float] = attrs.Factory(list)  # one per round
    median_s: float | None = None
    min_s: float | None = None
    steps_per_s: float | None = None
    vs_numpy: float | None = None   # median / the NumPy reference's median in the same run
    peak_mb: float | None = None
    us_per_primitive: float | None = None  # W7
    primitives: int | None = None          # W7: primitives per call
    warmup_s: float | None = None   # wengert: the warm-up steps, compiling included (cache as found)
    error: str | None = None


@attrs.define
class Options:
    frameworks: list[str]
    rounds: int = 3
    steps_scale: float = 1.0
    compile: bool | None = None     # wengert's compiled plans (None: its default)
    memory: bool = True
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)


def warmup_steps(framework: str, steps: int, compile: bool | None) -> int:
    """A few steps; at least 3 for wengert with compiled plans, which replace tracing from the third."""
    compiled = framework in ("wengert", "wengert-numpy") and compile is not False
    return min(5, max(steps, 3 if compiled else 1))


def run_workload(key: str, opts: Options) -> list[Result]:
    """Warm-up, then `opts.rounds` interleaved rounds, then (optionally) the memory children."""
    wl = workload(key)
    results: dict[str, Result] = {}
    runners = {}
    steps = {fw: wl.steps_per_round(fw, opts.steps_scale) for fw in opts.frameworks}
    for fw in opts.frameworks:
        r = results[fw] = Result(key, wl.title, fw, steps[fw])
        if not available(fw):
            r.error = "not installed" if not fw.startswith("wengert") else "wengert has no compile switch"
            continue
        try:
            runners[fw] = wl.runner(fw, wl.setup(False), compile=opts.compile)
            runners[fw].prepare(warmup_steps(fw, steps[fw], opts.compile))
            with np.errstate(all="ignore"):
                t = time.perf_counter()
                runners[fw].run()
                r.warmup_s = time.perf_counter() - t
        except Exception as e:  # noqa: BLE001 -- one framework failing must not stop the table
            r.error = f"{type(e).__name__}: {e}"
            runners.pop(fw, None)
            opts.log(f"{key} {fw}: {r.error}\n{traceback.format_exc()}")
    primitives = wl.primitives(wl.setup(False)) if wl.primitives else None
    for k in range(opts.rounds):
        for fw, runner in list(runners.items()):
            runner.prepare(steps[fw])
            try:
                with np.errstate(all="ignore"):
                    t = time.perf_counter()
                    runner.run()
            except Exception as e:  # noqa: BLE001
                results[fw].error = f"{type(e).__name__}: {e}"
                results[fw].seconds_per_step.clear()
                del runners[fw]
                opts.log(f"{key} {fw}: {results[fw].error}\n{traceback.format_exc()}")
                continue
            results[fw].seconds_per_step.append((time.perf_counter() - t) / steps[fw])
        opts.log(f"{key} round {k + 1}/{opts.rounds}: " + ", ".join(
            f"{fw} {results[fw].seconds_per_step[-1] * 1e3:.3g} ms" for fw in runners))
    for fw in runners:
        r = results[fw]
        r.median_s = statistics.median(r.seconds_per_step)
        r.min_s = min(r.seconds_per_step)
        r.steps_per_s = 1 / r.median_s
        if primitives:
            r.primitives = primitives
            r.us_per_primitive = r.median_s / primitives * 1e6
    ref = results.get("numpy")
    for r in results.values():
        if ref is not None and ref.median_s and r.median_s:
            r.vs_numpy = r.median_s / ref.median_s
    if opts.memory:
        for fw in runners:
            n = min(MEMORY_STEPS, max(steps[fw], warmup_steps(fw, steps[fw], opts.compile)))
            results[fw].peak_mb = peak_memory_mb(key, fw, n, opts.compile, opts.log)
    return list(results.values())


# ----------------------------------------------------------------------------- memory
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+)", f.read(), re.MULTILINE).group(1))


def measure_child(key: str, framework: str, steps: int, compile: bool | None) -> float:
    """In a fresh interpreter: peak RSS growth (MB) over `steps` steps after the setup."""
    wl = workload(key)
    runner = wl.runner(framework, wl.setup(False), compile=compile)
    runner.prepare(steps)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    base = _status_kb("VmRSS")
    with np.errstate(all="ignore"):
        runner.run()
    return (_status_kb("VmHWM") - base) / 1024


def peak_memory_mb(key: str, framework: str, steps: int, compile: bool | None,
                   log: Callable[[str], None]) -> float | None:
    cmd = [sys.executable, "-m", "bench.harness", "--child", key, framework, str(steps), repr(compile)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
    if out.returncode != 0:
        log(f"{key} {framework}: memory child failed: {out.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- output
def meta(opts: Options, argv: list[str]) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version
    versions = {}
    for name in ("numpy", "torch", "jax", "autograd", "wengert"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": argv, "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
            "versions": versions, "rounds": opts.rounds, "steps_scale": opts.steps_scale,
            "compile": opts.compile, "memory": "VmHWM growth over RSS after setup, fresh interpreter"}


def write_json(path: str | Path, results: list[Result], info: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps({"meta": info, "results": [attrs.asdict(r) for r in results]}, indent=1))


def _rate(per_s: float) -> str:
    return f"{per_s:,.0f}" if per_s >= 100 else f"{per_s:.3g}"


def table(results: list[Result]):
    from rich.table import Table
    t = Table(title="median time per step (interleaved rounds); vs numpy = ratio to the hand-written NumPy "
                    "reference in the same run")
    for col, right in (("workload", False), ("framework", False), ("steps/round", True), ("ms/step", True),
                       ("min ms", True), ("steps/s", True), ("vs numpy", True), ("peak MB", True),
                       ("µs/prim", True), ("warm-up s", True)):
        t.add_column(col, justify="right" if right else "left")
    previous = None
    for r in results:
        name = r.workload if r.workload != previous else ""
        if name and previous is not None:
            t.add_section()
        previous = r.workload
        if r.median_s is None:
            t.add_row(name, r.framework, "", "-", "", "", "", "", "", "", style="dim")
            continue
        t.add_row(name, r.framework, str(r.steps), f"{r.median_s * 1e3:.3f}", f"{r.min_s * 1e3:.3f}",
                  _rate(r.steps_per_s),
                  f"{r.vs_numpy:.2f}x" if r.vs_numpy else "", f"{r.peak_mb:.1f}" if r.peak_mb is not None else "",
                  f"{r.us_per_primitive:.2f}" if r.us_per_primitive else "",
                  f"{r.warmup_s:.2f}" if r.warmup_s is not None and r.framework.startswith("wengert") else "")
    return t


def markdown(results: list[Result]) -> str:
    """The table as Markdown (for bench/README.md)."""
    lines = ["| workload | framework | ms/step | min ms | steps/s | vs numpy | peak MB | µs/prim | warm-up s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if r.median_s is None:
            lines.append(f"| {r.workload} | {r.framework} | – ({r.error}) | | | | | | |")
            continue
        lines.append(f"| {r.workload} | {r.framework} | {r.median_s * 1e3:.3f} | {r.min_s * 1e3:.3f} | "
                     f"{_rate(r.steps_per_s)} | {'' if r.vs_numpy is None else f'{r.vs_numpy:.2f}x'} | "
                     f"{'' if r.peak_mb is None else f'{r.peak_mb:.1f}'} | "
                     f"{'' if r.us_per_primitive is None else f'{r.us_per_primitive:.2f}'} | "
                     f"{f'{r.warmup_s:.2f}' if r.warmup_s is not None and r.framework.startswith('wengert') else ''} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- issue 14's targets
# (workload, what, measure, limit): met when wengert's measure in this run is at most the limit
TARGETS = [
    ("W1", "wengert time <= 0.9x numpy", "vs_numpy", 0.9),
    ("W1", "wengert not slower than jax", "vs_jax", 1.0),
    ("W2", "wengert time <= 0.9x numpy", "vs_numpy", 0.9),
    ("W2", "wengert not slower than jax", "vs_jax", 1.0),
    ("W3", "wengert time <= 0.5x numpy", "vs_numpy", 0.5),
    ("W3", "wengert faster than jax", "vs_jax", 1.0),
    ("W3", "moonshot: wengert time <= 0.15x numpy", "vs_numpy", 0.15),
    ("W4", "wengert time <= 0.5x numpy", "vs_numpy", 0.5),
    ("W4", "wengert faster than jax", "vs_jax", 1.0),
    ("W4", "moonshot: wengert time <= 0.15x numpy", "vs_numpy", 0.15),
    ("W5", "wengert throughput >= torch (time <= 1.0x)", "vs_torch", 1.0),
    ("W5", "wengert peak memory <= numpy", "memory_vs_numpy", 1.0),
    ("W6", "wengert faster than jax", "vs_jax", 1.0),
    ("W6", "wengert faster than torch", "vs_torch", 1.0),
]


def targets(results: list[Result]) -> list[str]:
    """Issue 9's targets against this run: one line each, for the workloads that ran."""
    by = {(r.workload, r.framework): r for r in results}
    lines = []
    for key, what, measure, limit in TARGETS:
        w, n, t, j = (by.get((key, fw)) for fw in ("wengert", "numpy", "torch", "jax"))
        value = None
        if w is not None and w.median_s:
            if measure == "vs_numpy":
                value = w.vs_numpy
            elif measure == "vs_torch" and t is not None and t.median_s:
                value = w.median_s / t.median_s
            elif measure == "vs_jax" and j is not None and j.median_s:
                value = w.median_s / j.median_s
            elif measure == "memory_vs_numpy" and n is not None and n.peak_mb and w.peak_mb is not None:
                value = w.peak_mb / n.peak_mb
        if value is not None:
            label = {"vs_numpy": "x numpy", "vs_torch": "x torch's time", "vs_jax": "x jax's time",
                     "memory_vs_numpy": "x numpy's memory"}
            lines.append(f"{key}: {what}: {value:.3f}{label[measure]} -> {'met' if value <= limit else 'NOT met'}")
    for fw in ("wengert", "wengert-numpy", "wengert-interp"):
        r = by.get(("W7", fw))
        if r is not None and r.us_per_primitive:
            lines.append(f"W7: {fw}: {r.us_per_primitive:.2f} µs per primitive"
                         + (f" (target <= 0.15 -> {'met' if r.us_per_primitive <= 0.15 else 'NOT met'})" if fw == "wengert" else ""))
    return lines


def main_child(argv: list[str]) -> None:
    key, framework, steps, compile_ = argv
    print(json.dumps(measure_child(key, framework, int(steps), {"None": None, "True": True, "False": False}[compile_])))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        main_child(sys.argv[2:])
    else:
        sys.exit("usage: python -m bench  (this module's own entry is the memory child)")
