"""Cost of one training step under each gradient estimator: time and peak memory.

For each cell (gru, lstm, srn), length T and hidden size it times one step
(forward, gradients, no optimiser) of ``bptt``, ``tbptt`` with k = 1 (fully
truncated) and ``dsf`` with each feedback (``stationary``, its diagonal,
``uniform``), next to a forward pass without gradients (the floor: the
forward is sequential under every estimator). A stationary feedback is
re-estimated every ``refresh_every`` (50) updates: its step time excludes
that, the refresh is timed alone, and the amortised figure adds a fiftieth
of it. Batch 32, input size 2 (the adding task's), a loss on the last step
only. On the CPU every measurement runs in a fresh process, so its peak
resident memory (``ru_maxrss`` above the resident size before the first
step) belongs to that estimator alone; the time is the median of repeats.
Prints a table with ratios to bptt and stores JSON. ``--methods`` measures
only the named ones.

``--device`` (default cpu) puts the model and the data on that device. On
CUDA the clock waits for the GPU's queued work, the peak memory is the most
GPU memory allocated (``torch.cuda.max_memory_allocated``) above what was
allocated before the first step, and every measurement runs in this process,
since the peak statistics can be reset and a fresh process would spend
seconds starting CUDA.

    python benchmarks/gradient_cost.py [--device cpu] [--cells gru lstm srn] [--lengths 100 1000 4000] [--hidden 64 256]
    python benchmarks/gradient_cost.py --device cuda --cells lstm srn --lengths 1000 4000 --hidden 256 --methods bptt dsf
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys

import torch

from figures import store_figures
from timing import device_label, gpu_name, timed

#: method -> (estimator, its options); "forward" is a forward pass without gradients
METHODS = {"forward": None, "bptt": ("bptt", {}), "tbptt": ("tbptt", {"truncation": 1}),
           "dsf": ("dsf", {"feedback": "stationary"}), "dsf-diagonal": ("dsf", {"feedback": "stationary-diagonal"}),
           "dsf-uniform": ("dsf", {"feedback": "uniform"})}


def resident_mb() -> float:
    """The resident memory of this process, in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def memory_before(device: torch.device) -> float:
    """MB in use before the first step, from which the peak is counted: on CUDA the GPU memory
    allocated (the peak statistics start again from it), elsewhere this process's resident memory."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    return resident_mb()


def memory_peak(device: torch.device) -> float:
    """The peak MB: on CUDA the most GPU memory allocated since ``memory_before``, elsewhere the most
    resident memory this process ever had (``ru_maxrss``, in kB on Linux)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_one(cell_name: str, steps: int, hidden: int, method: str, batch: int, repeats: int,
                device: torch.device) -> dict:
    """Time (median ms of ``repeats`` steps after a warm-up step) and peak memory (MB) of one
    configuration, in this process, on ``device``."""
    from longdeps.cells import make_cell
    from longdeps.gradients import make_estimator
    from longdeps.model import SequenceModel
    from longdeps.tasks import Batch, make_task

    torch.manual_seed(0)
    task = make_task("adding", steps)
    model = SequenceModel(make_cell(cell_name, 2, hidden), 1, "last").to(device)
    data = Batch(torch.randn(steps, batch, 2), torch.randn(batch)).to(device)
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
    before = memory_before(device)
    times = [timed(step, device) for _ in range(repeats + 1)]
    peak = memory_peak(device)
    row = {"cell": cell_name, "T": steps, "hidden": hidden, "method": method,
           "ms": round(statistics.median(times[1:]) * 1e3, 1), "peak_mb": round(peak - before, 1)}
    if method != "forward" and getattr(estimator, "kind", "").startswith("stationary"):
        states, _ = estimator.forward(model.cell, data.x, model.cell.initial_state(batch))
        refresh_seconds = timed(lambda: estimator.refresh(model.cell, data.x, states), device)
        row["refresh_ms"] = round(refresh_seconds * 1e3, 1)
        row["amortised_ms"] = round(row["ms"] + row["refresh_ms"] / estimator.refresh_every, 1)
    return row


def measure(cell: str, steps: int, hidden: int, method: str, args: argparse.Namespace) -> dict:
    """One configuration's row (``measure_one``): on CUDA measured in this process, elsewhere in a fresh
    process, so that the peak resident memory is this configuration's alone."""
    if args.device.type == "cuda":
        return measure_one(cell, steps, hidden, method, args.batch, args.repeats, args.device)
    out = subprocess.run([sys.executable, __file__, "--one", cell, str(steps), str(hidden), method,
                          "--batch", str(args.batch), "--repeats", str(args.repeats), "--device", str(args.device)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=torch.device, default="cpu", help="where to run (default: %(default)s)")
    parser.add_argument("--cells", nargs="+", default=["gru", "lstm", "srn"])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1000, 4000])
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS), metavar="METHOD",
                        help=f"measure only these, of {', '.join(METHODS)} (default: all)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="longdeps-results/benchmarks/gradient_cost.json")
    parser.add_argument("--one", nargs=4, metavar=("CELL", "T", "HIDDEN", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        cell, steps, hidden, method = args.one
        print(json.dumps(measure_one(cell, int(steps), int(hidden), method, args.batch, args.repeats, args.device)))
        return

    methods = [m for m in METHODS if m in args.methods]
    memory = "GPU memory allocated" if args.device.type == "cuda" else "resident memory, each in a fresh process"
    print(f"torch {torch.__version__} on {device_label(args.device)}, {torch.get_num_threads()} threads, "
          f"batch {args.batch}, median of {args.repeats}; peak MB: {memory}")
    if args.device.type == "cuda":  # a GPU's first steps also allocate the libraries' workspaces, which stay
        for cell in args.cells:
            measure_one(cell, min(args.lengths), min(args.hidden), "bptt", args.batch, 1, args.device)
    print(f"{'cell':5} {'T':>5} {'H':>4}  " + "  ".join(f"{m:>18}" for m in methods)
          + ("   dsf refresh" if "dsf" in methods else "")
          + ("   bptt/dsf (amortised)" if {"bptt", "dsf"} <= set(methods) else ""))
    rows = []
    for cell in args.cells:
        for steps in args.lengths:
            for hidden in args.hidden:
                line = {method: measure(cell, steps, hidden, method, args) for method in methods}
                rows.extend(line.values())
                text = "  ".join(f"{line[m]['ms']:8.1f}ms {line[m]['peak_mb']:5.0f}MB" for m in methods)
                if "dsf" in line:
                    text += f"   {line['dsf']['refresh_ms']:9.1f}ms"
                if "dsf" in line and "bptt" in line:
                    text += f"   {line['bptt']['ms'] / line['dsf']['amortised_ms']:.2f}x"
                print(f"{cell:5} {steps:>5} {hidden:>4}  {text}", flush=True)
    store_figures(args.out, device=str(args.device), gpu=gpu_name(args.device), batch=args.batch,
                  repeats=args.repeats, methods=methods, rows=rows)


if __name__ == "__main__":
    main()
