"""Reading sequences of your own from a file: ``.npz``, ``.csv``, ``.parquet`` or ``.ts``.

Every reader returns a ``SequenceFile``: the sequences in original units,
their targets if the file has any, an optional split, and a way to name the
place in the file each value came from (for one-line errors).

Formats:

- ``.npz``: ``x`` ``(N, T, C)`` or ``(N, T)`` (one channel); sequences of
  different lengths padded to T with a ``lengths`` ``(N,)`` array (what lies
  past a sequence's length is never read); ``y`` ``(N,)`` (a class or value
  per sequence), ``(N, D)`` (a vector per sequence) or ``(N, T)`` /
  ``(N, T, D)`` (a target per step); optional ``split`` ``(N,)`` of
  'train'/'val'/'test' or 0/1/2; optional ``ids`` ``(N,)``.
- ``.csv`` / ``.parquet``, long format: one row per step, an id column, a
  time column (steps are sorted by it within each id), feature columns and
  target columns (a target constant within each id is one per sequence, else
  one per step), and optionally a split column.
- ``.ts`` (sktime/UEA), read by ``longdeps.tasks.timeseries.read_ts``: a
  class per sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from longdeps.errors import LongdepsError

#: suffixes this module reads
FORMATS = (".npz", ".csv", ".parquet", ".ts")

#: split names, in the order of their codes 0, 1, 2
SPLITS = ("train", "val", "test")


@dataclass
class Columns:
    """Which columns of a long-format table are what (``None`` features: every other column)."""

    id: str = "id"
    time: str = "time"
    features: tuple[str, ...] | None = None
    targets: tuple[str, ...] = ("target",)
    split: str = "split"


@dataclass
class SequenceFile:
    """The sequences of one file, in original units.

    ``values[i]``: ``(L_i, C)`` float64. ``targets``: None (a file to
    predict from), an array ``(N,)`` or ``(N, D)`` (one per sequence) or a
    list of ``(L_i,)`` / ``(L_i, D)`` arrays (one per step, ``per_step``).
    ``split``: ``(N,)`` codes 0/1/2 (train/val/test) or None. ``where(i, t,
    c)``: the place in the file of sequence i's step t, channel c, for errors.
    """

    path: Path
    values: list[np.ndarray]
    features: list[str]
    targets: np.ndarray | list[np.ndarray] | None = None
    per_step: bool = False
    target_names: list[str] = field(default_factory=list)
    split: np.ndarray | None = None
    ids: list[str] = field(default_factory=list)
    where: Callable[[int, int, int], str] = lambda i, t, c: f"sequence {i}, step {t}, channel {c}"


def file_sha256(path: Path, recorded: str | None) -> str:
    """The sha256 of the file ``path``; refused in one line where a run ``recorded`` another one."""
    from longdeps.data import sha256_of

    digest = sha256_of(path)
    if recorded is not None and recorded != digest:
        raise LongdepsError(f"{path} changed since this run started (sha256 {digest}, the run recorded {recorded}); "
                            "restore that file to continue it, or train without --resume for a new run")
    return digest


def read_sequences(path: str | Path, columns: Columns | None = None, targets: bool = True) -> SequenceFile:
    """The sequences of ``path``, by its suffix (``FORMATS``); ``targets=False``: a file to predict
    from, whose targets (if any) are not read."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise LongdepsError(f"{path}: unknown extension {path.suffix or '(none)'!r}; give a {', '.join(FORMATS)} file")
    if not path.is_file():
        raise LongdepsError(f"{path}: no such file")
    columns = columns or Columns()
    if path.suffix == ".npz":
        return _read_npz(path, targets)
    if path.suffix == ".ts":
        from longdeps.tasks.timeseries import read_ts

        series = read_ts(path)
        return SequenceFile(path, series.values, [f"dim_{c}" for c in range(series.values[0].shape[1])],
                            np.array(series.labels) if targets else None, target_names=["class"],
                            ids=[str(i) for i in range(len(series.values))],
                            where=lambda i, t, c: f"series {i + 1}, dimension {c}, value {t + 1}")
    return _read_table(path, columns, targets)


