"""Examples per second of parallel training (issue 8): single process, hogwild with 1 and 2 workers
on the sparse bag-of-bigrams model, downpour with 1 and 2 replicas on the moons network.

    python bench/parallel_bench.py                 # every configuration, 3 epochs each (~4 min here)
    python bench/parallel_bench.py --epochs 2 --only hogwild
    python bench/parallel_bench.py --json out.json

The rate of an epoch is its training examples over the time from its first step to its last
report (validation excluded); the table shows the median over the epochs after the first, which
pays for starting processes, lowering the program and loading the data in every worker (shown
apart as "startup": from `run()` to the first step report). Results and their explanation:
docs/distributed.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wengert.program import load  # noqa: E402
from wengert.train.loop import Trainer  # noqa: E402

BOW = ROOT / "models" / "bow_sparse.dl"
MOONS = ROOT / "models" / "moons.dl"


def downpour(replicas: int, fetch_every: int = 1, push_every: int = 1) -> tuple[str, dict]:
    return "downpour", {"replicas": replicas, "shards": 1, "fetch_every": fetch_every, "push_every": push_every}


# (label, program, parallel setting, group)
CONFIGS = [
    ("single process", BOW, None, "hogwild"),
    ("hogwild:1", BOW, ("hogwild", {"workers": 1}), "hogwild"),
    ("hogwild:2", BOW, ("hogwild", {"workers": 2}), "hogwild"),
    ("single process", MOONS, None, "downpour"),
    ("downpour:1", MOONS, downpour(1), "downpour"),
    ("downpour:2", MOONS, downpour(2), "downpour"),
    ("downpour:1,1,16,16", MOONS, downpour(1, 16, 16), "downpour"),
    ("downpour:2,1,16,16", MOONS, downpour(2, 16, 16), "downpour"),
]


class Clock:
    """A report callback: per epoch, the time of its first and last step report and its examples."""

    def __init__(self):
        self.begin = time.perf_counter()
        self.first_step: float | None = None
        self.epochs: dict[int, list[float]] = {}

    def __call__(self, event: str, **info) -> None:
        now = time.perf_counter()
        if event == "step":
            self.first_step = self.first_step or now
            span = self.epochs.setdefault(info["epoch"], [now, now, 0.0, 0.0])
            span[1] = now
            span[2] = info["examples_per_s"]
            span[3] = info["step"]


def measure(program: Path, parallel, epochs: int) -> dict:
    prog = load(program)
    clock = Clock()
    trainer = Trainer(prog, None, {"epochs": epochs, "parallel": parallel}, report=clock)
    history = trainer.run()
    rates = [span[2] for e, span in sorted(clock.epochs.items()) if e > 0] or [clock.epochs[0][2]]
    return {"examples_per_s": statistics.median(rates), "startup_s": clock.first_step - clock.begin,
            "final_loss": history[-1]["loss"], "final_valid_accuracy": history[-1].get("valid_accuracy"),
            "epochs": epochs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--only", choices=["hogwild", "downpour"], default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = []
    print("| program | configuration | examples/s | vs single process | startup s | final loss | valid acc |")
    print("|---|---|---:|---:|---:|---:|---:|")
    base: dict[str, float] = {}
    for label, program, parallel, group in CONFIGS:
        if args.only and group != args.only:
            continue
        r = measure(program, parallel, args.epochs)
        base.setdefault(group, r["examples_per_s"])
        r.update(program=program.name, configuration=label, speedup=r["examples_per_s"] / base[group])
        results.append(r)
        print(f"| {program.name} | {label} | {r['examples_per_s']:,.0f} | {r['speedup']:.2f} | "
              f"{r['startup_s']:.1f} | {r['final_loss']:.4f} | {r['final_valid_accuracy']:.3f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
