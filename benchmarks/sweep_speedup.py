"""Wall-clock speed-up of a sweep on the local process pool over the same sweep run sequentially.

Sweeps ``benchmarks/sweep-speedup.yaml`` (16 short runs: adding at T = 50,
srn and lstm x 8 seeds, 300 updates each) into fresh results roots, in turns:
in this process one run after another, with torch's default threads (all
cores) and with one thread, and on the local pool (``--workers``, each with
cores // workers threads). Times include starting the pool. Prints the
median times over ``--repeats`` turns and the pool's speed-up over each
sequential sweep, and stores the figures as JSON. ``--set`` changes the
suite's base config (e.g. ``--set cell.hidden_size=32``).

    python benchmarks/sweep_speedup.py [--workers 2] [--repeats 3] [--set section.key=value ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from longdeps.store import ResultStore
from longdeps.sweep import Executor, LocalPool, Sequential, Suite, cpu_cores, load_suite, run_suite

from figures import store_figures

SUITE = Path(__file__).resolve().parent / "sweep-speedup.yaml"


def timed_sweep(suite: Suite, executor: Executor) -> tuple[float, float]:
    """Seconds to sweep ``suite`` into a fresh results root, and the mean test metric of its runs."""
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        outcomes = run_suite(suite, root, executor, progress=False)
        seconds = time.perf_counter() - start
        if any(o.status != "finished" for o in outcomes):
            raise RuntimeError(f"runs failed: {[o.error for o in outcomes if o.error]}")
        metric = statistics.fmean(r["test_metric"] for r in ResultStore(root).runs())
    return seconds, metric


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", nargs="*", default=[], metavar="section.key=value", help="change the base config")
    parser.add_argument("--out", default="longdeps-results/benchmarks/sweep_speedup.json")
    args = parser.parse_args()
    suite = load_suite(str(SUITE))
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        suite.base.setdefault(section, {})[name] = value
    threads = torch.get_num_threads()
    pool = LocalPool(args.workers)
    executors = {f"sequential, {threads} threads": Sequential(threads), "sequential, 1 thread": Sequential(1),
                 f"pool, {pool.slots} workers x {pool.threads} threads": pool}
    times: dict[str, list[float]] = {name: [] for name in executors}
    metrics: dict[str, float] = {}
    for turn in range(args.repeats):
        for name, executor in executors.items():
            seconds, metrics[name] = timed_sweep(suite, executor)
            times[name].append(round(seconds, 2))
            print(f"turn {turn + 1}: {name:32s} {seconds:6.1f} s", flush=True)
    medians = {name: statistics.median(t) for name, t in times.items()}
    *sequential, parallel = executors
    speedups = {name: round(medians[name] / medians[parallel], 3) for name in sequential}
    print(f"{len(suite.configs())} runs on {cpu_cores()} cores, torch {torch.__version__}, base {suite.base}")
    print(f"median of {args.repeats}: " + ", ".join(f"{name} {t:.1f} s" for name, t in medians.items()))
    print("pool speed-up: " + ", ".join(f"{ratio:.2f}x over {name}" for name, ratio in speedups.items()))
    store_figures(args.out, cores=cpu_cores(), suite=SUITE.name, base=suite.base, runs=len(suite.configs()),
                  seconds=times, median_seconds=medians, pool_speedup=speedups, mean_test_metric=metrics)


if __name__ == "__main__":
    main()
