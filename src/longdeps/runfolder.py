"""What a run writes: its folder and its rows in the store (``longdeps.store``).

The evaluation records have one source, ``RunFolder.records``, which the
checkpoint holds. ``metrics.jsonl``, the store's ``evals`` and the
``train.log`` copy are written from it: each new record through
``RunFolder.add``, and all of them again when a run starts (from the
checkpoint's records when it resumes), so that no copy can disagree with the
checkpoint.

``rebuild_index`` writes the store's index anew from the run folders
(``longdeps runs --reindex``), for an index that was lost or damaged.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from longdeps.errors import LongdepsError
from longdeps.logs import make_log
from longdeps.store import ResultStore, atomic_torch_save, atomic_write_text
from longdeps.tasks import TASKS
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
        self.notice: str | None = None  #: what ``load_checkpoint`` had to do instead of reading the last checkpoint

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
    @property
    def previous_path(self) -> Path:
        """The checkpoint before the last one, kept in case the last one is damaged."""
        return self.path / "checkpoint.prev.pt"

    @property
    def damaged_path(self) -> Path:
        """Where a damaged last checkpoint is moved once the run continues from the previous one."""
        return self.path / "checkpoint.damaged.pt"

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists() or self.previous_path.exists()

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Save the training ``state`` (with its ``step``) and the records, atomically, the checkpoint
        before it kept as ``checkpoint.prev.pt``."""
        atomic_torch_save({**state, "history": self.records}, self.checkpoint_path, self.previous_path)
        self.saved_step = state["step"]

    def load_checkpoint(self) -> dict[str, Any]:
        """The training state in the checkpoint, its tensors on the CPU whatever device wrote them (the
        run moves them to its own); the records become the checkpoint's.

        Where the last checkpoint cannot be read (truncated, overwritten) or is missing, the previous
        one is taken, the damaged file moved to ``checkpoint.damaged.pt``, and ``notice`` says so in
        one line; where neither can be read, a one-line error says what to do.
        """
        self.notice = None
        try:
            state = read_checkpoint(self.checkpoint_path)
        except LongdepsError as last:
            try:
                state = read_checkpoint(self.previous_path)
            except LongdepsError as previous:
                raise LongdepsError(f"run {self.run_id}: {last}, and {previous}; start over with --force, or put a "
                                    f"good copy of the checkpoint at {self.checkpoint_path} and --resume") from None
            moved = self.checkpoint_path.exists()
            if moved:
                os.replace(self.checkpoint_path, self.damaged_path)
            self.notice = (f"{last}{f' (moved to {self.damaged_path.name})' if moved else ''}: continuing from the "
                           f"previous checkpoint {self.previous_path} (update {state['step']})")
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

    # -- the index, from the folder -----------------------------------------
    def restore(self) -> str:
        """Write the run's rows in the store's index from its files (``config.json``, ``metrics.jsonl``,
        ``result.json``); returns its status: ``finished`` with a ``result.json``, else ``interrupted``
        (it continues from its checkpoint, if any, with ``--resume`` or its sweep)."""
        config = json.loads((self.path / "config.json").read_text())
        metrics = self.path / "metrics.jsonl"
        self.records = [json.loads(line) for line in metrics.read_text().splitlines() if line] if metrics.is_file() else []
        finished = (self.path / "result.json").is_file()
        if finished:
            result = self.result()
            metric, variant, seq_len = result["metric"], result["variant"], result["seq_len"]
        else:  # the task's own defaults where the config leaves them
            task = TASKS[config["task"]["name"]]
            metric, variant, seq_len = task.metric, config["task"]["variant"] or task.variants[0], \
                config["task"]["seq_len"] or task.default_seq_len
        self.store.start_run(self.run_id, config, metric, variant, seq_len=seq_len)
        self.store.set_evals(self.run_id, self.records)
        if finished:
            self.store.finish_run(self.run_id, "finished", result)
            return "finished"
        last = self.records[-1] if self.records else {"step": 0, "examples_seen": 0, "wall_time": 0.0}
        self.stop("interrupted", {"steps_done": last["step"], "examples_seen": last["examples_seen"],
                                  "wall_time": last["wall_time"]},
                  "unfinished when the index was rebuilt from its folder (its status before is not kept there)")
        return "interrupted"


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The training state saved at ``path`` (tensors on the CPU); a one-line error naming the file and
    why where it is missing or cannot be read."""
    if not path.is_file():
        raise LongdepsError(f"checkpoint {path} is missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - a damaged file fails in torch's zip reader, the unpickler, ...
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0]  # torch's first sentence
        raise LongdepsError(f"checkpoint {path} cannot be read, it is truncated or damaged ({reason})") from None
    if not isinstance(state, dict) or not {"history", "step"} <= set(state):
        raise LongdepsError(f"checkpoint {path} cannot be read (it holds no training state)")
    return state


def rebuild_index(root: str | Path) -> tuple[Path | None, dict[str, str], list[str]]:
    """A new index of the results root ``root`` from its run folders, the one there moved aside first.

    Returns where the old index went (None: there was none), the status of every run restored, by
    run id, and a line for each folder that could not be read (left out of the index, not touched).
    """
    folders = sorted((p for p in (Path(root) / "runs").glob("*") if p.is_dir()),
                     key=lambda p: ((p / "config.json").stat().st_mtime if (p / "config.json").is_file() else 0, p.name))
    backup = ResultStore.move_index_aside(root)
    store = ResultStore(root)
    restored, skipped = {}, []
    for folder in folders:  # in the order the runs started, which ``ResultStore.runs`` lists
        try:
            restored[folder.name] = RunFolder(store, folder.name).restore()
        except (OSError, ValueError, KeyError) as err:  # a missing or damaged file (LongdepsError: unknown task)
            skipped.append(f"{folder}: {type(err).__name__}: {err}")
    return backup, restored, skipped
