"""OpenCL vs NumPy, side by side in one run (issue 6):

    python bench/opencl_bench.py [--device P:D] [--json out.json] [--quick | --full] [--reps N]

- vector add of 5e6 f32 (the book's listing 10-2): NumPy, the OpenCL kernel alone, and the kernel
  with its host->device and device->host copies;
- matrix product f32 at 512, 1024, 2048: the book's naive kernel (listing 10-3, one work-item per
  element), the tiled kernel of wengert/opencl/gemm.py, NumPy (BLAS): ms and GFLOP/s, each checked
  against NumPy;
- one moons training step (models/moons.dl, batch 32) and one CNN training step
  (models/ch07/listing_7_07.dl, batch 128): forward + reverse w.r.t. every param, on
  `device="opencl"` vs the CPU backend (skipped with a message when the OpenCL backend cannot run them).

Timing: a warm-up call, then `--reps` samples; a sample is `inner` calls back to back ended by one
`queue.finish()` (inner chosen so that a sample lasts about 20 ms: a short GPU kernel is timed as
a pipeline runs it, not by one launch-and-wait round trip); the tables give the median (and the
minimum) wall time per call. `--quick` (the default on CPU OpenCL devices such as PoCL)
skips the naive kernel at 2048, which takes minutes there. Everything is printed to stdout;
`--json` also writes the numbers. Needs only numpy and pyopencl for the kernel parts: when the
wengert package cannot be imported (its other dependencies missing), the kernel modules are loaded
on their own and the training steps are skipped.
"""
from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# FP32 peak (non-tensor-core) GFLOP/s of some GPUs, from their vendors' data sheets.
PEAK_GFLOPS = {"H100 PCIe": 51_200, "H100 NVL": 60_000, "H100": 66_900, "H200": 66_900, "A100": 19_500,
               "V100": 15_700, "L40S": 91_600, "A10": 31_200, "T4": 8_100, "RTX 4090": 82_600}


def kernel_modules():
    """(programs, gemm) from wengert/opencl, importing the package when it can, else the two files alone."""
    try:
        from wengert.opencl import gemm, programs
        return programs, gemm, True
    except ImportError as e:
        print(f"note: `import wengert` failed ({e}); loading the kernel modules on their own")
        for name in ("wengert.opencl.gemm", "wengert.opencl.programs", "wengert.opencl", "wengert"):
            sys.modules.pop(name, None)
        for name, path in (("wengert", ROOT / "wengert"), ("wengert.opencl", ROOT / "wengert" / "opencl")):
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(path)]
            sys.modules[name] = pkg
        return (importlib.import_module("wengert.opencl.programs"), importlib.import_module("wengert.opencl.gemm"),
                False)


