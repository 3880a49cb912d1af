"""Batch normalisation with statistics kept per time step (Cooijmans et al. 2016).

``TimeBatchNorm`` normalises each feature over the batch, separately at every
time step ``t``; the affine parameters (gamma, beta) are shared over time.

- Training: the current batch's mean and biased variance at step ``t``. An
  exponential moving average per step (``running_mean``/``running_var``,
  updated in place by torch's batch-norm kernel, whose running variance is the
  unbiased one) is kept for monitoring.
- Evaluation: the population statistics of step ``min(t, T_max - 1)``, ``T_max``
  being the longest training sequence seen. ``recompute_population_statistics``
  sets them to the plain average of the batch statistics over one pass of
  training data, as the paper's reported numbers were obtained.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from longdeps.errors import LongdepsError


class TimeBatchNorm(nn.Module):
    """Per-time-step batch norm of ``features`` features.

    ``forward(x, t)``: ``x`` ``(B, F)`` at step ``t`` (an int), or ``(T, B, F)``
    at steps ``t`` (a ``range`` of length T). Buffers ``running_mean`` and
    ``running_var`` ``(T_max, F)`` grow to the longest training sequence.
    """

    def __init__(self, features: int, gamma: float = 0.1, bias: bool = True, eps: float = 1e-5,
                 momentum: float = 0.01):
        super().__init__()
        self.features, self.eps, self.momentum = features, eps, momentum
        self.weight = nn.Parameter(torch.full((features,), float(gamma)))
        self.bias = nn.Parameter(torch.zeros(features)) if bias else None
        self.register_buffer("running_mean", torch.zeros(0, features))
        self.register_buffer("running_var", torch.ones(0, features))
        self._sums: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # mean, var, count per step

    def _grow(self, steps: int) -> None:
        """Make room for statistics of steps ``< steps`` (new rows: mean 0, variance 1).

        The buffers are the first rows of a store that doubles when full, so that the
        first sequence, which grows them one step at a time, copies O(T) rows, not O(T^2).
        """
        have = self.running_mean.shape[0]
        if steps <= have:
            return
        capacity = self.running_mean.untyped_storage().nbytes() // (self.running_mean.element_size() * self.features)
        if steps <= capacity:  # rows [have, steps) of the store still hold 0 and 1
            self.running_mean, self.running_var = (b.as_strided((steps, self.features), (self.features, 1))
                                                   for b in (self.running_mean, self.running_var))
            return
        mean = self.running_mean.new_zeros(max(steps, 2 * capacity), self.features)
        var = self.running_var.new_ones(mean.shape)
        mean[:have], var[:have] = self.running_mean, self.running_var
        self.running_mean, self.running_var = mean[:steps], var[:steps]

    def forward(self, x: torch.Tensor, t: int | range) -> torch.Tensor:
        single = isinstance(t, int)
        steps = range(t, t + 1) if single else t
        # (B, F) as it is, or (T, B, F) as (B, T * F): one feature column per step and feature
        flat = x if single else x.transpose(0, 1).reshape(x.shape[1], -1)
        weight = self.weight if single else self.weight.repeat(len(steps))
        bias = self.bias if single or self.bias is None else self.bias.repeat(len(steps))
        if self.training:
            if flat.shape[0] < 2:
                raise LongdepsError(f"batch norm with batch statistics needs at least 2 sequences a batch, "
                                    f"got {flat.shape[0]}")
            self._grow(steps.stop)
            monitor = self.training and self._sums is None  # update the moving averages, in place
            mean = self.running_mean[steps.start:steps.stop].view(-1) if monitor else None
            var = self.running_var[steps.start:steps.stop].view(-1) if monitor else None
            out, batch_mean, batch_invstd = torch.native_batch_norm(flat, weight, bias, mean, var, True,
                                                                    self.momentum, self.eps)
            if self._sums is not None:
                self._collect(batch_mean, batch_invstd, steps)
        else:
            last = self.running_mean.shape[0] - 1
            if last < 0:
                raise LongdepsError("batch norm has no population statistics yet: train the model, or "
                                    "recompute them with recompute_population_statistics")
            if single:
                mean, var = self.running_mean[min(t, last)], self.running_var[min(t, last)]
            else:
                index = torch.arange(steps.start, steps.stop).clamp(max=last)
                mean, var = self.running_mean[index].view(-1), self.running_var[index].view(-1)
            out = F.batch_norm(flat, mean, var, weight, bias, False, 0.0, self.eps)
        return out if single else out.view(x.shape[1], len(steps), -1).transpose(0, 1)

    # -- population statistics ------------------------------------------------
    def _collect(self, batch_mean: torch.Tensor, batch_invstd: torch.Tensor, steps: range) -> None:
        """Add one batch's statistics at ``steps`` (``(T * F,)`` each, as the kernel returns them)
        to the sums; the biased variance is recovered from ``1 / sqrt(var + eps)`` (to within
        float rounding of ``eps``; clamped at 0)."""
        mean, var, count = self._sums
        if steps.stop > count.shape[0]:
            extra = steps.stop - count.shape[0]
            mean, var = (torch.cat([s, s.new_zeros(extra, self.features)]) for s in (mean, var))
            count = torch.cat([count, count.new_zeros(extra)])
            self._sums = (mean, var, count)
        rows = slice(steps.start, steps.stop)
        mean[rows] += batch_mean.detach().view(len(steps), self.features)
        var[rows] += batch_invstd.detach().pow(-2).sub_(self.eps).clamp_(min=0).view(len(steps), self.features)
        count[rows] += 1

    def start_collecting(self) -> None:
        """Start summing batch statistics (room for the steps seen so far; more is added as needed)."""
        mean = torch.zeros_like(self.running_mean)
        self._sums = (mean, mean.clone(), mean.new_zeros(mean.shape[0]))

    def finish_collecting(self) -> None:
        """Population statistics := the average over the collected batches, per step."""
        mean, var, count = self._sums
        self._sums = None
        seen = count > 0
        self._grow(mean.shape[0])
        self.running_mean[: mean.shape[0]][seen] = mean[seen] / count[seen, None]
        self.running_var[: var.shape[0]][seen] = var[seen] / count[seen, None]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("running_mean", "running_var"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.features}, eps={self.eps}, momentum={self.momentum}, steps={self.running_mean.shape[0]}"


@torch.no_grad()
def recompute_population_statistics(model: nn.Module, inputs: Iterable[torch.Tensor]) -> int:
    """Set every ``TimeBatchNorm`` of ``model`` to the average batch statistics of one
    pass over ``inputs`` (time-major input batches ``(T, B, I)``); returns the number
    of batches. Does nothing (returns 0) for a model without one."""
    norms = [m for m in model.modules() if isinstance(m, TimeBatchNorm)]
    if not norms:
        return 0
    was_training = model.training
    model.train()
    for norm in norms:
        norm.start_collecting()
    batches = 0
    try:
        for x in inputs:
            model(x)
            batches += 1
    finally:
        for norm in norms:
            norm.finish_collecting()
        model.train(was_training)
    return batches
