"""Pixel-by-pixel image classification: sequential and permuted MNIST, sequential Fashion-MNIST.

A 28x28 image is read one pixel per step, 784 steps, grey level / 255 in
[0, 1], and classified from the last step (10 classes).

Sources (read for facts; the code here is our own):

- Sequential MNIST, scanline order: Le, Jaitly & Hinton 2015; pixels in
  [0, 1] as in every implementation read.
- Permuted MNIST ``rs92916``: one fixed permutation of the pixels,
  ``np.random.RandomState(92916).permutation(784)``, as in the expRNN and
  asRNN code.
- Permuted MNIST ``cooijmans2016``: the index map of the BN-LSTM code
  (Cooijmans et al. 2016, ``sequential_mnist.py``), ``np.random.seed(1);
  np.random.randint(0, 784, size=784)``. It draws WITH replacement, so it is
  not a permutation: about 496 distinct pixels are read, some of them twice
  or more. The paper's pMNIST figures are on this map; use it only to
  compare with them.
- Split: the first 50,000 official training images train, the last 10,000
  validate, the official 10,000 test (Cooijmans et al.'s 50k/10k/10k). The
  expRNN/asRNN code has no validation set and reports the best test epoch;
  we never select on test.
- Sequential Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): the same pipeline
  on Fashion-MNIST.

Choices (ours):

- ``solved``: validation accuracy at about the published LSTM / BN-LSTM
  level, see each task's ``solved_rule``.
- ``baseline``: the class-prior predictor: class frequencies of the training
  split as output probabilities, scored on the validation split.
- ``train_size`` given: the first N of the 50,000 training images.
- ``val_size`` / ``test_size`` given: the first N of that split, for cheaper
  evaluation during training; unset: the whole split.
"""

from __future__ import annotations

import functools
from typing import Callable, Literal

import numpy as np
import torch

from longdeps.data import locate
from longdeps.data.idx import read_idx
from longdeps.errors import LongdepsError
from longdeps.tasks import register
from longdeps.tasks.base import Batch, SequenceClassification

PIXELS = 784
#: examples per split; validation is the tail of the official training set
SPLIT_SIZES = {"train": 50_000, "val": 10_000, "test": 10_000}

#: variant -> the pixel read at each step, ``(784,)`` int
INDEX_MAPS: dict[str, Callable[[], np.ndarray]] = {
    "scanline": lambda: np.arange(PIXELS),
    "rs92916": lambda: np.random.RandomState(92916).permutation(PIXELS),
    # the same draws as ``np.random.seed(1); np.random.randint(0, 784, size=784)``
    "cooijmans2016": lambda: np.random.RandomState(1).randint(0, PIXELS, size=PIXELS),
}

_decoded = functools.cache(read_idx)  # path -> array: decode each file once per process


