"""Cost of sampling-based gradient regularisation per training update, against uniform sampling.

The set-up of the ``sgr`` suite (SRN hidden 100, batch 20, SGD with momentum,
20,000 cn2016 adding sequences, a pool of 1000 estimated every 50 updates).
For each length T and sampler it times blocks of ``--updates`` training
updates (sampling, forward, BPTT, optimiser step; no evaluation) and takes
the median block; each block holds the same number of refreshes. It also
times one refresh (a forward and one backward over the pool) by itself.
Prints a table with the overhead of ``sgr`` relative to ``uniform`` and
stores JSON.

    python benchmarks/sampler_cost.py [--lengths 100 150] [--pool 1000] [--refresh-every 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from longdeps.config import RunConfig
from longdeps.experiment import Run
from longdeps.store import ResultStore

from figures import store_figures


def make_run(sampler: str, steps: int, pool: int, refresh_every: int, root: str) -> Run:
    config = RunConfig().with_overrides([
        "task.name=adding", "task.variant=cn2016", f"task.seq_len={steps}", "task.train_size=20000",
        "cell.name=srn", "cell.hidden_size=100", "cell.recurrent_init=xavier", "cell.input_init=xavier",
        f"sampler.name={sampler}", "sampler.replacement=true", f"sampler.pool_size={pool}",
        f"sampler.refresh_every={refresh_every}", "optimizer.name=sgd", "optimizer.lr=1e-4", "optimizer.momentum=0.9",
        "train.batch_size=20"])
    return Run(config, ResultStore(root))


def time_updates(run: Run, updates: int, repeats: int) -> float:
    """Median milliseconds per update over ``repeats`` blocks of ``updates`` updates (after one warm-up block)."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        for _ in range(updates):
            run.train_step()
        times.append((time.perf_counter() - start) / updates)
    return statistics.median(times[1:]) * 1e3


def time_refresh(run: Run, repeats: int) -> float:
    """Median milliseconds of one refresh of the ``sgr`` sampler (pool drawn, estimated, band applied)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run.sampler.refresh(run.config.train.batch_size, run.data_generator)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 150])
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--refresh-every", type=int, default=50)
    parser.add_argument("--updates", type=int, default=100, help="updates per timed block (a multiple of --refresh-every)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="longdeps-results/benchmarks/sampler_cost.json")
    args = parser.parse_args()

    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats} blocks of {args.updates} updates")
    print(f"{'T':>5} {'uniform ms/update':>18} {'sgr ms/update':>14} {'overhead':>9} {'one refresh ms':>15}")
    with tempfile.TemporaryDirectory() as root:
        for steps in args.lengths:
            line = {"T": steps, "pool": args.pool, "refresh_every": args.refresh_every}
            for sampler in ("uniform", "sgr"):
                run = make_run(sampler, steps, args.pool, args.refresh_every, root)
                line[f"{sampler}_ms_per_update"] = round(time_updates(run, args.updates, args.repeats), 2)
                if sampler == "sgr":
                    line["refresh_ms"] = round(time_refresh(run, args.repeats), 1)
            line["overhead"] = round(line["sgr_ms_per_update"] / line["uniform_ms_per_update"] - 1, 3)
            rows.append(line)
            print(f"{steps:>5} {line['uniform_ms_per_update']:>18.2f} {line['sgr_ms_per_update']:>14.2f} "
                  f"{line['overhead']:>8.0%} {line['refresh_ms']:>15.1f}", flush=True)
    store_figures(args.out, batch=20, hidden=100, updates_per_block=args.updates, repeats=args.repeats, rows=rows)


if __name__ == "__main__":
    main()
