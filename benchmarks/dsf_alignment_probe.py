"""Where does a fixed feedback point? Gradient alignment of every estimator with exact BPTT,
at initialisation and after training by BPTT, on a long-range task.

A GRU trains on the copy task (blank length T) by exact BPTT with Adam; at chosen updates the
cosine between each estimator's gradient and BPTT's is measured on one fixed training batch
(``longdeps.gradients.alignment``): fully truncated BPTT, DSF with each feedback, and the
hybrid ``exact_window`` (k exact steps back, the stationary feedback beyond). Prints a table and
stores JSON.

    python benchmarks/dsf_alignment_probe.py [--task copy] [--seq-len 100] [--hidden 64] [--at 0 300]
"""

from __future__ import annotations

import argparse

import torch

from figures import store_figures

ESTIMATORS = {
    "tbptt k=1": ("tbptt", {"truncation": 1}),
    "dsf uniform": ("dsf", {"feedback": "uniform"}),
    "dsf stationary-diagonal": ("dsf", {"feedback": "stationary-diagonal"}),
    "dsf stationary": ("dsf", {"feedback": "stationary"}),
    "dsf stationary, exact_window=10": ("dsf", {"feedback": "stationary", "exact_window": 10}),
    "dsf stationary, exact_window=50": ("dsf", {"feedback": "stationary", "exact_window": 50}),
    "tbptt k=50": ("tbptt", {"truncation": 50}),
}


def main() -> None:
    from longdeps.allocator import keep_freed_memory
    from longdeps.cells import make_cell
    from longdeps.gradients import alignment, make_estimator
    from longdeps.model import SequenceModel
    from longdeps.seeding import seeded_generator
    from longdeps.tasks import make_task

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="copy")
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--at", type=int, nargs="+", default=[0, 300], help="updates at which to measure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="longdeps-results/benchmarks/dsf_alignment_probe.json")
    args = parser.parse_args()
    keep_freed_memory()

    torch.manual_seed(args.seed)
    task = make_task(args.task, args.seq_len)
    model = SequenceModel(make_cell("gru", task.input_size, args.hidden), task.output_size, task.readout)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    probe = task.fixed_train_batch(args.batch, args.seed)
    batches, exact = seeded_generator("probe-training", args.seed), make_estimator("bptt")
    rows, done = [], 0
    print(f"GRU {args.hidden} on {args.task} T={args.seq_len}, trained by BPTT (Adam {args.lr}); "
          "cosine with the BPTT gradient of the cell parameters (recurrent weights), norm ratio")
    for at in sorted(args.at):
        while done < at:
            optimizer.zero_grad()
            losses, _ = exact.backward(model, task.sample(args.batch, batches), task)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            done += 1
        with torch.no_grad():
            loss = float(task.per_example_loss(model(probe.x)[0], probe.y).mean())
        print(f"-- after {done} updates: probe loss {loss:.4f} (memoryless baseline {task.baseline()['loss']:.4f})")
        for label, (name, options) in ESTIMATORS.items():
            figures = alignment(model, probe, task, make_estimator(name, seed=args.seed, **options))
            rows.append({"updates": done, "probe_loss": loss, "estimator": label, **figures})
            print(f"   {label:34} {figures['cosine']:6.2f} ({figures['cosine_recurrent']:5.2f})  "
                  f"{figures['norm_ratio']:7.3f}", flush=True)
    store_figures(args.out, task=args.task, seq_len=args.seq_len, hidden=args.hidden, batch=args.batch, lr=args.lr,
                  seed=args.seed, rows=rows)


if __name__ == "__main__":
    main()
