"""How a run shows that it is alive: a bar on a terminal, one line per evaluation in a log.

When standard output is a terminal, a bar counts the updates and shows the
last validation figures; the final test evaluation gets a bar of its own.
Otherwise (a batch job, ``longdeps bench > log``) every evaluation prints one
line, flushed at once::

    lstm adding: update 300/4000, train loss 0.161, val loss 0.158, val success 0.04, elapsed 00:07, ETA 01:33
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable

from tqdm.auto import tqdm


class Progress:
    """Progress of one run named ``name``, from update ``initial`` to ``total``; ``show=False`` shows
    nothing but ``warn``'s lines."""

    def __init__(self, show: bool, name: str, total: int, initial: int):
        self.mode = "off" if not show else "bar" if sys.stdout.isatty() else "lines"
        self.name, self.total, self.initial = name, total, initial
        self.start = time.perf_counter()
        self.bar = tqdm(total=total, initial=initial, desc=name, leave=False, dynamic_ncols=True,
                        file=sys.stdout) if self.mode == "bar" else None

    def note(self, text: str) -> None:
        """One line about the run (e.g. where it resumes from)."""
        if self.bar is not None:
            self.bar.write(f"{self.name}: {text}", file=sys.stdout)
        elif self.mode == "lines":
            print(f"{self.name}: {text}", flush=True)

    def warn(self, text: str) -> None:
        """One line about the run that is shown whatever ``show`` says, on standard error (e.g. that
        it passed over a damaged checkpoint)."""
        if self.bar is not None:
            self.bar.write(f"{self.name}: {text}", file=sys.stderr)
        else:
            print(f"{self.name}: {text}", file=sys.stderr, flush=True)

    def update(self) -> None:
        """One more update done."""
        if self.bar is not None:
            self.bar.update(1)

    def evaluated(self, record: dict[str, Any], metric: str) -> None:
        """Show the evaluation ``record`` (a ``metrics.jsonl`` line) of the run's headline ``metric``."""
        if self.bar is not None:
            self.bar.set_postfix({metric: f"{record['val_metric']:.3f}", "val loss": f"{record['val']['loss']:.4g}"})
        elif self.mode == "lines":
            step = record["step"]
            seconds = time.perf_counter() - self.start
            eta = seconds / (step - self.initial) * (self.total - step)  # an evaluation follows an update
            print(f"{self.name}: update {step}/{self.total}, train loss {record['train_loss']:.4g}, "
                  f"val loss {record['val']['loss']:.4g}, val {metric} {record['val_metric']:.4g}, "
                  f"elapsed {tqdm.format_interval(record['wall_time'])}, ETA {tqdm.format_interval(eta)}", flush=True)

    def batches(self, batches: list[Any], split: str) -> Iterable[Any]:
        """``batches`` of the ``split`` set to evaluate, counted by a bar of their own on a terminal."""
        if self.bar is not None:
            return tqdm(batches, desc=f"{self.name} {split}", leave=False, dynamic_ncols=True, file=sys.stdout)
        self.note(f"scoring the best-validation weights on the {split} set ({len(batches)} batches)")
        return batches

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
