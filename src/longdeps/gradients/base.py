"""What a gradient estimator does: turn a batch's loss over time into ``.grad``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from longdeps.cells import State
from longdeps.model import SequenceModel
from longdeps.reporting import ReportSection
from longdeps.tasks.base import Batch, Task


class GradientEstimator(ReportSection, ABC):
    """Fills the ``.grad`` of ``model``'s parameters for the batch's mean loss.

    ``.grad`` is accumulated into (the trainer zeroes it before each step).
    ``state`` is the cell state the batch starts from (None: the initial
    state; carried-state streams pass the previous batch's final state,
    detached). Returns the per-example losses ``(B,)`` and the final state,
    both detached.
    """

    name: str

    @abstractmethod
    def backward(self, model: SequenceModel, batch: Batch, task: Task,
                 state: State | None = None) -> tuple[torch.Tensor, State]: ...

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must keep (fixed random draws, for example)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def statistics(self) -> dict[str, Any]:
        """What the estimator reports in each evaluation record (e.g. how its feedback was formed)."""
        return {}

    def describe(self) -> dict[str, object]:
        """Settings recorded with results."""
        return {"gradient": self.name}
