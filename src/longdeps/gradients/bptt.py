"""Full backpropagation through time."""

from __future__ import annotations

import torch

from longdeps.gradients.base import GradientEstimator
from longdeps.model import SequenceModel
from longdeps.tasks import Batch, Task


class BPTT(GradientEstimator):
    """Exact gradient: one forward over the whole sequence, one backward."""

    name = "bptt"

    def backward(self, model: SequenceModel, batch: Batch, task: Task) -> torch.Tensor:
        losses = task.per_example_loss(model(batch.x), batch.y)
        losses.mean().backward()
        return losses.detach()
