"""What a run writes: its folder and its rows in the store (``longdeps.store``).

The evaluation records have one source, ``RunFolder.records``, which the
checkpoint holds. ``metrics.jsonl``, the store's ``evals`` and the
``train.log`` copy are written from it: each new record through
``RunFolder.add``, and all of them again when a run starts (from the
checkpoint's records when it resumes), so that no copy can disagree with the
checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from longdeps.logs import make_log
from longdeps.store import ResultStore, atomic_torch_save, atomic_write_text
from longdeps.tasks.base import Task


class RunFolder:
    """The folder of run ``run_id`` in ``store`` (``config.json``, ``checkpoint.pt``,
    ``metrics.jsonl``, ``result.json``, the ``train.log`` copy, the task's ``preprocessing.json``)
    and its rows in the index."""

    def __init__(self, store: ResultStore, run_id: str, log: str = "none"):
        self.store, self.run_id = store, run_id
        self.path = store.run_dir(run_id)
        self.log = make_log(log)
        self.records: list[dict[str, Any]] = []  #: the evaluation records, in update order
        self.saved_step: int | None = None  #: the update of the checkpoint on disk

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    def status(self) -> str | None:
        """The run's status in the store (None: not there)."""
        row = self.store.get_run(self.run_id)
        return row["status"] if row else None

    def clear(self) -> None:
        """Delete the folder, to start the run over."""
        shutil.rmtree(self.path, ignore_errors=True)

    def start(self, config: dict[str, Any], task: Task, suite: str | None) -> None:
        """Register the run as running, write its ``config`` and write every copy of ``records``."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / "config.json", json.dumps(config, indent=2) + "\n")
        if (preprocessing := task.preprocessing()) is not None:
            atomic_write_text(self.path / "preprocessing.json", json.dumps(preprocessing, indent=2) + "\n")
        self.store.start_run(self.run_id, config, task.metric, task.variant, suite, seq_len=task.seq_len)
        self.store.set_evals(self.run_id, self.records)
        atomic_write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.records))

    def add(self, record: dict[str, Any]) -> None:
        """Append an evaluation ``record`` to ``records`` and to each of its copies."""
        self.records.append(record)
        self.store.add_eval(self.run_id, record)
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.log:
            self.log.write(self.path, self.records)

    # -- the checkpoint -----------------------------------------------------
    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Save the training ``state`` (with its ``step``) and the records, atomically."""
        atomic_torch_save({**state, "history": self.records}, self.checkpoint_path)
        self.saved_step = state["step"]

    def load_checkpoint(self) -> dict[str, Any]:
        """The training state in the checkpoint, its tensors on the CPU whatever device wrote them (the
        run moves them to its own); the records become the checkpoint's."""
        state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        self.records, self.saved_step = state["history"], state["step"]
        return state

    def kept(self) -> str:
        """What a stopped run leaves on disk, for its messages."""
        if self.saved_step is None:
            return "no checkpoint was written"
        return f"its last checkpoint (update {self.saved_step}) is kept in {self.checkpoint_path}"

    # -- the end ------------------------------------------------------------
    def stop(self, status: str, summary: dict[str, Any], error: str) -> None:
        """Record a run that stopped before its end: ``failed`` or ``interrupted``, and why."""
        self.store.finish_run(self.run_id, status, summary, error=error)

    def finish(self, summary: dict[str, Any]) -> None:
        """Record the finished run's ``summary`` in ``result.json`` and the store."""
        atomic_write_text(self.path / "result.json", json.dumps(summary, indent=2) + "\n")
        self.store.finish_run(self.run_id, "finished", summary)

    def result(self) -> dict[str, Any]:
        """The summary of a finished run."""
        return json.loads((self.path / "result.json").read_text())

    def close(self) -> None:
        """Close the ``train.log`` copy."""
        if self.log:
            self.log.close()
