"""Cost of one training step under each gradient estimator: time and peak memory.

For each cell (gru, lstm, srn), length T and hidden size it times one step
(forward, gradients, no optimiser) of ``bptt``, ``tbptt`` with k = 1 (fully
truncated) and ``dsf`` with each feedback (``stationary``, its diagonal,
``uniform``), next to a forward pass without gradients (the floor: the
forward is sequential under every estimator). A stationary feedback is
re-estimated every ``refresh_every`` (50) updates: its step time excludes
that, the refresh is timed alone, and the amortised figure adds a fiftieth
of it. Batch 32, input size 1, a loss on the last step only. Every
measurement runs in a fresh process, so its peak resident memory
(``ru_maxrss`` above the resident size before the first step) belongs to
that estimator alone; the time is the median of repeats. Prints a table with
ratios to bptt and stores JSON.

    python benchmarks/gradient_cost.py [--cells gru lstm srn] [--lengths 100 1000 4000] [--hidden 64 256]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from figures import store_figures

#: method -> (estimator, its options); "forward" is a forward pass without gradients
METHODS = {"forward": None, "bptt": ("bptt", {}), "tbptt": ("tbptt", {"truncation": 1}),
           "dsf": ("dsf", {"feedback": "stationary"}), "dsf-diagonal": ("dsf", {"feedback": "stationary-diagonal"}),
           "dsf-uniform": ("dsf", {"feedback": "uniform"})}


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def measure_one(cell_name: str, steps: int, hidden: int, method: str, batch: int, repeats: int) -> dict:
    """Time and peak memory of one configuration, in this process."""
    from longdeps.cells import make_cell
    from longdeps.gradients import make_estimator
    from longdeps.model import SequenceModel
    from longdeps.tasks import Batch, make_task

    torch.manual_seed(0)
    task = make_task("adding", steps)
    model = SequenceModel(make_cell(cell_name, 2, hidden), 1, "last")
    data = Batch(torch.randn(steps, batch, 2), torch.randn(batch))
    if method == "forward":
        def step():
            with torch.no_grad():
                model(data.x)
    else:
        name, options = METHODS[method]
        estimator = make_estimator(name, **options)

        def step():
            model.zero_grad(set_to_none=True)
            estimator.backward(model, data, task)
    before = resident_mb()
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {"cell": cell_name, "T": steps, "hidden": hidden, "method": method,
           "ms": round(statistics.median(times[1:]) * 1e3, 1), "peak_mb": round(peak - before, 1)}
    if method != "forward" and getattr(estimator, "kind", "").startswith("stationary"):
        states, _ = estimator.forward(model.cell, data.x, model.cell.initial_state(batch))
        start = time.perf_counter()
        estimator.refresh(model.cell, data.x, states)
        row["refresh_ms"] = round((time.perf_counter() - start) * 1e3, 1)
        row["amortised_ms"] = round(row["ms"] + row["refresh_ms"] / estimator.refresh_every, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["gru", "lstm", "srn"])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1000, 4000])
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="longdeps-results/benchmarks/gradient_cost.json")
    parser.add_argument("--one", nargs=4, metavar=("CELL", "T", "HIDDEN", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        cell, steps, hidden, method = args.one
        print(json.dumps(measure_one(cell, int(steps), int(hidden), method, args.batch, args.repeats)))
        return

    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, median of {args.repeats}")
    print(f"{'cell':5} {'T':>5} {'H':>4}  " + "  ".join(f"{m:>16}" for m in METHODS)
          + "   dsf refresh   bptt/dsf (amortised)")
    for cell in args.cells:
        for steps in args.lengths:
            for hidden in args.hidden:
                line = {}
                for method in METHODS:
                    out = subprocess.run([sys.executable, __file__, "--one", cell, str(steps), str(hidden), method,
                                          "--batch", str(args.batch), "--repeats", str(args.repeats)],
                                         capture_output=True, text=True, check=True)
                    line[method] = json.loads(out.stdout)
                    rows.append(line[method])
                cells = "  ".join(f"{line[m]['ms']:8.1f}ms {line[m]['peak_mb']:5.0f}MB" for m in METHODS)
                dsf = line["dsf"]
                print(f"{cell:5} {steps:>5} {hidden:>4}  {cells}   {dsf['refresh_ms']:9.1f}ms   "
                      f"{line['bptt']['ms'] / dsf['amortised_ms']:.2f}x", flush=True)
    store_figures(args.out, batch=args.batch, repeats=args.repeats, rows=rows)


if __name__ == "__main__":
    main()
