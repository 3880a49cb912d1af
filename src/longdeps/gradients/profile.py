"""How much error signal reaches each time step: the per-step norms ||dL_i/dh_t||."""

from __future__ import annotations

import torch

from longdeps.model import SequenceModel
from longdeps.tasks import Batch, Task


def hidden_gradient_norms(model: SequenceModel, batch: Batch, task: Task) -> torch.Tensor:
    """Norms ``||dL_i/dh_t||`` of each example's loss with respect to its hidden state.

    The derivative is the total one (through every later step), by exact BPTT
    on the step-by-step unroll. Returns ``(T, B)``. Parameter ``.grad`` is not
    touched.
    """
    with torch.enable_grad():
        hs, _ = model.cell.unroll(batch.x)
        losses = task.per_example_loss(model.read(torch.stack(hs)), batch.y)
        # example i's loss depends only on example i's states, so the gradient of
        # the sum holds every example's own dL_i/dh_t in its row
        grads = torch.autograd.grad(losses.sum(), hs, allow_unused=True, materialize_grads=True)
    return torch.stack(grads).norm(dim=-1).detach()