def timed(fn, reps: int, sync=lambda: None, budget_s: float = 0.02) -> dict:
    """Median and minimum seconds per call over `reps` samples. A sample runs `inner` calls back to
    back and syncs once (inner chosen so that a sample lasts about budget_s), so short GPU kernels
    are timed as a pipeline would run them, not by one launch-and-wait round trip each."""
    fn()  # warm-up: builds kernels, fills the pools
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - t0
    inner = max(1, min(200, int(budget_s / max(first, 1e-6))))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        times.append((time.perf_counter() - t0) / inner)
    return {"median_ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times), "reps": reps, "inner": inner}


def pick_device(cl, spec: str | None):
    platforms = cl.get_platforms()
    if spec:
        p, d = (int(v) for v in spec.split(":"))
        return platforms[p].get_devices()[d]
    devices = [d for p in platforms for d in p.get_devices()]
    gpus = [d for d in devices if d.type & cl.device_type.GPU]
    return (gpus or devices)[0]


def device_spec(cl, device) -> str:
    for p, plat in enumerate(cl.get_platforms()):
        for d, dev in enumerate(plat.get_devices()):
            if dev.int_ptr == device.int_ptr:
                return f"{p}:{d}"
    return "0:0"


def peak_of(device) -> float | None:
    for key, value in PEAK_GFLOPS.items():  # the longer, more specific names come first
        if key in device.name:
            return float(value)
    return None


def row(name: str, r: dict, flops: float | None = None, extra: str = "") -> str:
    gflops = "" if flops is None else f"{flops / (r['median_ms'] * 1e-3) / 1e9:10.1f}"
    return f"  {name:<34} {r['median_ms']:10.2f} {r['min_ms']:10.2f} {gflops:>10}  {extra}"


def bench_vector_add(cl, cla, programs, queue, reps: int) -> dict:
    n = 5_000_000
    rng = np.random.default_rng(0)
    a, b = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    da, db, dc = cla.to_device(queue, a), cla.to_device(queue, b), cla.empty(queue, n, np.float32)
    knl = programs.kernel(queue.context, "vector_add", "vector_add", ("-DT=float",))

    def device_only():
        knl(queue, (programs.round_up(n, 256),), (256,), da.data, db.data, dc.data, np.int32(n))

    def with_copies():
        ga, gb = cla.to_device(queue, a), cla.to_device(queue, b)
        gc = cla.empty(queue, n, np.float32)
        knl(queue, (programs.round_up(n, 256),), (256,), ga.data, gb.data, gc.data, np.int32(n))
        return gc.get()

    out = np.empty_like(a)
    res = {"numpy": timed(lambda: np.add(a, b, out=out), reps),
           "opencl kernel": timed(device_only, reps, queue.finish),
           "opencl with copies": timed(with_copies, reps, queue.finish)}
    device_only()
    assert np.array_equal(dc.get(), a + b), "vector add: wrong result"
    print(f"\nvector add, {n:.0e} f32 (listing 10-2)          median ms     min ms     GB/s")
    for name, r in res.items():
        gbs = 3 * 4 * n / (r["median_ms"] * 1e-3) / 1e9
        print(f"  {name:<34} {r['median_ms']:10.2f} {r['min_ms']:10.2f} {gbs:8.1f}")
    return res


def bench_gemm(cla, gemm, queue, sizes, reps: int, skip_naive_above: int | None, peak: float | None) -> list[dict]:
    import pyopencl.tools as cl_tools
    pool = cl_tools.MemoryPool(cl_tools.ImmediateAllocator(queue))  # outputs reuse buffers, as in the backend
    print("\nmatrix product C = A B, f32, square        median ms     min ms   GFLOP/s  max rel err / notes")
    return [gemm_size(cla, gemm, queue, pool, n, reps, skip_naive_above is not None and n > skip_naive_above, peak)
            for n in sizes]


def gemm_size(cla, gemm, queue, pool, n: int, reps: int, skip_naive: bool, peak: float | None) -> dict:
    rng = np.random.default_rng(n)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    ref = a @ b
    scale = np.abs(ref).max()
    da, db = cla.to_device(queue, a), cla.to_device(queue, b)
    flops = 2.0 * n ** 3
    entry = {"n": n, "flops": flops, "numpy": timed(lambda: a @ b, reps)}
    print(row(f"n={n} numpy (BLAS)", entry["numpy"], flops))
    last = {}

    def run(kernel):
        last["c"] = kernel(queue, da, db, allocator=pool)

    for key, kernel, label in (("tiled", gemm.matmul, "opencl tiled"), ("naive", gemm.naive_matmul,
                                                                       "opencl naive (listing 10-3)")):
        if key == "naive" and skip_naive:
            print(f"  n={n} opencl naive (listing 10-3)    skipped (--quick; pass --full to run it)")
            continue
        slow = key == "naive" and n >= 1024 and queue.device.type & 2  # 2: CL_DEVICE_TYPE_CPU
        r = timed(lambda k=kernel: run(k), min(reps, 3) if slow else reps, queue.finish)
        r["max_rel_err"] = float(np.abs(last["c"].get() - ref).max() / scale)
        entry[key] = r
        note = f"{r['max_rel_err']:.1e}"
        if peak and key == "tiled":
            note += f"  ({100 * flops / (r['median_ms'] * 1e-3) / 1e9 / peak:.1f}% of peak)"
        print(row(f"n={n} {label}", r, flops, note))
    if "naive" in entry:
        entry["tiled_vs_naive"] = entry["naive"]["median_ms"] / entry["tiled"]["median_ms"]
        print(f"  n={n} tiled is {entry['tiled_vs_naive']:.1f}x faster than naive")
    return entry


def _scalar(v) -> float:
    v = v.get() if hasattr(v, "get") else v
    return float(np.asarray(v).reshape(-1)[0])


def bench_step(spec: str, path: Path, feeds: dict, reps: int, label: str) -> dict | None:
    """One training step (forward + reverse w.r.t. every param) on opencl vs cpu."""
    import wengert
    cpu = wengert.load(path, device="cpu")
    try:
        dev = wengert.load(path, device=f"opencl:{spec}")
        dev.set_params(cpu.params)
        names = list(cpu.params)
        loss = "loss"
        values, grads = dev.value_and_grad(loss, names, feeds, training=False)
    except Exception as e:  # noqa: BLE001 - report any failure of the backend and go on
        print(f"  {label}: skipped, the OpenCL backend could not run it: {type(e).__name__}: {e}")
        return None
    cvalues, cgrads = cpu.value_and_grad(loss, names, feeds, training=False)
    err = max(float(np.abs(np.asarray(grads[n]) - cgrads[n]).max() / (np.abs(cgrads[n]).max() + 1e-30))
              for n in names)
    loss_err = abs(_scalar(values[loss]) - _scalar(cvalues[loss]))
    finish = getattr(getattr(dev, "backend", None), "queue", None)
    sync = finish.finish if finish is not None else (lambda: None)

    def dev_step():
        v, _ = dev.value_and_grad(loss, names, feeds, training=True, resident=True)
        _scalar(v[loss])  # the loss is what a training loop looks at every step

    res = {"cpu": timed(lambda: cpu.value_and_grad(loss, names, feeds, training=True), reps),
           "opencl": timed(dev_step, reps, sync), "loss_abs_err": loss_err, "grad_max_rel_err": err}
    print(row(f"{label} cpu (numpy)", res["cpu"]))
    print(row(f"{label} opencl", res["opencl"], None,
              f"{res['cpu']['median_ms'] / res['opencl']['median_ms']:.2f}x vs cpu; "
              f"loss err {loss_err:.1e}, grad rel err {err:.1e}"))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", help="P:D (platform and device index); default: the first GPU, else the first device")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--quick", action="store_true", default=None, help="skip the naive kernel at 2048 (default on CPU devices)")
    ap.add_argument("--full", action="store_true", help="run every case, the naive 2048 product included")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions (default 10 on GPUs, 3 on CPUs)")
    ap.add_argument("--sizes", default="512,1024,2048")
    ap.add_argument("--no-steps", action="store_true", help="skip the moons and CNN training steps")
    ap.add_argument("--peak-gflops", type=float, help="the device's FP32 peak, when the built-in table lacks it")
    args = ap.parse_args(argv)

    import pyopencl as cl
    import pyopencl.array as cla
    programs, gemm, have_wengert = kernel_modules()
    device = pick_device(cl, args.device)
    queue = cl.CommandQueue(cl.Context([device]))
    is_cpu = bool(device.type & cl.device_type.CPU)
    quick = (args.quick if args.quick is not None else is_cpu) and not args.full
    reps = args.reps or (3 if is_cpu else 10)
    peak = args.peak_gflops or peak_of(device)
    spec = args.device or device_spec(cl, device)
    print(f"device {spec}: {device.name} ({device.platform.name}, {cl.device_type.to_string(device.type)}, "
          f"{device.max_compute_units} compute units, {device.max_clock_frequency} MHz, "
          f"{device.global_mem_size / 2**30:.1f} GiB, driver {device.driver_version})")
    print(f"FP32 peak: {f'{peak:,.0f} GFLOP/s' if peak else 'unknown (pass --peak-gflops)'}; "
          f"numpy {np.__version__}; reps {reps}{'; quick' if quick else ''}")
    results: dict = {"device": {"spec": spec, "name": device.name, "platform": device.platform.name,
                                "compute_units": device.max_compute_units, "clock_mhz": device.max_clock_frequency,
                                "driver": device.driver_version, "peak_gflops": peak},
                     "numpy": np.__version__, "reps": reps, "quick": quick}
    results["vector_add"] = bench_vector_add(cl, cla, programs, queue, reps)
    sizes = [int(s) for s in args.sizes.split(",")]
    results["gemm"] = bench_gemm(cla, gemm, queue, sizes, reps, 1024 if quick else None, peak)
    if not args.no_steps:
        print("\ntraining step (forward + reverse, every param)   median ms     min ms")
        if not have_wengert:
            print("  skipped: the wengert package cannot be imported here")
        else:
            rng = np.random.default_rng(0)
            moons = {"x": rng.standard_normal((32, 2)), "y": np.eye(2)[rng.integers(0, 2, 32)]}
            results["moons_step"] = bench_step(spec, ROOT / "models" / "moons.dl", moons, max(reps, 5),
                                               "moons, batch 32 f64")
            cnn = {"x": rng.random((128, 28, 28), dtype=np.float32),
                   "y": np.eye(10, dtype=np.float32)[rng.integers(0, 10, 128)]}
            results["cnn_step"] = bench_step(spec, ROOT / "models" / "ch07" / "listing_7_07.dl", cnn, reps,
                                             "CNN 7-7, batch 128 f32")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
