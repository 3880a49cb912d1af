"""Using a trained run: ``load_run`` gives its model with the best-validation weights and the task's
preprocessing, which predicts on new sequences and exports to TorchScript.

A run folder keeps what this needs: ``config.json`` (the cell and its sizes), ``checkpoint.pt``
(``best``: the weights of the best validation point, which scored the test split) and, for tasks
on files of your own and forecasting, ``preprocessing.json`` (standardisation, class names,
columns: ``longdeps.tasks.own.Encoding``, ``longdeps.tasks.forecasting.SeriesEncoding``).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from longdeps.cells import make_cell
from longdeps.config import RunConfig
from longdeps.errors import LongdepsError
from longdeps.model import SequenceModel
from longdeps.store import DEFAULT_ROOT, atomic_file
from longdeps.tasks import make_task
from longdeps.tasks.forecasting import SeriesEncoding, read_series
from longdeps.tasks.own import Encoding
from longdeps.tasks.sequences import Columns, SequenceFile, read_sequences


def run_folder(run: str | Path, results: str | Path = DEFAULT_ROOT) -> Path:
    """The folder of ``run``: a run folder's path, or a run id in the store at ``results``."""
    for folder in (Path(run), Path(results) / "runs" / str(run)):
        if (folder / "config.json").is_file():
            return folder
    raise LongdepsError(f"no run {str(run)!r}: neither a run folder nor a run id in {str(results)!r} "
                        "(see `longdeps runs --results ...`)")


def read_encoding(folder: Path) -> Encoding | SeriesEncoding | None:
    """The preprocessing a run folder keeps (None: its task keeps none)."""
    path = folder / "preprocessing.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    cls = SeriesEncoding if data.get("task") == "forecast" else Encoding
    return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class TrainedModel:
    """A run's model with its best-validation weights, in eval mode, and its task's preprocessing."""

    run_id: str
    folder: Path
    config: RunConfig
    model: SequenceModel
    encoding: Encoding | SeriesEncoding | None
    device: torch.device

    @torch.no_grad()
    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The model's outputs for standardised inputs ``x`` ``(T, B, I)``, on the CPU."""
        return self.model(x.to(self.device))[0].cpu()

    def predict(self, data: str | Path | np.ndarray | list[np.ndarray]):
        """Predictions for new data, as a pandas DataFrame in the file's units.

        ``data``: a file in a format the task reads, or arrays in the training file's units: a list of
        sequences ``(L_i, C)`` (a task on a file of your own) or one series ``(N, C)`` (forecasting).
        Classes: one row per sequence (per step for labelling) with ``class`` and ``p_<class>``
        columns; values: the target columns; forecasting: the ``horizon`` steps after the series'
        last row (``step`` 1..horizon), one column per target.
        """
        if isinstance(self.encoding, SeriesEncoding):
            return self.forecast(data)
        if not isinstance(self.encoding, Encoding):
            raise LongdepsError(f"run {self.run_id} (task {self.config.task.name!r}) kept no preprocessing to read new "
                                "data with; predict works for tasks on files of your own and forecasting")
        return self.label(self.sequences(data))

    def sequences(self, data: str | Path | list[np.ndarray]) -> SequenceFile:
        if isinstance(data, (str, Path)):
            columns = Columns(**{**self.encoding.columns, "features": tuple(self.encoding.features),
                                 "targets": tuple(self.encoding.columns["targets"])}) if self.encoding.columns else None
            return read_sequences(data, columns, targets=False)
        values = [np.asarray(v, dtype=np.float64).reshape(len(v), -1) for v in data]
        return SequenceFile(Path("<arrays>"), values, list(self.encoding.features), ids=[str(i) for i in range(len(values))])

    def label(self, data: SequenceFile):
        import pandas as pd

        x, ends = self.encoding.inputs(data)
        predictions = self.encoding.predictions(self.outputs(x), ends)
        per_step = self.encoding.kind == "labelling"
        rows = []
        for name, values in zip(data.ids, predictions):
            for step, value in enumerate(values if per_step else [values]):
                row = {"id": name, **({"step": step} if per_step else {})}
                if self.encoding.per_class:
                    row["class"] = self.encoding.classes[int(np.argmax(value))]
                    row.update({f"p_{c}": float(p) for c, p in zip(self.encoding.classes, value)})
                else:
                    row.update({t: float(v) for t, v in zip(self.encoding.targets, value)})
                rows.append(row)
        return pd.DataFrame(rows)

    def forecast(self, data: str | Path | np.ndarray):
        import pandas as pd

        encoding = self.encoding
        if isinstance(data, (str, Path)):
            values, columns = read_series(Path(data), encoding.time_column)
        else:
            values, columns = np.asarray(data, dtype=np.float64), list(encoding.inputs)
            values = values.reshape(len(values), -1)
        if len(values) < encoding.seq_len:
            raise LongdepsError(f"the series has {len(values)} rows; the model reads the last {encoding.seq_len}")
        x = torch.from_numpy(encoding.standardised(values[-encoding.seq_len:], columns)).float()[:, None]
        forecast = encoding.forecast(self.outputs(x))[0]
        return pd.DataFrame({"step": np.arange(1, encoding.horizon + 1),
                             **{t: forecast[:, k] for k, t in enumerate(encoding.targets)}})


