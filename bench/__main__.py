"""`python -m bench`: issue 9's workloads W1..W7 in wengert, hand-written NumPy, PyTorch, JAX and
autograd, timed side by side (bench/README.md)."""
from __future__ import annotations

import argparse
import os
import sys

QUICK_SCALE = 0.1
# Written out here because the thread settings below must precede the first import of NumPy.
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7")
FRAMEWORKS = ("wengert", "wengert-numpy", "wengert-interp", "numpy", "torch", "jax", "autograd")


def limit_threads(n: int) -> None:
    """n threads for every framework's BLAS, OpenMP and XLA (inherited by the memory children).
    On a shared 2-core machine, 2 BLAS threads stall each other whenever one is descheduled."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BENCH_THREADS"):
        os.environ[var] = str(n)
    if n == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="workloads, comma-separated (default: all), e.g. W3,W5")
    ap.add_argument("--frameworks", help="comma-separated, from " + ", ".join(FRAMEWORKS)
                    + " (default: all that import; wengert is its native level, wengert-numpy the NumPy replay, "
                         "wengert-interp interpreted)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per framework, after a warm-up (default 3)")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply the steps per round")
    ap.add_argument("--quick", action="store_true", help=f"steps per round x {QUICK_SCALE}, 2 rounds, no memory")
    ap.add_argument("--no-compile", action="store_true", help="wengert without compiled plans (interpreted)")
    ap.add_argument("--cold-cache", action="store_true",
                    help="an empty native-code cache (WENGERT_CACHE in a new temporary directory): warm-up = cold compile")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--threads", type=int, default=1, help="threads per framework (default 1)")
    ap.add_argument("--json", metavar="PATH", help="write every result to this JSON file")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    return ap.parse_args(argv)


def _split(text: str | None, known, what: str) -> list[str]:
    if text is None:
        return list(known)
    items = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in items if s not in known]
    if unknown:
        sys.exit(f"error: unknown {what} {', '.join(unknown)}; known: {', '.join(known)}")
    return items


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    limit_threads(args.threads)
    if args.cold_cache:
        import tempfile
        os.environ["WENGERT_CACHE"] = tempfile.mkdtemp(prefix="wengert-cache-")
    from .harness import (
        Options,
        markdown,
        meta,
        run_workload,
        table,
        targets,
        write_json,
    )
    from .workloads.common import can_compile
    keys = _split(args.only.upper() if args.only else None, WORKLOADS, "workload")
    frameworks = _split(args.frameworks, FRAMEWORKS, "framework")
    if args.frameworks is None and (args.no_compile or not can_compile()):
        frameworks = [f for f in frameworks if f not in ("wengert-numpy", "wengert-interp")]  # the same as "wengert" then
    opts = Options(frameworks, rounds=2 if args.quick and args.rounds == 3 else args.rounds,
                   steps_scale=args.steps_scale * (QUICK_SCALE if args.quick else 1.0),
                   compile=False if args.no_compile else None, memory=not (args.no_memory or args.quick))
    results = []
    for key in keys:
        results += run_workload(key, opts)
    from rich.console import Console
    Console(width=max(Console().width, 120)).print(table(results))
    for line in targets(results):
        print(line)
    if args.markdown:
        print(markdown(results))
    if args.json:
        write_json(args.json, results, meta(opts, argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
