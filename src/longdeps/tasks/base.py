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

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import torch


@dataclass
class Batch:
    """One mini-batch: inputs ``x`` (T, B, input_size) and targets ``y``.

    ``y_batch_dim`` is the batch dimension of ``y``: 0 for many-to-one
    targets ``(B, ...)``, 1 for many-to-many targets ``(T, B)``.
    """

    x: torch.Tensor
    y: torch.Tensor
    y_batch_dim: int = 0

    @property
    def size(self) -> int:
        return self.x.shape[1]

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.x.to(device), self.y.to(device), self.y_batch_dim)

    def select(self, index: torch.Tensor) -> "Batch":
        """The examples at ``index`` (a 1-D long tensor), in that order."""
        return Batch(self.x[:, index], self.y.index_select(self.y_batch_dim, index), self.y_batch_dim)


def seeded_generator(*keys: object) -> torch.Generator:
    """A CPU generator whose seed is a stable hash of ``keys`` (same on every machine)."""
    digest = hashlib.sha256(repr(keys).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


class Task(ABC):
    """A supervised sequence task with a fixed validation and test set.

    Subclasses set the class attributes below and implement ``sample``,
    ``per_example_loss`` and ``per_example_metrics``.
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

    def __init__(self, seq_len: int, variant: str | None = None, val_size: int = 1000,
                 test_size: int = 1000, data_seed: int = 0, eval_batch_size: int = 500):
        from longdeps.errors import LongdepsError

        variant = self.variants[0] if variant is None else variant
        if variant not in self.variants:
            raise LongdepsError(f"unknown variant {variant!r} for task {self.name!r}; choose from {', '.join(self.variants)}")
        if seq_len < 1:
            raise LongdepsError(f"seq_len must be a positive integer, got {seq_len!r}")
        self.seq_len = seq_len
        self.variant = variant
        self.val_size = val_size
        self.test_size = test_size
        self.data_seed = data_seed
        self.eval_batch_size = eval_batch_size
        self._fixed: dict[str, list[Batch]] = {}

    # -- sizes --------------------------------------------------------------
    @property
    @abstractmethod
    def input_size(self) -> int: ...

    @property
    @abstractmethod
    def output_size(self) -> int: ...

    # -- data ---------------------------------------------------------------
    @abstractmethod
    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """A fresh batch drawn with ``generator`` (reproducible from its state)."""

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

    @abstractmethod
    def solved(self, summary: dict[str, float]) -> bool:
        """Whether split-averaged metrics meet this variant's success criterion."""

    #: human-readable statement of ``solved``, recorded with every result
    solved_rule: str = ""

    def baseline(self) -> dict[str, float]:
        """Metrics of the best input-independent predictor (what a model with no memory reaches)."""
        return {}

    def describe(self) -> dict[str, object]:
        """What a result records about the task."""
        return {"task": self.name, "variant": self.variant, "seq_len": self.seq_len,
                "metric": self.metric, "solved_rule": self.solved_rule, "baseline": self.baseline()}