def load_run(run: str | Path, results: str | Path = DEFAULT_ROOT, device: str | torch.device = "cpu",
             data_dir: str | None = None) -> TrainedModel:
    """Run ``run`` (a run id in the store at ``results``, or a run folder) with its best-validation
    weights, in eval mode on ``device``, and the preprocessing of its task. ``data_dir``: where the
    task's data set lives, for a task whose run folder keeps no preprocessing (its sizes come from
    the task)."""
    folder = run_folder(run, results)
    config = RunConfig.from_dict(json.loads((folder / "config.json").read_text()))
    checkpoint = folder / "checkpoint.pt"
    if not checkpoint.is_file():
        raise LongdepsError(f"run {folder.name} has no checkpoint.pt in {folder}; train it first")
    best = torch.load(checkpoint, map_location="cpu", weights_only=False).get("best")
    if best is None:
        raise LongdepsError(f"run {folder.name} stopped before its first evaluation: it has no best-validation weights")
    encoding = read_encoding(folder)
    if encoding is None:
        task = make_task(config.task.name, data_dir=data_dir, **config.options("task"))
        sizes = (task.input_size, task.output_size, task.readout)
    elif isinstance(encoding, SeriesEncoding):
        sizes = (len(encoding.inputs), encoding.horizon * len(encoding.targets), "last")
    else:
        sizes = (encoding.input_size, encoding.output_size, "all")
    cell = make_cell(config.cell.name, sizes[0], config.cell.hidden_size, **config.options("cell"))
    model = SequenceModel(cell, sizes[1], sizes[2], config.readout.init, config.readout.scale)
    model.load_state_dict(best["model"])
    device = torch.device(device)
    return TrainedModel(folder.name, folder, config, model.to(device).eval(), encoding, device)


def write_predictions(frame, path: str | Path) -> Path:
    """Write a predictions DataFrame as ``.csv``, ``.parquet`` or ``.npz`` (one array per column), atomically."""
    path = Path(path)
    def npz(tmp: str) -> None:
        with open(tmp, "wb") as f:  # (given a name, numpy would add .npz to it)
            np.savez(f, **{str(c): frame[c].to_numpy() for c in frame.columns})

    writers = {".csv": lambda tmp: frame.to_csv(tmp, index=False), ".parquet": lambda tmp: frame.to_parquet(tmp),
               ".npz": npz}
    if path.suffix not in writers:
        raise LongdepsError(f"--output {path}: unknown extension {path.suffix!r}; give a {', '.join(writers)} file")
    with atomic_file(path) as tmp:
        writers[path.suffix](tmp)
    return path


class _Outputs(torch.nn.Module):
    """A model as a function of its inputs alone: ``x`` ``(T, B, I)`` -> outputs."""

    def __init__(self, model: SequenceModel):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


def export_torchscript(trained: TrainedModel, path: str | Path, seq_len: int | None = None) -> Path:
    """Trace ``trained``'s model at inputs of ``seq_len`` steps (default: the run's) into a TorchScript
    file at ``path``, after checking that the traced module gives the model's outputs on fresh inputs
    (of another batch size too); a cell that cannot be traced, or traces wrongly, is refused in one line."""
    seq_len = seq_len or trained.config.task.seq_len or getattr(trained.encoding, "seq_len", None)
    if not seq_len:
        raise LongdepsError(f"run {trained.run_id}: give the input length to export at (--seq-len)")
    module = _Outputs(trained.model).eval()
    size = trained.model.cell.input_size
    generator = torch.Generator().manual_seed(0)
    example, fresh = (torch.randn(seq_len, b, size, generator=generator).to(trained.device) for b in (2, 3))
    name = trained.config.cell.name
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the cells' input checks become constants
            warnings.simplefilter("ignore", DeprecationWarning)  # (torch.export cannot take those checks yet)
            traced = torch.jit.trace(module, example, check_trace=False)
            same = torch.allclose(traced(fresh), module(fresh), rtol=1e-5, atol=1e-6)
    except Exception as err:  # tracing raises many kinds
        raise LongdepsError(f"cell {name!r} cannot be exported to TorchScript: {str(err).splitlines()[0]}") from None
    if not same:
        raise LongdepsError(f"cell {name!r} cannot be exported to TorchScript: the traced module's outputs differ "
                            "from the model's (the cell's step depends on more than its input tensors)")
    path = Path(path)
    with atomic_file(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, tmp)
    return path
