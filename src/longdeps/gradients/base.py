"""What a gradient estimator does: turn a batch's loss over time into ``.grad``."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from longdeps.model import SequenceModel
from longdeps.tasks import Batch, Task


class GradientEstimator(ABC):
    """Fills the ``.grad`` of ``model``'s parameters for the batch's mean loss.

    ``.grad`` is accumulated into (the trainer zeroes it before each step).
    Returns the per-example losses ``(B,)``, detached.
    """

    name: str

    @abstractmethod
    def backward(self, model: SequenceModel, batch: Batch, task: Task) -> torch.Tensor: ...

    def describe(self) -> dict[str, object]:
        """Settings recorded with results."""
        return {"gradient": self.name}
