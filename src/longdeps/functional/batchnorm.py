"""Batch normalisation with statistics kept per time step (Cooijmans et al. 2016).

``TimeBatchNorm`` normalises each feature over the batch, separately at every
time step ``t``; the affine parameters (gamma, beta) are shared over time.

- Training: the current batch's mean and biased variance at step ``t``. An
  exponential moving average per step (``running_mean``/``running_var``,
  updated by ``torch.nn.functional.batch_norm``, whose running variance is the
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
        self.use_batch_statistics_in_eval = False
        self._sums: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # mean, var, count per step

    def _grow(self, steps: int) -> None:
        """Make room for statistics of steps ``< steps`` (new rows: mean 0, variance 1)."""
        have = self.running_mean.shape[0]
        if steps > have:
            extra = steps - have
            self.running_mean = torch.cat([self.running_mean, self.running_mean.new_zeros(extra, self.features)])
            self.running_var = torch.cat([self.running_var, self.running_var.new_ones(extra, self.features)])

    def forward(self, x: torch.Tensor, t: int | range) -> torch.Tensor:
        single = isinstance(t, int)
        steps = range(t, t + 1) if single else t
        # (B, F) as it is, or (T, B, F) as (B, T * F): one feature column per step and feature
        flat = x if single else x.transpose(0, 1).reshape(x.shape[1], -1)
        weight = self.weight if single else self.weight.repeat(len(steps))
        bias = self.bias if single or self.bias is None else self.bias.repeat(len(steps))
        if self.training or self.use_batch_statistics_in_eval:
            self._grow(steps.stop)
            if self._sums is not None:
                self._collect(flat.detach(), steps)
            monitor = self.training and self._sums is None  # update the moving averages, in place
            mean = self.running_mean[steps.start:steps.stop].view(-1) if monitor else None
            var = self.running_var[steps.start:steps.stop].view(-1) if monitor else None
            out = F.batch_norm(flat, mean, var, weight, bias, True, self.momentum, self.eps)
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
    def _collect(self, flat: torch.Tensor, steps: range) -> None:
        rows = slice(steps.start, steps.stop)
        values = flat.reshape(flat.shape[0], len(steps), self.features)
        mean, var, count = self._sums
        if rows.stop > mean.shape[0]:
            extra = rows.stop - mean.shape[0]
            mean, var = (torch.cat([s, s.new_zeros(extra, self.features)]) for s in (mean, var))
            count = torch.cat([count, count.new_zeros(extra)])
        mean[rows] += values.mean(dim=0)
        var[rows] += values.var(dim=0, unbiased=False)
        count[rows] += 1
        self._sums = (mean, var, count)

    def start_collecting(self) -> None:
        empty = self.running_mean.new_zeros(0, self.features)
        self._sums = (empty, empty.clone(), self.running_mean.new_zeros(0))

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
