"""The long fuzz run of issue 19 (not in CI): mutated programs of models/ and the standard library,
each checked and, when it checks, run with small inputs, a gradient and its updates; counts crashes
(anything but values or diagnostics) and hangs (a check or run past the time limit).

    python scripts/fuzz.py --programs 100000 --seed 1 [--workers 2]

Derandomized: program K of seed S is `tests/test_fuzz.py::fuzz_one(S * 1_000_003 + K)`, so a crash's
number reproduces it: `python scripts/fuzz.py --only NUMBER` prints the program and the traceback.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
HANG_SECONDS = 30  # a program taking longer than this to check and run counts as a hang


def _setup() -> None:
    import resource

    import test_fuzz

    from wengert.dsl import limits
    limits.physical_memory = lambda: 256 << 20  # as in CI: a regressed checker cannot take the machine down
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    workdir = tempfile.mkdtemp(prefix="wengert-fuzz-")
    for name, text in test_fuzz.IMPORTABLE.items():
        Path(workdir, name).write_text(text, encoding="utf-8")
    os.chdir(workdir)


def _one(number: int) -> tuple[int, str, str]:
    import signal

    import test_fuzz

    def hang(signum, frame):
        raise TimeoutError(f"no result after {HANG_SECONDS} s")
    signal.signal(signal.SIGALRM, hang)
    signal.alarm(HANG_SECONDS)
    try:
        outcome = test_fuzz.fuzz_one(number)  # runs past test_fuzz.RUN_SECONDS come back as "slow"
        return number, ("hang" if outcome == "slow" else outcome), ""
    except TimeoutError as e:
        return number, "hang", str(e)
    except BaseException as e:  # noqa: BLE001 - the fuzzer's job is to count them
        return number, "crash", f"{type(e).__name__}: {str(e)[:300]}"
    finally:
        signal.alarm(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--only", type=int, default=None, help="Reproduce one program by its number.")
    args = ap.parse_args()
    if args.only is not None:
        _setup()
        import test_fuzz
        rng = random.Random(args.only)
        text = test_fuzz.mutate(test_fuzz.Chooser(rng=rng), rng.choice(test_fuzz.RUN_CORPUS), 3)
        print(text)
        print("-" * 60)
        try:
            print(test_fuzz.fuzz_one(args.only))
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        return
    numbers = [args.seed * 1_000_003 + k for k in range(args.programs)]
    tally: dict[str, int] = {}
    failures: list[tuple[int, str, str]] = []
    start = time.monotonic()
    with mp.get_context("fork").Pool(args.workers, initializer=_setup, maxtasksperchild=2000) as pool:
        for k, (number, outcome, detail) in enumerate(pool.imap_unordered(_one, numbers, chunksize=50), 1):
            tally[outcome] = tally.get(outcome, 0) + 1
            if outcome in ("crash", "hang"):
                failures.append((number, outcome, detail))
                print(f"{outcome}: program {number}: {detail}", flush=True)
            if k % 5000 == 0:
                print(f"{k} programs, {time.monotonic() - start:.0f} s: {tally}", flush=True)
    print(f"{args.programs} programs in {time.monotonic() - start:.0f} s: {dict(sorted(tally.items()))}")
    print(f"crashes {tally.get('crash', 0)}, hangs {tally.get('hang', 0)}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
