"""Forecasting a multivariate series: ``forecast`` (a file of your own) and ``ett:ETTh1``, ``ett:ETTh2``.

An example is a window of the series: ``seq_len`` steps of look-back read one
step per RNN step, and the next ``horizon`` steps of the target columns
predicted at once from the last state (direct multi-output: the readout gives
``horizon x targets`` values).

Sources (read for facts; the code here is our own):

- ETT (Zhou et al., Informer, AAAI 2021): hourly ETTh1 and ETTh2, 7 variables
  (six loads, then the oil temperature OT); files and checksums in
  ``longdeps.data.registry``.
- The protocol of the long-horizon forecasting papers (Informer, Autoformer,
  DLinear, PatchTST, iTransformer): train = the first 12 x 30 x 24 = 8640
  rows, validation the next 2880, test the next 2880 (the rest unused); each
  split's windows may start up to ``seq_len`` rows before its border; windows
  slide by one step; every variable standardised with the training rows'
  mean and (population) standard deviation; MSE and MAE on the standardised
  scale, over all windows, steps and variables. With look-back 96 and
  horizon 96 that is 8449/2785/2785 windows.
- The linear baseline of Zeng et al. (DLinear, AAAI 2023): one linear map from
  the look-back to the horizon, shared by every channel
  (``linear_forecast_baseline``; fitted here by least squares, not trained).

Choices (ours):

- Targets: every column (multivariate), or the one column ``task.target``
  (univariate: it is then the only input too, the papers' "S" setting).
- A file of your own (``task.name=forecast``, ``task.path``: a ``.csv`` or
  ``.parquet`` with a time column ``task.time_column``, rows sorted by it, the
  other numeric columns the variables; or an ``.npz`` with ``x`` ``(T, C)``):
  chronological splits of 70/10/20% of the rows (the custom-data split of the
  Autoformer code), otherwise the same protocol.
- ``baseline``: the training mean (0 once standardised, the input-independent
  predictor: ``mse``, ``mae``) and repeating the last look-back value
  (``last_value_mse``, ``last_value_mae``), both on the test split.
  ``solved``: never (forecasting has no success threshold).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from longdeps.data import locate
from longdeps.errors import LongdepsError
from longdeps.tasks import register
from longdeps.tasks.base import Batch, Task
from longdeps.tasks.sequences import file_sha256

#: ETT's split lengths in rows: 12, 4 and 4 months of 30 days of 24 hours
ETT_ROWS = (12 * 30 * 24, 4 * 30 * 24, 4 * 30 * 24)
#: a file of your own: shares of the rows for train, validation and test
FILE_SHARES = (0.7, 0.1, 0.2)


def read_series(path: Path, time_column: str) -> tuple[np.ndarray, list[str]]:
    """A multivariate series ``(N, C)`` float64 and its column names, from a ``.csv``/``.parquet``
    (rows sorted by ``time_column``, which is then dropped) or an ``.npz`` (``x`` ``(N, C)``)."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive.files:
                raise LongdepsError(f"{path}: no array 'x'; store the series as x (T, C)")
            x = archive["x"]
        x = x[:, None] if x.ndim == 1 else x
        return x.astype(np.float64), [f"x{c}" for c in range(x.shape[1])]
    if path.suffix not in (".csv", ".parquet"):
        raise LongdepsError(f"{path}: unknown extension {path.suffix!r}; give a .csv, .parquet or .npz series")
    import pandas as pd

    frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    if time_column not in frame.columns:
        raise LongdepsError(f"{path}: no time column {time_column!r} (columns: {', '.join(map(str, frame.columns))}); "
                            "name it with task.time_column=...")
    frame = frame.sort_values(time_column, kind="stable").drop(columns=time_column)
    columns = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    values = frame[columns].to_numpy(np.float64)
    if not np.isfinite(values).all():
        row, col = np.argwhere(~np.isfinite(values))[0]
        raise LongdepsError(f"{path}: row {row} (in time order), column {columns[col]!r} is {values[row, col]}; "
                            "give every value")
    return values, [str(c) for c in columns]


def split_borders(rows: int, seq_len: int, lengths: tuple[int, int, int] | None = None) -> dict[str, tuple[int, int]]:
    """The rows each split's windows read, ``(first, stop)``: ``lengths`` rows each (None: 70/10/20% of
    ``rows``), every split but the first starting ``seq_len`` rows before its border."""
    if lengths is None:
        n_train, n_test = int(rows * FILE_SHARES[0]), int(rows * FILE_SHARES[2])
        lengths = (n_train, rows - n_train - n_test, n_test)
    borders = np.cumsum((0, *lengths))
    if borders[-1] > rows:
        raise LongdepsError(f"the series has {rows} rows, fewer than the {borders[-1]} its splits need")
    return {part: (max(0, int(borders[k]) - (seq_len if k else 0)), int(borders[k + 1]))
            for k, part in enumerate(("train", "val", "test"))}


