"""Time the MNIST loader against the training step it feeds.

On the real data (``--data-dir``, else $LONGDEPS_DATA or ~/.cache/longdeps):
the first load of each task (checksums, decoding, pixel reordering; pmnist
finds the decoded files already cached by smnist), loader batches/s
(``train_examples`` at random indices, float batches ``(784, B, 1)``) and
training steps/s of an LSTM with a linear readout (forward, backward, Adam
step) on those same batches. Prints both rates and their ratio, and stores
the figures as JSON.

    python benchmarks/data_throughput.py [--batch 100] [--hidden 128] [--out FILE]
"""

from __future__ import annotations

import argparse
import time

import torch

from longdeps.cells import make_cell
from longdeps.model import SequenceModel
from longdeps.tasks import Task, make_task

from figures import store_figures


def loader_rate(task: Task, batch: int, batches: int) -> float:
    """Training batches per second read at uniformly random indices."""
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(batches):
        task.train_examples(torch.randint(task.train_size, (batch,), generator=gen))
    return batches / (time.perf_counter() - start)


def training_rate(task: Task, batch: int, hidden: int, steps: int) -> float:
    """LSTM training steps per second (forward, backward, Adam) on the task's batches, after one warm-up step."""
    torch.manual_seed(0)
    model = SequenceModel(make_cell("lstm", task.input_size, hidden), task.output_size, task.readout)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [task.train_examples(torch.randint(task.train_size, (batch,))) for _ in range(steps + 1)]

    def step(b) -> None:
        optimizer.zero_grad(set_to_none=True)
        outputs, _ = model(b.x)
        task.per_example_loss(outputs, b.y).mean().backward()
        optimizer.step()

    step(batches[0])
    start = time.perf_counter()
    for b in batches[1:]:
        step(b)
    return steps / (time.perf_counter() - start)


def measure(names: list[str], batch: int, batches: int, hidden: int, steps: int, data_dir: str | None) -> list[dict]:
    rows = []
    for name in names:
        start = time.perf_counter()
        task = make_task(name, data_dir=data_dir)
        task.part("train")
        load_s = time.perf_counter() - start
        loader, training = loader_rate(task, batch, batches), training_rate(task, batch, hidden, steps)
        rows.append({"task": name, "variant": task.variant, "load_s": round(load_s, 3),
                     "loader_batches_per_s": round(loader, 1), "train_steps_per_s": round(training, 3),
                     "ratio": round(loader / training, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["smnist", "pmnist"])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--batches", type=int, default=200, help="loader batches timed")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="training steps timed")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="longdeps-results/benchmarks/data_throughput.json")
    args = parser.parse_args()
    rows = measure(args.tasks, args.batch, args.batches, args.hidden, args.steps, args.data_dir)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"LSTM hidden {args.hidden}, {args.batches} loader batches, {args.steps} training steps")
    print(f"{'task':8s} {'variant':10s} {'load s':>7} {'loader batches/s':>17} {'train steps/s':>14}  loader/train")
    for r in rows:
        print(f"{r['task']:8s} {r['variant']:10s} {r['load_s']:7.2f} {r['loader_batches_per_s']:17.1f} "
              f"{r['train_steps_per_s']:14.2f}  {r['ratio']:.0f}x")
    store_figures(args.out, batch=args.batch, hidden=args.hidden, batches=args.batches, steps=args.steps, rows=rows)


if __name__ == "__main__":
    main()
