"""Cost of one training step under each gradient estimator: time and peak memory.

For each cell (gru, lstm, srn), length T and hidden size it times one step
(forward, gradients, no optimiser) of ``bptt``, ``tbptt`` at each truncation k
(``--truncation``, default 1: fully truncated) and ``dsf`` with each feedback
(``stationary``, its diagonal, ``uniform``; the first two at each exact window
w of ``--exact-window``, default 0: plain DSF), next to a forward pass without
gradients (the floor: the forward is sequential under every estimator). A
stationary feedback is re-estimated every ``refresh_every`` (50) updates: its
step time excludes that, the refresh is timed alone, and the amortised figure
adds a fiftieth of it. The model and batch are those of a run on ``--task``
(default adding: input size 2, a loss on the last step only; ``ptb-char``: one
of 50 characters in, a loss on every step, the data read from ``--data-dir`` or
$LONGDEPS_DATA); batch 32. On the CPU every measurement runs in a fresh
process, so its peak resident memory (``ru_maxrss`` above the resident size
before the first step) belongs to that estimator alone; the time is the median
of repeats. Prints a line per estimator with its ratio to bptt and stores JSON,
each row naming its estimator as a run config does (``gradient``: its
``gradient.*`` fields), so that a report can take a run's cost from it
(``longdeps report --costs``). ``--methods`` measures only the named ones;
``--note`` records a remark (e.g. that other work shared the machine).

``--device`` (default cpu) puts the model and the data on that device. On
CUDA the clock waits for the GPU's queued work, the peak memory is the most
GPU memory allocated (``torch.cuda.max_memory_allocated``) above what was
allocated before the first step, and every measurement runs in this process,
since the peak statistics can be reset and a fresh process would spend
seconds starting CUDA.

    python benchmarks/gradient_cost.py [--device cpu] [--cells gru lstm srn] [--lengths 100 1000 4000] [--hidden 64 256]
    python benchmarks/gradient_cost.py --device cuda --cells lstm srn --lengths 1000 4000 --hidden 256 --methods bptt dsf
    python benchmarks/gradient_cost.py --task ptb-char --cells gru --lengths 100 --hidden 256 \\
        --truncation 1 2 4 11 25 50 --exact-window 0 3 10
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

#: method -> its estimator's config fields (``gradient.*``); "forward" is a forward pass without gradients
METHODS = {"forward": None, "bptt": {"name": "bptt"}, "tbptt": {"name": "tbptt", "truncation": 1},
           "dsf": {"name": "dsf", "feedback": "stationary"},
           "dsf-diagonal": {"name": "dsf", "feedback": "stationary-diagonal"},
           "dsf-uniform": {"name": "dsf", "feedback": "uniform"}}
#: the methods measured at every exact window of ``--exact-window``
WINDOWED = ("dsf", "dsf-diagonal")


def configurations(methods: list[str], truncations: list[int], windows: list[int]) -> list[tuple[str, dict | None]]:
    """(label, estimator config fields or None for the forward pass) of each measurement: tbptt at each
    truncation, the ``WINDOWED`` methods at each exact window; a label names an option only where it
    is not the default (``tbptt-k4``, ``dsf-diagonal-w3``)."""
    chosen = []
    for method in methods:
        if method == "tbptt":
            chosen += [(method + (f"-k{k}" if k != 1 else ""), {**METHODS[method], "truncation": k}) for k in truncations]
        elif method in WINDOWED:
            chosen += [(method + (f"-w{w}" if w else ""), {**METHODS[method], **({"exact_window": w} if w else {})})
                       for w in windows]
        else:
            chosen.append((method, METHODS[method]))
    return chosen


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


def measure_one(task_name: str, cell_name: str, steps: int, hidden: int, label: str, gradient: dict | None,
                batch: int, repeats: int, device: torch.device, data_dir: str | None = None) -> dict:
    """Time (median ms of ``repeats`` steps after a warm-up step) and peak memory (MB) of one
    configuration (``gradient``: the estimator's config fields, None for the forward pass), in
    this process, on ``device``, with the model and a training batch of task ``task_name``."""
    from longdeps.cells import make_cell
    from longdeps.gradients import make_estimator
    from longdeps.model import SequenceModel
    from longdeps.tasks import make_task

    torch.manual_seed(0)
    task = make_task(task_name, steps, data_dir=data_dir)
    model = SequenceModel(make_cell(cell_name, task.input_size, hidden), task.output_size, task.readout).to(device)
    data = task.fixed_train_batch(batch, seed=0).to(device)
    if gradient is None:
        def step():
            with torch.no_grad():
                model(data.x)
    else:
        estimator = make_estimator(**gradient)

        def step():
            model.zero_grad(set_to_none=True)
            estimator.backward(model, data, task)
    before = memory_before(device)
    times = [timed(step, device) for _ in range(repeats + 1)]
    peak = memory_peak(device)
    row = {"task": task_name, "cell": cell_name, "T": steps, "hidden": hidden, "batch": batch, "method": label, "gradient": gradient,
           "ms": round(statistics.median(times[1:]) * 1e3, 1), "peak_mb": round(peak - before, 1)}
    if gradient is not None and getattr(estimator, "kind", "").startswith("stationary"):
        states, _ = estimator.forward(model.cell, data.x, model.cell.initial_state(batch))
        refresh_seconds = timed(lambda: estimator.refresh(model.cell, data.x, states), device)
        row["refresh_ms"] = round(refresh_seconds * 1e3, 1)
        row["amortised_ms"] = round(row["ms"] + row["refresh_ms"] / estimator.refresh_every, 1)
    return row


def measure(cell: str, steps: int, hidden: int, label: str, gradient: dict | None, args: argparse.Namespace) -> dict:
    """One configuration's row (``measure_one``): on CUDA measured in this process, elsewhere in a fresh
    process, so that the peak resident memory is this configuration's alone."""
    if args.device.type == "cuda":
        return measure_one(args.task, cell, steps, hidden, label, gradient, args.batch, args.repeats, args.device,
                           args.data_dir)
    out = subprocess.run([sys.executable, __file__, "--one", cell, str(steps), str(hidden), label, json.dumps(gradient),
                          "--task", args.task, "--batch", str(args.batch), "--repeats", str(args.repeats),
                          "--device", str(args.device)] + (["--data-dir", args.data_dir] if args.data_dir else []),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=torch.device, default="cpu", help="where to run (default: %(default)s)")
    parser.add_argument("--task", default="adding", help="the task whose model and batch are timed (default: %(default)s)")
    parser.add_argument("--data-dir", help="where the task's data set is (default: $LONGDEPS_DATA, ~/.cache/longdeps)")
    parser.add_argument("--cells", nargs="+", default=["gru", "lstm", "srn"])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1000, 4000])
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS), metavar="METHOD",
                        help=f"measure only these, of {', '.join(METHODS)} (default: all)")
    parser.add_argument("--truncation", type=int, nargs="+", default=[1], metavar="K",
                        help="tbptt's truncations k, each measured (default: 1)")
    parser.add_argument("--exact-window", type=int, nargs="+", default=[0], metavar="W",
                        help=f"the exact windows of {' and '.join(WINDOWED)}, each measured; 0 is plain DSF (default: 0)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--note", help="a remark stored with the figures (e.g. that other work shared the machine)")
    parser.add_argument("--out", default="longdeps-results/benchmarks/gradient_cost.json")
    parser.add_argument("--one", nargs=5, metavar=("CELL", "T", "HIDDEN", "LABEL", "GRADIENT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if min(args.truncation) < 1 or min(args.exact_window) < 0:
        parser.error(f"--truncation needs k >= 1 and --exact-window w >= 0, got {args.truncation} and {args.exact_window}")
    if args.one:
        cell, steps, hidden, label, gradient = args.one
        print(json.dumps(measure_one(args.task, cell, int(steps), int(hidden), label, json.loads(gradient), args.batch,
                                     args.repeats, args.device, args.data_dir)))
        return

    chosen = configurations([m for m in METHODS if m in args.methods], args.truncation, args.exact_window)
    memory = "GPU memory allocated" if args.device.type == "cuda" else "resident memory, each in a fresh process"
    print(f"torch {torch.__version__} on {device_label(args.device)}, {torch.get_num_threads()} threads, task {args.task}, "
          f"batch {args.batch}, median of {args.repeats}; peak MB: {memory}")
    if args.device.type == "cuda":  # a GPU's first steps also allocate the libraries' workspaces, which stay
        for cell in args.cells:
            measure_one(args.task, cell, min(args.lengths), min(args.hidden), "bptt", METHODS["bptt"], args.batch, 1,
                        args.device, args.data_dir)
    print(f"{'cell':5} {'T':>5} {'H':>4}  {'method':18} {'ms':>9} {'peak MB':>8} {'refresh ms':>11} {'amortised ms':>13}"
          f" {'bptt / this':>12}")
    rows = []
    for cell in args.cells:
        for steps in args.lengths:
            for hidden in args.hidden:
                bptt = None
                for label, gradient in chosen:
                    row = measure(cell, steps, hidden, label, gradient, args)
                    rows.append(row)
                    bptt = row["ms"] if label == "bptt" else bptt
                    ms = row.get("amortised_ms", row["ms"])
                    refresh = f"{row['refresh_ms']:11.1f} {row['amortised_ms']:13.1f}" if "refresh_ms" in row else f"{'':25}"
                    ratio = f"{bptt / ms:11.2f}x" if bptt and label != "forward" else ""
                    print(f"{cell:5} {steps:>5} {hidden:>4}  {label:18} {row['ms']:9.1f} {row['peak_mb']:8.0f} {refresh} {ratio}",
                          flush=True)
    store_figures(args.out, device=str(args.device), gpu=gpu_name(args.device), task=args.task, batch=args.batch,
                  repeats=args.repeats, methods=[label for label, _ in chosen], note=args.note, rows=rows)


if __name__ == "__main__":
    main()
