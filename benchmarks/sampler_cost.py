"""Cost of sampling-based gradient regularisation per training update, against uniform sampling.

The set-up of the ``sgr`` suite (SRN hidden 100, batch 20, SGD with momentum,
20,000 cn2016 adding sequences, length T). It times, each as the median of
``--repeats``:

- a training update with uniform sampling (sampling, forward, BPTT, optimiser
  step), in blocks of ``--updates``;
- the same with ``sgr`` between refreshes (drawing from the eligible set, or
  composing a batch by rejection under ``rule=batch``);
- one refresh by itself, for each rule and pool size (``example``: a forward
  and one backward over the pool; ``batch``: per-example gradients of the pool);
- one evaluation (validation set of 1000 and the gradient profile), which a run
  makes every ``train.eval_every`` updates whatever the sampler.

and prints the overhead of ``sgr`` per update for every pool size and refresh
interval, ``(between-refresh update + refresh / interval) / uniform update - 1``,
then stores JSON.

    python benchmarks/sampler_cost.py [--lengths 100] [--pools 250 1000] [--refresh-every 50 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Callable

import torch

from longdeps.config import RunConfig
from longdeps.evaluation import evaluate
from longdeps.experiment import Run
from longdeps.gradients import hidden_gradient_norms
from longdeps.store import ResultStore

from figures import store_figures


def make_run(sampler: str, steps: int, root: str, pool: int = 1000, rule: str = "example",
             refresh_every: int = 50) -> Run:
    config = RunConfig().with_overrides([
        "task.name=adding", "task.variant=cn2016", f"task.seq_len={steps}", "task.train_size=20000", "task.val_size=1000",
        "cell.name=srn", "cell.hidden_size=100", "cell.recurrent_init=xavier", "cell.input_init=xavier",
        f"sampler.name={sampler}", "sampler.replacement=true", f"sampler.pool_size={pool}", f"sampler.rule={rule}",
        f"sampler.refresh_every={refresh_every}", f"sampler.early_step={steps // 2 - 1}", "sampler.min_eligible=20",
        "optimizer.name=sgd", "optimizer.lr=1e-4", "optimizer.momentum=0.9", "train.batch_size=20"])
    return Run(config, ResultStore(root))


def median_ms(action: Callable[[], None], repeats: int, per: int = 1) -> float:
    """Median milliseconds of ``action`` over ``repeats`` calls after one warm-up, divided by ``per``."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) / per)
    return statistics.median(times[1:]) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100])
    parser.add_argument("--pools", type=int, nargs="+", default=[250, 1000])
    parser.add_argument("--refresh-every", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--rules", nargs="+", default=["example", "batch"])
    parser.add_argument("--updates", type=int, default=50, help="updates per timed block")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="longdeps-results/benchmarks/sampler_cost.json")
    args = parser.parse_args()

    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    with tempfile.TemporaryDirectory() as root:
        for steps in args.lengths:
            uniform = make_run("uniform", steps, root)
            update_ms = median_ms(lambda: [uniform.train_step() for _ in range(args.updates)], args.repeats, args.updates)
            eval_ms = median_ms(lambda: (evaluate(uniform.model, uniform.task, uniform.task.split("val")),
                                         hidden_gradient_norms(uniform.model, uniform.evaluator.probe, uniform.task)), args.repeats)
            print(f"T={steps}: uniform update {update_ms:.2f} ms; one evaluation {eval_ms:.1f} ms")
            print(f"{'rule':>8} {'pool':>5} {'update ms':>10} {'refresh ms':>11} "
                  + " ".join(f"{'every ' + str(r):>10}" for r in args.refresh_every))
            for rule in args.rules:
                for pool in args.pools:
                    run = make_run("sgr", steps, root, pool, rule, refresh_every=10**9)
                    run.train_step()  # the first refresh
                    between_ms = median_ms(lambda: [run.train_step() for _ in range(args.updates)], args.repeats,
                                           args.updates)
                    refresh = run.sampler.refresh_batches if rule == "batch" else run.sampler.refresh
                    refresh_ms = median_ms(lambda: refresh(run.config.train.batch_size, run.data_generator), args.repeats)
                    overhead = {r: (between_ms + refresh_ms / r) / update_ms - 1 for r in args.refresh_every}
                    rows.append({"T": steps, "rule": rule, "pool": pool, "uniform_ms_per_update": round(update_ms, 2),
                                 "sgr_ms_between_refreshes": round(between_ms, 2), "refresh_ms": round(refresh_ms, 1),
                                 "evaluation_ms": round(eval_ms, 1),
                                 "overhead_by_refresh_interval": {str(r): round(o, 3) for r, o in overhead.items()}})
                    print(f"{rule:>8} {pool:>5} {between_ms:>10.2f} {refresh_ms:>11.1f} "
                          + " ".join(f"{o:>10.0%}" for o in overhead.values()), flush=True)
    store_figures(args.out, batch=20, hidden=100, updates_per_block=args.updates, repeats=args.repeats, rows=rows)


if __name__ == "__main__":
    main()