def _read_npz(path: Path, targets: bool) -> SequenceFile:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError:
        raise LongdepsError(f"{path}: holds ragged (object) arrays; store x as one (N, T, C) array padded to "
                            "the longest sequence, with a 'lengths' (N,) array") from None
    if "x" not in arrays:
        raise LongdepsError(f"{path}: no array 'x' (it holds {', '.join(arrays) or 'nothing'}); store the "
                            "sequences as x (N, T, C)")
    x = arrays["x"]
    x = x[..., None] if x.ndim == 2 else x
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.number):
        raise LongdepsError(f"{path}: x must be a numeric (N, T, C) or (N, T) array, got {x.dtype} {x.shape}")
    n, steps = x.shape[:2]
    lengths = arrays.get("lengths", np.full(n, steps))
    if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer) or not ((lengths >= 1) & (lengths <= steps)).all():
        raise LongdepsError(f"{path}: lengths must be ({n},) integers in 1..{steps}, got {lengths.dtype} {lengths.shape}")
    values = [x[i, :lengths[i]].astype(np.float64) for i in range(n)]
    y, per_step = (arrays.get("y"), False) if targets else (None, False)
    if y is not None:
        if len(y) != n:
            raise LongdepsError(f"{path}: y has {len(y)} rows but x has {n} sequences; give one target row per sequence")
        per_step = y.ndim == 3 or (y.ndim == 2 and y.shape[1] == steps)
        if y.ndim == 2 and per_step and np.issubdtype(y.dtype, np.floating):
            per_step = None  # a value per step or a vector per sequence: task.kind decides
        if per_step:
            y = [y[i, :lengths[i]] for i in range(n)]
    split = _split_codes(path, "split", arrays["split"], n) if "split" in arrays else None
    ids = [str(i) for i in arrays["ids"]] if "ids" in arrays else [str(i) for i in range(n)]
    channels = x.shape[2]
    return SequenceFile(path, values, [f"x{c}" for c in range(channels)], y, per_step,
                        ["y"] if y is None or per_step or np.ndim(y) == 1 else [f"y{d}" for d in range(np.shape(y)[1])],
                        split, ids, lambda i, t, c: f"x[{i}, {t}, {c}]")


def _split_codes(path: Path, name: str, split: np.ndarray, n: int) -> np.ndarray:
    """``split`` (names or 0/1/2) as codes 0/1/2."""
    if len(split) != n:
        raise LongdepsError(f"{path}: {name} has {len(split)} entries for {n} sequences; give one per sequence")
    if np.issubdtype(split.dtype, np.number):
        codes = split.astype(np.int64)
        bad = ~np.isin(codes, (0, 1, 2)) | (codes != split)
    else:
        strings = split.astype(str)
        codes = np.array([SPLITS.index(s) if s in SPLITS else -1 for s in strings])
        bad = codes < 0
    if bad.any():
        raise LongdepsError(f"{path}: {name} of sequence {int(np.argmax(bad))} is {split[np.argmax(bad)]!r}; "
                            "use 'train', 'val', 'test' or 0, 1, 2")
    return codes


def _read_table(path: Path, columns: Columns, targets: bool) -> SequenceFile:
    import pandas as pd

    try:
        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except Exception as err:  # pandas and pyarrow raise many kinds
        raise LongdepsError(f"{path}: not a readable {path.suffix[1:]} table ({str(err).splitlines()[0]})") from None
    frame["__row__"] = np.arange(len(frame)) + (2 if path.suffix == ".csv" else 0)  # a CSV's line numbers
    row_name = "line" if path.suffix == ".csv" else "row"
    wanted_targets = list(columns.targets) if targets else []
    reserved = {columns.id, columns.time, columns.split, *columns.targets, "__row__"}
    features = list(columns.features) if columns.features else [c for c in frame.columns if c not in reserved]
    for kind, names in (("id", [columns.id]), ("time", [columns.time]), ("feature", features),
                        ("target", wanted_targets)):
        for name in names:
            if name not in frame.columns:
                option = {"id": "task.id_column", "time": "task.time_column", "feature": "task.feature_columns",
                          "target": "task.target_column"}[kind]
                raise LongdepsError(f"{path}: no {kind} column {name!r} (columns: {', '.join(map(str, frame.columns[:-1]))}); "
                                    f"name it with {option}=...")
    if not features:
        raise LongdepsError(f"{path}: no feature columns left besides id, time and target; name them with task.feature_columns")
    for name in features:
        if not pd.api.types.is_numeric_dtype(frame[name]):
            raise LongdepsError(f"{path}: feature column {name!r} is not numeric ({frame[name].dtype}); "
                                "convert it, or leave it out with task.feature_columns")
    frame = frame.sort_values([columns.id, columns.time], kind="stable")
    groups = [group for _, group in frame.groupby(columns.id, sort=False)]
    values = [group[features].to_numpy(np.float64) for group in groups]
    rows = [group["__row__"].to_numpy() for group in groups]
    y, per_step = None, False
    if wanted_targets:  # constant within every sequence: one target per sequence, else one per step
        per_step = any(group[wanted_targets].nunique(dropna=False).max() > 1 for group in groups)
        steps = [group[wanted_targets].to_numpy() for group in groups]  # (L_i, D)
        steps = [a[:, 0] for a in steps] if len(wanted_targets) == 1 else steps
        y = steps if per_step else np.stack([a[0] for a in steps])
    split = None
    if columns.split in frame.columns:
        split = _split_codes(path, f"column {columns.split!r}",
                             np.array([group[columns.split].iloc[0] for group in groups]), len(groups))
    return SequenceFile(path, values, features, y, per_step, wanted_targets, split,
                        [str(group[columns.id].iloc[0]) for group in groups],
                        lambda i, t, c: f"{row_name} {rows[i][t]}, column {features[c]!r}")
