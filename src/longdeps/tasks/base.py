"""What every task provides: batches, a per-example loss, metrics and a "solved" rule.

Shapes (time-major, like ``torch.nn.LSTM``):

- ``x``: ``(T, B, input_size)`` float32.
- model outputs: ``(B, output_size)`` when ``readout == "last"`` (many-to-one),
  ``(T, B, output_size)`` when ``readout == "all"`` (many-to-many).
- ``y``: whatever the task's loss takes; its first dimension is the batch
  for many-to-one tasks, ``(T, B)`` for many-to-many tasks.

All sequences of one batch share their length; tasks whose length varies
draw one length per batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import torch

from longdeps.seeding import seeded_generator


@dataclass
class Batch:
    """One mini-batch: inputs ``x`` (T, B, input_size) and targets ``y``.

    ``y_batch_dim`` is the batch dimension of ``y``: 0 for many-to-one
    targets ``(B, ...)``, 1 for many-to-many targets ``(T, B)``.
    """

    x: torch.Tensor
    y: torch.Tensor
    y_batch_dim: int = 0
    #: the batch continues the sequences of the previous one, from their final state
    continues: bool = False

    @property
    def size(self) -> int:
        return self.x.shape[1]

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.x.to(device), self.y.to(device), self.y_batch_dim, self.continues)

    def select(self, index: torch.Tensor) -> "Batch":
        """The examples at ``index`` (a 1-D long tensor), in that order."""
        return Batch(self.x[:, index], self.y.index_select(self.y_batch_dim, index), self.y_batch_dim, self.continues)


class Task(ABC):
    """A supervised sequence task with a fixed validation and test set.

    Generated tasks implement ``sample`` and get their splits from it; tasks
    on a finite data set (``train_size`` not None) also override
    ``train_examples`` and ``split``. Every task implements
    ``per_example_loss``, ``per_example_metrics`` and ``solved``.

    Args:
        eval_batch_size: examples per batch of the validation and test sets.
    """

    #: registry name, e.g. ``"adding"``
    name: str
    #: one line for ``longdeps tasks``
    description: str
    #: the task's named variants; the first is the default
    variants: tuple[str, ...] = ("default",)
    #: ``"last"``: one output per sequence; ``"all"``: one output per step
    readout: Literal["last", "all"] = "last"
    #: key of the headline metric in ``per_example_metrics``
    metric: str = "accuracy"
    #: whether a larger ``metric`` is better (model selection uses it)
    higher_is_better: bool = True
    #: sequence length when the config leaves it unset
    default_seq_len: int = 100
    #: output classes (None: regression), for listings that do not load data
    n_classes: int | None = None
    #: validation/test examples when the config leaves it unset (None: the whole split)
    default_val_size: int | None = 1000
    default_test_size: int | None = 1000
    #: examples must be read in order, each batch continuing the previous one's
    #: sequences from their final state (carried-state streams)
    ordered: bool = False

    def __init__(self, seq_len: int | None = None, variant: str | None = None, val_size: int | None = None,
                 test_size: int | None = None, train_size: int | None = None, data_seed: int = 0,
                 data_dir: str | None = None, eval_batch_size: int = 500):
        from longdeps.errors import LongdepsError

        variant = self.variants[0] if variant is None else variant
        if variant not in self.variants:
            raise LongdepsError(f"unknown variant {variant!r} for task {self.name!r}; choose from {', '.join(self.variants)}")
        seq_len = self.default_seq_len if seq_len is None else seq_len
        if not isinstance(seq_len, int) or seq_len < 1:
            raise LongdepsError(f"seq_len must be a positive integer, got {seq_len!r}")
        for label, size in (("val_size", val_size), ("test_size", test_size), ("train_size", train_size)):
            if size is not None and size < 1:
                raise LongdepsError(f"task.{label} must be a positive integer or null, got {size!r}")
        self.seq_len = seq_len
        self.variant = variant
        self.val_size = self.default_val_size if val_size is None else val_size
        self.test_size = self.default_test_size if test_size is None else test_size
        self.fixed_train_size = train_size
        self.data_seed = data_seed
        self.data_dir = data_dir
        self.eval_batch_size = eval_batch_size
        self._fixed: dict[str, list[Batch]] = {}
        self._pool: Batch | None = None

    # -- sizes --------------------------------------------------------------
    @property
    @abstractmethod
    def input_size(self) -> int: ...

    @property
    @abstractmethod
    def output_size(self) -> int: ...

    # -- data ---------------------------------------------------------------
    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """A freshly generated batch drawn with ``generator`` (generated tasks only)."""
        raise NotImplementedError(f"task {self.name!r} reads a finite data set; use train_examples")

    @property
    def train_size(self) -> int | None:
        """Number of training examples; None when every batch is freshly generated."""
        return self.fixed_train_size

    def updates_per_epoch(self, batch_size: int) -> Fraction | None:
        """Updates of ``batch_size`` that read the training data once (exact); None for a task
        that generates every batch. ``train_size`` counts examples, or for carried-state
        streams symbols, which are read in ``segments`` instead."""
        if self.ordered:
            return Fraction(self.segments(batch_size))
        return Fraction(self.train_size, batch_size) if self.train_size else None

    @property
    def provides(self) -> frozenset[str]:
        """What this task offers the other axes (``longdeps.registry.CAPABILITIES``)."""
        return frozenset({"fixed training set"} if self.train_size and not self.ordered else ())

    def train_examples(self, index: torch.Tensor) -> Batch:
        """The training examples at ``index`` (1-D long).

        For a generated task with ``train_size`` set, the pool is generated
        once from the data seed, so every run trains on the same examples; it
        is drawn as one batch, so it has one sequence length.
        """
        if self._pool is None:
            gen = seeded_generator(self.name, self.variant, self.seq_len, self.data_seed, "train", self.train_size)
            self._pool = self.sample(self.train_size, gen)
        return self._pool.select(index)

    def fixed_train_batch(self, batch_size: int, seed: int) -> Batch:
        """One training batch that stays the same through a run, for probes: the first
        examples of a finite training set (the first segment of carried-state streams), or
        examples generated from ``seed`` with a generator of their own."""
        if self.ordered:
            return self.train_segment(0, batch_size)
        if self.train_size:
            return self.train_examples(torch.arange(min(batch_size, self.train_size)))
        return self.sample(batch_size, seeded_generator("fixed-train-batch", seed))

    def split(self, name: Literal["val", "test"]) -> list[Batch]:
        """The fixed validation or test set, as batches; the same for every run."""
        if name not in self._fixed:
            size = self.val_size if name == "val" else self.test_size
            gen = seeded_generator(self.name, self.variant, self.seq_len, self.data_seed, name)
            batches, left = [], size
            while left > 0:
                n = min(self.eval_batch_size, left)
                batches.append(self.sample(n, gen))
                left -= n
            self._fixed[name] = batches
        return self._fixed[name]

    # -- scoring ------------------------------------------------------------
    @abstractmethod
    def per_example_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Training loss of each example, shape ``(B,)``; the batch loss is its mean."""

    @abstractmethod
    def per_example_metrics(self, outputs: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-example values ``(B,)`` to be averaged over a split; must include ``"loss"`` and ``self.metric``."""

    def example_weights(self, batch: Batch) -> torch.Tensor | None:
        """How many predictions each example of ``batch`` makes ``(B,)``, for split averages; None:
        one per sequence (``readout="last"``) or one per step (``"all"``)."""
        return None

    @abstractmethod
    def solved(self, summary: dict[str, float]) -> bool:
        """Whether split-averaged metrics meet this variant's success criterion."""

    #: human-readable statement of ``solved``, recorded with every result
    solved_rule: str = ""

    @classmethod
    def solved_rule_of(cls, variant: str) -> str:
        """``solved_rule`` of ``variant``, without building the task (which may read its data): the
        rule reads nothing but the variant and class attributes."""
        bare = cls.__new__(cls)
        bare.variant = variant
        return bare.solved_rule

    def baseline(self) -> dict[str, float]:
        """Metrics of the best input-independent predictor (what a model with no memory reaches)."""
        return {}

    def target(self) -> dict[str, float]:
        """The thresholds that ``solved`` puts on validation metrics, by metric (for plots)."""
        return {}

    def preprocessing(self) -> dict[str, object] | None:
        """What a trained model needs besides its weights to read new data (standardisation, class
        names), as JSON; the run folder keeps it as ``preprocessing.json``. None: nothing."""
        return None

    def describe(self) -> dict[str, object]:
        """What a result records about the task."""
        return {"task": self.name, "variant": self.variant, "seq_len": self.seq_len, "metric": self.metric,
                "solved_rule": self.solved_rule, "baseline": self.baseline(), "target": self.target()}


class SequenceClassification(Task):
    """A many-to-one classification task: outputs ``(B, C)`` logits, targets ``y`` ``(B,)``
    class indices; cross-entropy loss, accuracy metric."""

    readout = "last"
    metric = "accuracy"
    higher_is_better = True

    def per_example_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(outputs, y, reduction="none")

    def per_example_metrics(self, outputs: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": self.per_example_loss(outputs, y), "accuracy": (outputs.argmax(-1) == y).float()}
