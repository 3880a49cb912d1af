"""How much error signal reaches each time step: the per-step norms ||dL_i/dh_t||,
and the long-term gradient ratio that sampling-based gradient regularisation reads."""

from __future__ import annotations

import torch

from longdeps.errors import LongdepsError
from longdeps.model import SequenceModel
from longdeps.tasks.base import Batch, Task


def hidden_gradient_norms(model: SequenceModel, batch: Batch, task: Task, unit_output: bool = False) -> torch.Tensor:
    """Norms ``||dL_i/dh_t||`` of each example's loss with respect to its hidden state.

    The derivative is the total one (through every later step), by exact BPTT
    on the step-by-step unroll. For a stack of layers ``h_t`` is the hidden part
    of the whole stacked state, every layer's ``h_t`` side by side
    (``RecurrentCell.hiddens``). With ``unit_output`` the backward pass starts
    from a unit delta on every output instead of the loss gradient, i.e.
    ``L_i`` is the sum of example ``i``'s outputs: a measure that does not
    depend on the targets (Chernodub & Nowicki's probe). Returns ``(T, B)``.
    Parameter ``.grad`` is not touched.
    """
    cell = model.cell
    with torch.enable_grad():
        states: list = []
        hs, _ = cell.unroll(batch.x, states=states)
        outputs = model.read(torch.stack(hs))
        total = outputs.sum() if unit_output else task.per_example_loss(outputs, batch.y).sum()
        hiddens = [h for state in states for h in cell.hiddens(state)]
        # example i's loss depends only on example i's states, so the gradient of
        # the sum holds every example's own dL_i/dh_t in its row
        grads = torch.autograd.grad(total, hiddens, allow_unused=True, materialize_grads=True)
    per_layer = torch.stack(grads).unflatten(0, (len(states), cell.num_layers))  # (T, L, B, H)
    return torch.linalg.vector_norm(per_layer, dim=(1, 3)).detach()


def long_term_ratio(norms: torch.Tensor, early_step: int) -> torch.Tensor:
    """``rho_i = ||delta_i(k0)|| / ||delta_i(T)||`` from per-step norms ``(T, B)``: ``(B,)``.

    ``early_step`` is ``k0``, 0-based (0: the first step). An example whose
    last-step norm is zero gets ``rho = 0`` (no signal reaches its start).
    """
    steps = norms.shape[0]
    if not 0 <= early_step < steps:
        raise LongdepsError(f"sampler.early_step must be in [0, {steps - 1}] for sequences of {steps} steps, got {early_step}")
    last = norms[-1]
    return torch.where(last > 0, norms[early_step] / last.clamp_min(torch.finfo(norms.dtype).tiny), torch.zeros_like(last))