@dataclass
class SeriesEncoding:
    """How a series becomes windows and outputs become forecasts: ``preprocessing.json`` of a
    forecasting run. ``mean``/``std`` per column (training rows); ``inputs``, ``targets``: columns."""

    columns: list[str]
    mean: list[float]
    std: list[float]
    inputs: list[str]
    targets: list[str]
    seq_len: int
    horizon: int
    time_column: str

    def to_json(self) -> str:
        return json.dumps({"task": "forecast", **asdict(self)}, indent=2) + "\n"

    def standardised(self, values: np.ndarray, columns: list[str]) -> np.ndarray:
        """``values`` ``(N, len(columns))`` standardised, its ``inputs`` columns only."""
        missing = [c for c in self.inputs if c not in columns]
        if missing:
            raise LongdepsError(f"the series has no column {missing[0]!r}; the model reads {', '.join(self.inputs)}")
        take = [columns.index(c) for c in self.inputs]
        k = [self.columns.index(c) for c in self.inputs]
        return (values[:, take] - np.array(self.mean)[k]) / np.array(self.std)[k]

    def forecast(self, outputs: torch.Tensor) -> np.ndarray:
        """Outputs ``(B, horizon * targets)`` -> forecasts ``(B, horizon, targets)`` in the series' units."""
        k = [self.columns.index(c) for c in self.targets]
        out = outputs.double().numpy().reshape(len(outputs), self.horizon, len(self.targets))
        return out * np.array(self.std)[k] + np.array(self.mean)[k]


class ForecastTask(Task):
    """Forecast the next ``horizon`` steps of a series from ``seq_len`` steps (see the module docstring).

    ``x``: ``(seq_len, B, inputs)``; ``y``: ``(B, horizon, targets)``; outputs ``(B, horizon * targets)``.
    """

    readout = "last"
    metric = "mse"
    higher_is_better = False
    default_seq_len = 96
    default_val_size = None
    default_test_size = None
    solved_rule = "none: forecasting has no success threshold (compare the test MSE with the baselines)"
    #: the split lengths in rows (None: ``FILE_SHARES`` of the rows)
    split_rows: tuple[int, int, int] | None = None

    def __init__(self, seq_len: int | None = None, variant: str | None = None, horizon: int = 96,
                 target: str | None = None, **options):
        super().__init__(seq_len, variant, **options)
        if not isinstance(horizon, int) or horizon < 1:
            raise LongdepsError(f"task.horizon must be a positive integer, got {horizon!r}")
        self.horizon = horizon
        values, columns = self.series()
        if target is not None and target not in columns:
            raise LongdepsError(f"task.target={target!r} is not a column of {self.source}; choose from {', '.join(columns)}")
        self.borders = split_borders(len(values), self.seq_len, self.split_rows)
        train = values[:self.borders["train"][1]]
        std = train.std(axis=0)
        chosen = columns if target is None else [target]
        self.encoding = SeriesEncoding(columns, train.mean(axis=0).tolist(), np.where(std == 0, 1.0, std).tolist(),
                                       chosen, chosen, self.seq_len, horizon, getattr(self, "time_column", "date"))
        self.values = torch.from_numpy(self.encoding.standardised(values, columns)).float()
        self.starts = {}
        for part, (first, stop) in self.borders.items():
            count = stop - first - self.seq_len - horizon + 1
            if count < 1:
                raise LongdepsError(f"{self.source}: the {part} split has {stop - first} rows, too few for windows of "
                                    f"{self.seq_len} + {horizon} steps; shorten task.seq_len or task.horizon")
            size = {"train": self.fixed_train_size, "val": self.val_size, "test": self.test_size}[part]
            self.starts[part] = torch.arange(first, first + count)[:size]

    def series(self) -> tuple[np.ndarray, list[str]]:
        """The whole series ``(N, C)`` in its units, and its column names."""
        raise NotImplementedError

    @property
    def input_size(self) -> int:
        return len(self.encoding.inputs)

    @property
    def output_size(self) -> int:
        return self.horizon * len(self.encoding.targets)

    @property
    def train_size(self) -> int:
        return len(self.starts["train"])

    def windows(self, starts: torch.Tensor) -> Batch:
        """The windows starting at rows ``starts`` ``(B,)``."""
        x = self.values[starts[:, None] + torch.arange(self.seq_len)]  # (B, L, C)
        y = self.values[starts[:, None] + self.seq_len + torch.arange(self.horizon)]  # (B, H, C): inputs = targets
        return Batch(x.transpose(0, 1).contiguous(), y)

    def train_examples(self, index: torch.Tensor) -> Batch:
        return self.windows(self.starts["train"][index])

    def split(self, name: Literal["val", "test"]) -> list[Batch]:
        if name not in self._fixed:
            starts, n = self.starts[name], self.eval_batch_size
            self._fixed[name] = [self.windows(starts[i:i + n]) for i in range(0, len(starts), n)]
        return self._fixed[name]

    def preprocessing(self) -> dict:
        return json.loads(self.encoding.to_json())

    # -- scoring ----------------------------------------------------------------
    def per_example_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (outputs.view(y.shape) - y).pow(2).mean((1, 2))

    def per_example_metrics(self, outputs: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        error = outputs.view(y.shape) - y
        metrics = {"loss": error.pow(2).mean((1, 2)), "mse": error.pow(2).mean((1, 2)), "mae": error.abs().mean((1, 2))}
        if len(self.encoding.targets) > 1:
            for k, name in enumerate(self.encoding.targets):
                metrics[f"mse_{name}"] = error[..., k].pow(2).mean(1)
                metrics[f"mae_{name}"] = error[..., k].abs().mean(1)
        return metrics

    def solved(self, summary: dict[str, float]) -> bool:
        return False

    def baseline(self) -> dict[str, float]:
        """On the test split: the training mean (``mse``, ``mae``; the loss is the MSE) and the last
        look-back value repeated (``last_value_mse``, ``last_value_mae``)."""
        batch = self.windows(self.starts["test"])
        last = batch.x[-1][:, None, :].expand_as(batch.y)
        return {"loss": float(batch.y.double().pow(2).mean()), "mse": float(batch.y.double().pow(2).mean()),
                "mae": float(batch.y.double().abs().mean()),
                "last_value_mse": float((last - batch.y).double().pow(2).mean()),
                "last_value_mae": float((last - batch.y).double().abs().mean())}

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "horizon": self.horizon, "targets": self.encoding.targets,
                "windows": {part: len(s) for part, s in self.starts.items()}}


