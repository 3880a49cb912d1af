"""Truncated backpropagation through time (k steps)."""

from __future__ import annotations

import torch

from longdeps.cells import State, detach_state
from longdeps.errors import LongdepsError
from longdeps.gradients.base import GradientEstimator
from longdeps.model import SequenceModel
from longdeps.tasks.base import Batch, Task


class TBPTT(GradientEstimator):
    """Gradient through at most ``k`` steps: the sequence is cut into segments of
    ``k`` steps, counted back from its end, and the state (every layer's, for a
    stack) is detached between segments. A many-to-one loss then sees exactly the last ``k`` steps;
    ``k = 1`` is fully truncated BPTT and ``k >= T`` is exact BPTT. Segments
    that no loss reads run without autograd.
    """


    def __init__(self, truncation: int | None = None):
        if not isinstance(truncation, int) or truncation < 1:
            raise LongdepsError(f"tbptt needs gradient.truncation >= 1 steps, got {truncation!r}")
        self.k = truncation

    def backward(self, model: SequenceModel, batch: Batch, task: Task,
                 state: State | None = None) -> tuple[torch.Tensor, State]:
        steps = batch.x.shape[0]
        first = steps % self.k or self.k
        bounds = [0, *range(first, steps + 1, self.k)]
        hidden = []
        for start, stop in zip(bounds, bounds[1:]):
            read_by_loss = model.readout_kind == "all" or stop == steps
            with torch.set_grad_enabled(read_by_loss and torch.is_grad_enabled()):
                h, state = model.cell(batch.x[start:stop], None if state is None else detach_state(state), t0=start)
            hidden.append(h)
        losses = task.per_example_loss(model.read(torch.cat(hidden)), batch.y)
        losses.mean().backward()
        return losses.detach(), detach_state(state)

    def describe(self) -> dict[str, object]:
        return {"gradient": self.name, "truncation": self.k}
