"""Full backpropagation through time."""

from __future__ import annotations

import torch

from longdeps.cells import State, detach_state
from longdeps.gradients.base import GradientEstimator
from longdeps.model import SequenceModel
from longdeps.tasks.base import Batch, Task


class BPTT(GradientEstimator):
    """Exact gradient: one forward over the whole sequence, one backward."""


    def backward(self, model: SequenceModel, batch: Batch, task: Task,
                 state: State | None = None) -> tuple[torch.Tensor, State]:
        outputs, state = model(batch.x, state)
        losses = task.per_example_loss(outputs, batch.y)
        losses.mean().backward()
        return losses.detach(), detach_state(state)
