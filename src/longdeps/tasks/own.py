"""Your own sequences as a task: ``task.name=file`` with ``task.path=PATH`` (``--task file:PATH``).

The file (``longdeps.tasks.sequences``: ``.npz``, ``.csv``, ``.parquet``,
``.ts``) gives the sequences and their targets; the task is one of three kinds,
inferred where the targets leave no doubt, else set with ``task.kind``:

- ``classification``: a class per sequence (integer, boolean or string targets);
- ``regression``: a value or a vector per sequence (float targets);
- ``labelling``: a target per step, a class (integer or string) or a value (float).

Choices (ours):

- Splits: the file's ``split`` if it has one, else drawn from ``task.data_seed``:
  ``task.test_fraction`` and ``task.val_fraction`` of the sequences, of each
  class for classification (``timeseries.stratified_split``), the rest trains.
- Standardisation: each feature (and each regression target) to mean 0 and
  standard deviation 1 with the statistics of the training split's true steps
  only; a constant feature is only centred. Classes are the distinct labels
  in ``timeseries.label_order``. All of it is the task's ``Encoding``, which the
  run folder keeps (``preprocessing.json``) so that a trained model reads new
  files the same way (``longdeps.inference``).
- Variable lengths: every sequence is padded at its END with zeros to the
  longest; the model reads every step (``readout="all"``) and the loss reads
  each sequence's output at its true last step (per-sequence kinds) or at its
  true steps (labelling). A recurrent model's output at step t depends on the
  steps up to t only, so padding changes no prediction and no metric. The end
  step of each sequence travels in the targets: per-sequence ``y`` is
  ``(B, 1 + D)``, column 0 the end step (classification: ``(B, 2)`` long);
  labelling ``y`` is ``(T, B)`` long with -1 on padded steps, or ``(T, B, D)``
  float with NaN there.
- Metrics: accuracy (classes) or MSE and MAE on the standardised scale
  (values); labelling averages over true steps. ``solved``: a perfect
  validation accuracy for classes; values have no threshold (never solved).
  ``baseline``: the training split's class frequencies, or its mean, scored on
  the test split.
- Missing values (NaN in features): refused, unless ``task.missing`` is
  ``ffill`` (the last observed value of the sequence; the training mean before
  the first), ``zero`` (0 in the file's units) or ``mean`` (the training mean).
- The file's sha256 becomes ``task.sha256`` in the run config, and so part of
  the run id: an edited file is a new run, and a run refuses a file whose
  sha256 is not the one it records.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from longdeps.errors import LongdepsError
from longdeps.seeding import seeded_generator
from longdeps.tasks import register
from longdeps.tasks.base import Batch, Task
from longdeps.tasks.sequences import SPLITS, Columns, SequenceFile, file_sha256, read_sequences
from longdeps.tasks.timeseries import label_order, stratified_split

KINDS = ("classification", "regression", "labelling")
MISSING = ("ffill", "zero", "mean")

# Slack when a split-averaged 0/1 metric must equal 1 ("every example").
_EVERY = 1.0 - 1e-9


def settle_kind(data: SequenceFile, kind: str | None) -> str:
    """``kind`` if given (checked against the targets' shape), else the one the targets make certain;
    targets that only the kind tells apart (float ``(N, T)``) are settled as per step or per sequence."""
    if kind is not None and kind not in KINDS:
        raise LongdepsError(f"unknown task.kind {kind!r}; choose from {', '.join(KINDS)}")
    if data.targets is None:
        raise LongdepsError(f"{data.path}: no targets to train on (npz: a 'y' array; csv/parquet: the "
                            "task.target_column)")
    if data.per_step is None:  # npz: float y (N, T), T the padded length
        if kind not in ("labelling", "regression"):
            raise LongdepsError(f"{data.path}: y is float (N, T) with T the sequences' length: a value per step or a "
                                "vector per sequence? set task.kind=labelling or task.kind=regression")
        data.per_step = kind == "labelling"
        if data.per_step:
            data.targets = [data.targets[i, :len(v)] for i, v in enumerate(data.values)]
        return kind
    inferred = "labelling" if data.per_step else (
        "regression" if np.issubdtype(np.asarray(data.targets).dtype, np.floating) else "classification")
    if kind is not None and (kind == "labelling") != (inferred == "labelling"):
        shape = "a target per step" if inferred == "labelling" else "one target per sequence"
        raise LongdepsError(f"{data.path}: task.kind={kind} does not fit targets that give {shape}")
    if (kind or inferred) == "classification" and np.asarray(data.targets).ndim != 1:
        raise LongdepsError(f"{data.path}: classification needs one class per sequence, got targets of shape "
                            f"{np.shape(data.targets)}; give y as (N,), or float values for regression")
    return kind or inferred


@dataclass
class Encoding:
    """How a file's sequences become model inputs and targets, and outputs become predictions: what
    the run folder keeps as ``preprocessing.json``.

    ``mean``/``std``: per feature (training split); ``classes``: class names in
    class order (classes, labelling of classes); ``target_mean``/``target_std``:
    per target (values).
    """

    kind: str
    features: list[str]
    mean: list[float]
    std: list[float]
    targets: list[str]
    classes: list[str] | None = None
    target_mean: list[float] | None = None
    target_std: list[float] | None = None
    missing: str | None = None
    columns: dict | None = None  #: ``Columns`` of a long-format file
    seq_len: int | None = None  #: the longest sequence of the training file

    @property
    def input_size(self) -> int:
        return len(self.features)

    @property
    def output_size(self) -> int:
        return len(self.classes) if self.classes is not None else len(self.targets)

    @property
    def per_class(self) -> bool:
        return self.classes is not None

    def to_json(self) -> str:
        return json.dumps({"task": "file", **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> "Encoding":
        return cls(**{k: v for k, v in data.items() if k != "task"})

    # -- inputs ----------------------------------------------------------------
    def check_features(self, data: SequenceFile) -> None:
        if data.features != self.features and data.path.suffix != ".npz":
            raise LongdepsError(f"{data.path}: features {', '.join(data.features)}; the model reads "
                                f"{', '.join(self.features)}: give a file with those columns")
        if data.values[0].shape[1] != len(self.features):
            raise LongdepsError(f"{data.path}: {data.values[0].shape[1]} channels; the model reads {len(self.features)}")

    def standardised(self, data: SequenceFile) -> list[np.ndarray]:
        """Each sequence ``(L_i, C)`` standardised, missing values filled by ``missing``; a NaN without
        a rule, or an infinite value, is refused in one line naming its place in the file."""
        mean, std = np.array(self.mean), np.array(self.std)
        out = []
        for i, series in enumerate(data.values):
            bad = np.isinf(series) | (np.isnan(series) if self.missing is None else False)
            if bad.any():
                t, c = np.argwhere(bad)[0]
                fix = "" if np.isinf(series[t, c]) else " (or set task.missing=ffill, zero or mean to fill gaps)"
                raise LongdepsError(f"{data.path}: {data.where(i, t, c)} is {series[t, c]}; give a finite value{fix}")
            out.append((fill_missing(series, self.missing, mean) - mean) / std)
        return out

    def inputs(self, data: SequenceFile) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(T, N, C)`` float32 padded at the end with zeros, and each sequence's end step ``(N,)``."""
        self.check_features(data)
        series = self.standardised(data)
        length = max(len(s) for s in series)
        x = np.zeros((length, len(series), len(self.features)), dtype=np.float32)
        for i, s in enumerate(series):
            x[:len(s), i] = s
        return torch.from_numpy(x), torch.tensor([len(s) - 1 for s in series])

    # -- targets ---------------------------------------------------------------
    def class_indices(self, data: SequenceFile, labels: np.ndarray, i: int | None = None) -> np.ndarray:
        known = {name: k for k, name in enumerate(self.classes)}
        names = np.asarray(labels).astype(str)
        unknown = [name for name in names if name not in known]
        if unknown:
            where = f"sequence {data.ids[i]!r}" if i is not None else "the targets"
            raise LongdepsError(f"{data.path}: class {unknown[0]!r} in {where} was not in the training split "
                                f"(classes: {', '.join(self.classes)}); move some of it to the training split")
        return np.array([known[name] for name in names], dtype=np.int64)

    def scaled(self, values: np.ndarray) -> np.ndarray:
        return (values.reshape(len(values), -1) - np.array(self.target_mean)) / np.array(self.target_std)

    def target_tensor(self, data: SequenceFile, ends: torch.Tensor) -> torch.Tensor:
        """``y`` as the task reads it (see the module docstring)."""
        if self.kind != "labelling":
            if self.per_class:
                return torch.stack([ends, torch.from_numpy(self.class_indices(data, data.targets))], 1)
            return torch.cat([ends[:, None].float(), torch.from_numpy(self.scaled(data.targets)).float()], 1)
        steps = int(ends.max()) + 1
        if self.per_class:
            y = torch.full((steps, len(ends)), -1, dtype=torch.long)
            for i, labels in enumerate(data.targets):
                y[:len(labels), i] = torch.from_numpy(self.class_indices(data, labels, i))
            return y
        y = torch.full((steps, len(ends), len(self.targets)), float("nan"))
        for i, values in enumerate(data.targets):
            y[:len(values), i] = torch.from_numpy(self.scaled(values)).float()
        return y

    # -- outputs ---------------------------------------------------------------
    def predictions(self, outputs: torch.Tensor, ends: torch.Tensor) -> list[np.ndarray]:
        """Model outputs ``(T, N, O)`` -> per sequence: class probabilities ``(O,)`` or values in the file's
        units ``(D,)`` (per-sequence kinds), or ``(L_i, O)`` / ``(L_i, D)`` (labelling)."""
        out = torch.softmax(outputs, -1) if self.per_class else outputs
        out = out.double().numpy()
        if not self.per_class:
            out = out * np.array(self.target_std) + np.array(self.target_mean)
        if self.kind == "labelling":
            return [out[:end + 1, i] for i, end in enumerate(ends.tolist())]
        return [out[end, i] for i, end in enumerate(ends.tolist())]


def fill_missing(series: np.ndarray, rule: str | None, mean: np.ndarray) -> np.ndarray:
    """``series`` ``(L, C)`` with its NaN filled by ``rule`` (``MISSING``; None: as it is)."""
    if rule is None or not np.isnan(series).any():
        return series
    if rule == "zero":
        return np.nan_to_num(series, nan=0.0)
    if rule == "ffill":
        import pandas as pd

        series = pd.DataFrame(series).ffill().to_numpy()
    return np.where(np.isnan(series), mean, series)


def fit_encoding(data: SequenceFile, kind: str, train: np.ndarray, missing: str | None,
                 columns: Columns | None) -> Encoding:
    """The ``Encoding`` of ``data`` with the statistics of its training sequences ``train`` (indices)."""
    steps = np.concatenate([data.values[i] for i in train])
    with np.errstate(all="ignore"):
        mean, std = np.nanmean(steps, axis=0), np.nanstd(steps, axis=0)
    mean, std = np.nan_to_num(mean), np.where(np.isnan(std) | (std == 0), 1.0, std)
    targets = data.targets
    classes = target_mean = target_std = None
    per_class = kind == "classification" or (kind == "labelling" and not np.issubdtype(
        np.asarray(targets[0]).dtype, np.floating))
    if per_class:
        seen = np.asarray(targets)[train] if kind == "classification" else np.concatenate([targets[i] for i in train])
        classes = label_order(np.asarray(seen).astype(str))
    else:
        values = (np.asarray(targets, dtype=np.float64)[train].reshape(len(train), -1) if kind == "regression" else
                  np.concatenate([np.asarray(targets[i], np.float64).reshape(len(targets[i]), -1) for i in train]))
        spread = values.std(axis=0)
        target_mean, target_std = values.mean(axis=0).tolist(), np.where(spread == 0, 1.0, spread).tolist()
    names = data.target_names if not per_class else data.target_names[:1]
    if target_mean is not None and len(names) != len(target_mean):
        names = [f"y{d}" for d in range(len(target_mean))]
    return Encoding(kind, list(data.features), mean.tolist(), std.tolist(), names, classes, target_mean, target_std,
                    missing, None if columns is None else asdict(columns))


@register
class FileTask(Task):
    """The sequences of one file of your own (see the module docstring)."""

    name = "file"
    description = ("your own sequences: task.path=PATH (.npz, .csv, .parquet, .ts); classification, regression "
                   "or labelling (task.kind, inferred where the targets are unambiguous)")
    readout = "all"
    default_val_size = None
    default_test_size = None

    def __init__(self, seq_len: int | None = None, variant: str | None = None, path: str | None = None,
                 kind: str | None = None, id_column: str = "id", time_column: str = "time",
                 feature_columns: str | None = None, target_column: str = "target", split_column: str = "split",
                 missing: str | None = None, val_fraction: float = 0.2, test_fraction: float = 0.2,
                 sha256: str | None = None, **options):
        if path is None:
            raise LongdepsError("task 'file' needs task.path=PATH (or --task file:PATH): a .npz, .csv, .parquet or .ts file")
        if missing is not None and missing not in MISSING:
            raise LongdepsError(f"unknown task.missing {missing!r}; choose from {', '.join(MISSING)}")
        if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
            raise LongdepsError(f"task.val_fraction={val_fraction} and task.test_fraction={test_fraction} must be in "
                                "(0, 1) and leave some sequences to train on")
        self.path = Path(path).expanduser()
        self.sha256 = file_sha256(self.path, sha256) if self.path.is_file() else None
        columns = Columns(id_column, time_column,
                          tuple(c.strip() for c in feature_columns.split(",")) if feature_columns else None,
                          tuple(c.strip() for c in target_column.split(",")), split_column)
        self.data = data = read_sequences(self.path, columns)  # (a missing file or unknown extension: refused)
        self.kind = settle_kind(data, kind)
        self.check_targets()
        longest = max(len(v) for v in data.values)
        if seq_len is not None and seq_len != longest:
            raise LongdepsError(f"task.seq_len={seq_len}: the sequences of {self.path} are at most {longest} steps "
                                "long (shorter ones padded); leave task.seq_len unset")
        super().__init__(longest, variant, **options)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        rows = self.split_rows()
        self.encoding = fit_encoding(data, self.kind, rows["train"], missing,
                                     columns if self.path.suffix in (".csv", ".parquet") else None)
        self.encoding.seq_len = self.seq_len
        x, ends = self.encoding.inputs(data)
        whole = Batch(x, self.encoding.target_tensor(data, ends), 1 if self.kind == "labelling" else 0)
        self.rows = {part: torch.from_numpy(r) for part, r in rows.items()}
        self.parts = {part: whole.select(r) for part, r in self.rows.items()}
        self.metric = "accuracy" if self.encoding.per_class else "mse"
        self.higher_is_better = self.encoding.per_class

    # -- the data ----------------------------------------------------------------
    def check_targets(self) -> None:
        """Refuse targets that are NaN or infinite, in one line naming the sequence."""
        for i, target in enumerate(self.data.targets if self.data.per_step else np.asarray(self.data.targets)):
            target = np.asarray(target)
            if np.issubdtype(target.dtype, np.floating) and not np.isfinite(target).all():
                raise LongdepsError(f"{self.path}: the target of sequence {self.data.ids[i]!r} is not finite "
                                    f"({target.ravel()[~np.isfinite(target.ravel())][0]}); give every target a value")

    def split_rows(self) -> dict[str, np.ndarray]:
        """The file's sequences in each split: the file's ``split``, else drawn (see the module docstring)."""
        data, n = self.data, len(self.data.values)
        if data.split is not None:
            rows = {part: np.flatnonzero(data.split == code) for code, part in enumerate(SPLITS)}
        else:
            generator = seeded_generator("file", self.data_seed)
            if self.kind == "classification":
                y = torch.tensor(self.encoding_labels())
                rest, test = stratified_split(y, self.test_fraction, generator)
                train, val = stratified_split(y[rest], self.val_fraction / (1 - self.test_fraction), generator)
                rows = {"train": rest[train].numpy(), "val": rest[val].numpy(), "test": test.numpy()}
            else:
                order = torch.randperm(n, generator=generator).numpy()
                n_test, n_val = round(self.test_fraction * n), round(self.val_fraction * n)
                rows = {"train": order[n_test + n_val:], "val": order[n_test:n_test + n_val], "test": order[:n_test]}
        empty = [part for part, r in rows.items() if len(r) == 0]
        if empty:
            raise LongdepsError(f"{self.path}: {n} sequences are too few: the {empty[0]} split is empty; add sequences"
                                + ("" if data.split is not None else " (or set task.val_fraction/task.test_fraction)")
                                + " so that train, val and test each get at least one")
        if self.kind == "classification":
            labels = np.asarray(data.targets).astype(str)
            seen = set(labels[rows["train"]])
            for part in ("val", "test"):
                unseen = sorted(set(labels[rows[part]]) - seen)
                if unseen:
                    raise LongdepsError(f"{self.path}: class {str(unseen[0])!r} is in the {part} split only; move some of "
                                        "its sequences to the training split (or drop the file's split to draw one)")
        for part, size, label in (("train", self.fixed_train_size, "train_size"), ("val", self.val_size, "val_size"),
                                  ("test", self.test_size, "test_size")):
            if size is not None and size > len(rows[part]):
                raise LongdepsError(f"task.{label}={size} exceeds the {len(rows[part])} {part} sequences of {self.path}")
            rows[part] = rows[part][:size]
        return rows

    def encoding_labels(self) -> list[int]:
        """Class indices of every sequence, in ``label_order`` of all labels (for stratified splits)."""
        labels = np.asarray(self.data.targets).astype(str)
        order = {name: k for k, name in enumerate(label_order(labels))}
        return [order[name] for name in labels]

    @property
    def input_size(self) -> int:
        return self.encoding.input_size

    @property
    def output_size(self) -> int:
        return self.encoding.output_size

    @property
    def train_size(self) -> int:
        return len(self.rows["train"])

    def train_examples(self, index: torch.Tensor) -> Batch:
        return self.parts["train"].select(index)

    def split(self, name: Literal["val", "test"]) -> list[Batch]:
        if name not in self._fixed:
            whole, n = self.parts[name], self.eval_batch_size
            self._fixed[name] = [whole.select(torch.arange(i, min(i + n, whole.size))) for i in range(0, whole.size, n)]
        return self._fixed[name]

    def preprocessing(self) -> dict:
        return json.loads(self.encoding.to_json())

    # -- scoring -----------------------------------------------------------------
    def mask(self, y: torch.Tensor) -> torch.Tensor:
        """Which predictions are true ones: labelling ``(T, B)`` (padded steps False), else ``(B,)`` ones."""
        if self.kind != "labelling":
            return torch.ones(y.shape[0], dtype=torch.bool, device=y.device)
        return y >= 0 if self.encoding.per_class else ~y.isnan().any(-1)

    def example_ends(self, batch: Batch) -> torch.Tensor:
        """The end step of each example of ``batch`` ``(B,)``: what lies after it is padding."""
        return self.mask(batch.y).sum(0) - 1 if self.kind == "labelling" else batch.y[:, 0].long()

    def paired(self, outputs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs and targets of the predictions: labelling ``(T, B, O)`` and ``(T, B[, D])`` (padded
        steps hold a placeholder target), else each sequence's output at its end step ``(B, O)`` and
        its target ``(B[, D])``."""
        if self.kind == "labelling":
            return outputs, (y.clamp(min=0) if self.encoding.per_class else y.nan_to_num())
        final = outputs[y[:, 0].long(), torch.arange(y.shape[0], device=y.device)]
        return final, (y[:, 1] if self.encoding.per_class else y[:, 1:])

    def per_step(self, outputs: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each metric per prediction: labelling ``(T, B)``, else ``(B,)``."""
        out, target = self.paired(outputs, y)
        if self.encoding.per_class:
            loss = F.cross_entropy(out.flatten(0, -2), target.flatten(), reduction="none").view(target.shape)
            return {"loss": loss, "accuracy": (out.argmax(-1) == target).float()}
        error = out - target
        return {"loss": error.pow(2).mean(-1), "mse": error.pow(2).mean(-1), "mae": error.abs().mean(-1)}

    def example_weights(self, batch: Batch) -> torch.Tensor:
        """True predictions of each example ``(B,)``: its true steps (labelling), else 1."""
        mask = self.mask(batch.y)
        return (mask.sum(0) if self.kind == "labelling" else mask).double()

    def per_example_metrics(self, outputs: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        values = self.per_step(outputs, y)
        if self.kind != "labelling":
            return values
        mask = self.mask(y)
        count = mask.sum(0).clamp(min=1)
        return {key: (v * mask).sum(0) / count for key, v in values.items()}

    def per_example_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.per_example_metrics(outputs, y)["loss"]

    @property
    def solved_rule(self) -> str:
        return ("validation accuracy = 100%" if self.encoding.per_class
                else "none: regression has no success threshold (compare the test MSE with the baseline)")

    def solved(self, summary: dict[str, float]) -> bool:
        return self.encoding.per_class and summary["accuracy"] >= _EVERY

    def target(self) -> dict[str, float]:
        return {"accuracy": 1.0} if self.encoding.per_class else {}

    def baseline(self) -> dict[str, float]:
        """The training split's class frequencies (classes) or mean (values, 0 once standardised),
        scored on the test split."""
        train, test = self.parts["train"], self.parts["test"]
        steps = test.x.shape[0]
        if self.encoding.per_class:
            target = train.y if self.kind == "labelling" else train.y[:, 1]
            prior = torch.bincount(target[self.mask(train.y)], minlength=self.output_size).double()
            outputs = (prior / prior.sum()).log().float().expand(steps, test.size, -1)
        else:
            outputs = torch.zeros(steps, test.size, self.output_size)
        mask = self.mask(test.y)
        return {key: float(v[mask].double().mean()) for key, v in self.per_step(outputs, test.y).items()}

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "path": str(self.path), "sha256": self.sha256, "kind": self.kind,
                "sizes": {part: len(r) for part, r in self.rows.items()}}