def linear_forecast_baseline(task: ForecastTask) -> dict[str, float]:
    """The DLinear-style baseline: one linear map (with a bias) from the ``seq_len`` look-back to the
    ``horizon`` steps, shared by every channel, fitted by least squares on the training windows;
    its MSE and MAE on the test split (standardised scale)."""
    def rows(part: str) -> tuple[np.ndarray, np.ndarray]:
        batch = task.windows(task.starts[part])
        x = batch.x.permute(1, 2, 0).reshape(-1, task.seq_len).double().numpy()  # (B * C, L)
        y = batch.y.permute(0, 2, 1).reshape(-1, task.horizon).double().numpy()  # (B * C, H)
        return np.hstack([x, np.ones((len(x), 1))]), y

    x, y = rows("train")
    weights = np.linalg.lstsq(x, y, rcond=None)[0]
    x, y = rows("test")
    error = x @ weights - y
    return {"mse": float((error ** 2).mean()), "mae": float(np.abs(error).mean())}


@register
class FileForecast(ForecastTask):
    """Forecasting on a series of your own (``task.path``)."""

    name = "forecast"
    description = ("forecast a series of your own: task.path=PATH (.csv/.parquet with a time column, or .npz x (T, C)), "
                   "look-back seq_len, task.horizon steps ahead, all columns or task.target")

    def __init__(self, seq_len: int | None = None, variant: str | None = None, horizon: int = 96,
                 target: str | None = None, path: str | None = None, time_column: str = "date",
                 sha256: str | None = None, **options):
        if path is None:
            raise LongdepsError("task 'forecast' needs task.path=PATH: a .csv/.parquet series with a time column, or an .npz")
        self.path, self.time_column = Path(path).expanduser(), time_column
        if not self.path.is_file():
            raise LongdepsError(f"task.path={path}: no such file")
        self.sha256 = file_sha256(self.path, sha256)
        super().__init__(seq_len, variant, horizon, target, **options)

    @property
    def source(self) -> Path:
        return self.path

    def series(self) -> tuple[np.ndarray, list[str]]:
        return read_series(self.path, self.time_column)


class ETTTask(ForecastTask):
    """ETT under the papers' protocol (see the module docstring)."""

    dataset: str
    split_rows = ETT_ROWS

    @property
    def source(self) -> str:
        return self.name

    def series(self) -> tuple[np.ndarray, list[str]]:
        (path,) = locate(self.name, self.data_dir).values()
        return read_series(path, "date")


for _name in ("ETTh1", "ETTh2"):
    register(type(f"{_name}Task", (ETTTask,), {
        "name": f"ett:{_name}", "dataset": _name, "__module__": __name__,
        "description": f"ETT {_name} forecasting (Zhou et al. 2021): hourly, 7 variables, 8640/2880/2880 rows "
                       "train/val/test; look-back seq_len (96), task.horizon (96, 192, 336, 720)"}))
