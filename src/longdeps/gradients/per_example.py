"""Per-example parameter gradients split at a step: the long-term part, carried back across the
state after step ``k0``, and the short-term rest.

For example ``i`` with loss ``L_i`` (its own outputs and targets), the cell's parameter
gradient ``G_i`` splits into

    S_i = dL_i/dtheta with the state after step k0 held fixed  (nothing crosses the boundary),
    L_i = G_i - S_i                                             (what the steps up to k0 receive
                                                                 from errors after k0).

For a stack of layers the state held fixed is the whole stacked state (every layer's). For a
loss on the last step alone, ``S_i`` is truncated BPTT through the steps after ``k0`` and
``L_i`` the contribution of the steps up to ``k0``. Both are formed for many examples at once by
``torch.func.vmap`` over ``torch.func.grad`` of a one-example loss (the cell's step loop, with
its parameters swapped in by ``torch.func.functional_call``), a chunk of examples at a time.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from longdeps.cells import detach_state
from longdeps.model import SequenceModel
from longdeps.tasks.base import Batch, Task


class _OneExampleLoss(nn.Module):
    """``L_i`` of one time-major example ``x`` ``(T, I)``, optionally with the state cut after step ``cut``."""

    def __init__(self, model: SequenceModel, task: Task, y_batch_dim: int):
        super().__init__()
        self.model, self.task, self.y_batch_dim = model, task, y_batch_dim

    def forward(self, x: torch.Tensor, y: torch.Tensor, cut: int | None) -> torch.Tensor:
        cell, x = self.model.cell, x.unsqueeze(1)
        if cut is None:
            hidden, _ = cell.unroll(x)
        else:
            head, state = cell.unroll(x[:cut + 1])
            tail, _ = cell.unroll(x[cut + 1:], detach_state(state), t0=cut + 1)
            hidden = head + tail
        return self.task.per_example_loss(self.model.read(torch.stack(hidden)), y.unsqueeze(self.y_batch_dim)).sum()


def long_short_gradients(model: SequenceModel, batch: Batch, task: Task, boundary: int,
                         chunk: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L, S)``, each ``(B, n)``: every example's long-term and short-term gradient of the cell
    parameters (flattened in ``model.cell.parameters()`` order) for a split after step
    ``boundary`` (0-based). Runs the cell in its current mode; ``.grad`` is not touched."""
    loss = _OneExampleLoss(model, task, batch.y_batch_dim)
    names = [f"model.cell.{name}" for name, p in model.cell.named_parameters() if p.requires_grad]
    params = {name: p.detach() for name, p in loss.named_parameters() if name in names}

    def example_grads(cut: int | None, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        def one(p, xi, yi):
            return functional_call(loss, p, (xi, yi, cut), strict=False)
        grads = vmap(grad(one), in_dims=(None, 1, batch.y_batch_dim))(params, x, y)
        return torch.cat([grads[name].flatten(1) for name in names], 1)

    longs, shorts = [], []
    for start in range(0, batch.size, chunk):
        part = batch.select(torch.arange(start, min(start + chunk, batch.size)))
        full, short = example_grads(None, part.x, part.y), example_grads(boundary, part.x, part.y)
        longs.append((full - short).detach())  # detached from the readout's parameters, which the loss reads
        shorts.append(short.detach())
    return torch.cat(longs), torch.cat(shorts)
