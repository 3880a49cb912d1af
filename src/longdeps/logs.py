"""Copies of a run's evaluation records for other tools (``train.log``): CSV or TensorBoard.

``metrics.jsonl`` is always written; ``train.log=csv`` also keeps
``metrics.csv`` (one row per record, nested fields as dotted columns such as
``val.loss``, lists as JSON), and ``train.log=tensorboard`` writes every
numeric field as a scalar under ``tensorboard/`` in the run folder (needs the
``tensorboard`` package: ``pip install 'longdeps[tensorboard]'``; view with
``tensorboard --logdir RESULTS/runs``). A resumed run rewrites the CSV from
its history and drops the TensorBoard events after its checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from longdeps.errors import LongdepsError
from longdeps.store import atomic_write_text

LOGS = ("none", "csv", "tensorboard")


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``record`` with nested mappings as dotted keys (``{"val": {"loss": 1}}`` -> ``{"val.loss": 1}``)."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class CsvLog:
    """``metrics.csv``, rewritten from the whole history at each evaluation (a new field adds a column)."""

    def write(self, folder: Path, history: list[dict[str, Any]]) -> None:
        rows = [flatten(record) for record in history]
        columns = list(dict.fromkeys(key for row in rows for key in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()} for row in rows)
        atomic_write_text(folder / "metrics.csv", text.getvalue())

    def close(self) -> None:
        pass


class TensorBoardLog:
    """Each numeric field of the newest record as a TensorBoard scalar at its update."""

    def __init__(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise LongdepsError("train.log=tensorboard needs the tensorboard package: "
                                "pip install 'longdeps[tensorboard]' (or train.log=csv)") from None
        self.make_writer = SummaryWriter
        self.writer = None

    def write(self, folder: Path, history: list[dict[str, Any]]) -> None:
        record = history[-1]
        if self.writer is None:  # events at and after this update are left from before a resume
            self.writer = self.make_writer(str(folder / "tensorboard"), purge_step=record["step"])
        for key, value in flatten(record).items():
            if isinstance(value, (int, float)) and key != "step":
                self.writer.add_scalar(key, value, record["step"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def make_log(name: str) -> CsvLog | TensorBoardLog | None:
    """The log that ``train.log`` names (None for ``none``)."""
    if name not in LOGS:
        raise LongdepsError(f"unknown train.log {name!r}; choose from {', '.join(LOGS)}")
    return None if name == "none" else CsvLog() if name == "csv" else TensorBoardLog()