class _PixelTask(SequenceClassification):
    """Classify a 28x28 image read one pixel per step along the variant's index map.

    ``x``: ``(784, B, 1)`` float32 in [0, 1]; ``y``: ``(B,)`` long class.
    Outputs: ``(B, 10)`` logits. Images are kept as uint8 ``(N, 784)``
    tensors, already in step order; floats are made per batch.
    """

    #: registry name of the data set (``longdeps.data``)
    dataset: str
    #: validation accuracy at which the task counts as solved, and where that level comes from
    solved_at: float
    solved_source: str

    readout = "last"
    metric = "accuracy"
    higher_is_better = True
    default_seq_len = PIXELS
    default_val_size = None
    default_test_size = None
    n_classes = 10

    def __init__(self, seq_len: int | None = None, variant: str | None = None, **options):
        super().__init__(seq_len, variant, **options)
        if self.seq_len != PIXELS:
            raise LongdepsError(f"seq_len={self.seq_len} is not supported by task {self.name!r}: an image is "
                                f"{PIXELS} pixels read one per step; leave task.seq_len unset")
        for label, size, part in (("train_size", self.fixed_train_size, "train"), ("val_size", self.val_size, "val"),
                                  ("test_size", self.test_size, "test")):
            if size is not None and size > SPLIT_SIZES[part]:
                raise LongdepsError(f"task.{label}={size} exceeds the {SPLIT_SIZES[part]} {part} images of "
                                    f"task {self.name!r}")
        self.paths = locate(self.dataset, self.data_dir)
        self.index_map = INDEX_MAPS[self.variant]()
        self._parts: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None

    @property
    def input_size(self) -> int:
        return 1

    @property
    def output_size(self) -> int:
        return self.n_classes

    @property
    def train_size(self) -> int:
        return self.fixed_train_size or SPLIT_SIZES["train"]

    @property
    def solved_rule(self) -> str:  # type: ignore[override]
        return f"validation accuracy >= {self.solved_at:.2f} (our choice: {self.solved_source})"

    # -- data ---------------------------------------------------------------
    def part(self, name: Literal["train", "val", "test"]) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(N, 784)`` uint8 in step order and labels ``(N,)`` long of a split, cut to its size."""
        if self._parts is None:
            train_x, train_y = self._read("train")
            test_x, test_y = self._read("t10k")
            n_train = SPLIT_SIZES["train"]
            self._parts = {"train": (train_x[:self.train_size], train_y[:self.train_size]),
                           "val": (train_x[n_train:][:self.val_size], train_y[n_train:][:self.val_size]),
                           "test": (test_x[:self.test_size], test_y[:self.test_size])}
        return self._parts[name]

    def _read(self, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
        """All images of an IDX pair (``train`` or ``t10k``), pixels reordered by the index map, and labels."""
        images = _decoded(self.paths[f"{prefix}-images-idx3-ubyte.gz"])
        labels = _decoded(self.paths[f"{prefix}-labels-idx1-ubyte.gz"])
        steps = images.reshape(len(images), PIXELS)[:, self.index_map]
        return torch.from_numpy(steps), torch.from_numpy(labels.astype(np.int64))

    @staticmethod
    def _batch(images: torch.Tensor, labels: torch.Tensor) -> Batch:
        """``images`` ``(B, 784)`` uint8 -> ``x`` ``(784, B, 1)`` float32 in [0, 1]."""
        return Batch(images.t().contiguous().unsqueeze(-1).float().div_(255), labels)

    def train_examples(self, index: torch.Tensor) -> Batch:
        images, labels = self.part("train")
        return self._batch(images[index], labels[index])

    def split(self, name: Literal["val", "test"]) -> list[Batch]:
        if name not in self._fixed:
            images, labels = self.part(name)
            size = self.eval_batch_size
            self._fixed[name] = [self._batch(images[i:i + size], labels[i:i + size])
                                 for i in range(0, len(labels), size)]
        return self._fixed[name]

    # -- scoring ------------------------------------------------------------
    def solved(self, summary: dict[str, float]) -> bool:
        return summary["accuracy"] >= self.solved_at

    def target(self) -> dict[str, float]:
        return {"accuracy": self.solved_at}

    def baseline(self) -> dict[str, float]:
        # Output the training class frequencies p whatever the input: on validation labels with
        # frequencies q that is cross-entropy -sum q log p (about ln 10) and accuracy q[argmax p].
        p = torch.bincount(self.part("train")[1], minlength=self.n_classes).double()
        q = torch.bincount(self.part("val")[1], minlength=self.n_classes).double()
        p, q = p / p.sum(), q / q.sum()
        return {"loss": float(-(q * p.log()).sum()), "accuracy": float(q[p.argmax()])}


@register
class SequentialMNIST(_PixelTask):
    name = "smnist"
    description = "sequential MNIST: classify a digit read one pixel per step in scanline order, 784 steps"
    variants = ("scanline",)
    dataset = "mnist"
    solved_at = 0.98
    solved_source = "about the LSTM level, 98.9% test in Cooijmans et al. 2016 Table 1"


@register
class PermutedMNIST(_PixelTask):
    name = "pmnist"
    description = ("permuted MNIST: sequential MNIST with the pixels in a fixed random order "
                   "(rs92916: RandomState(92916).permutation, expRNN/asRNN; "
                   "cooijmans2016: seed-1 randint map with repeats, Cooijmans et al. 2016)")
    variants = ("rs92916", "cooijmans2016")
    dataset = "mnist"
    solved_at = 0.95
    solved_source = ("about BN-LSTM 95.4% (Cooijmans et al. 2016, cooijmans2016 map) "
                     "and expRNN/asRNN 94.9-96.9% (rs92916)")


@register
class SequentialFashionMNIST(_PixelTask):
    name = "sfashion"
    description = "sequential Fashion-MNIST: classify a clothing image read one pixel per step, 784 steps"
    variants = ("scanline",)
    dataset = "fashion-mnist"
    solved_at = 0.88
    solved_source = "no source figure, none of the method papers reports sequential Fashion-MNIST"


__all__ = ["INDEX_MAPS", "PIXELS", "SPLIT_SIZES", "PermutedMNIST", "SequentialFashionMNIST", "SequentialMNIST"]
