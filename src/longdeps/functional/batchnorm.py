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

    def forward(self, x: torch.Tensor, t: int | range | tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``x`` ``(B, F)`` at step ``t`` (an int, or that step's row of each tensor of ``rows``, as a
        compiled block passes it), or ``(T, B, F)`` at steps ``t`` (a range)."""
        if isinstance(t, tuple):
            return self.normalise(x, t, self.weight, self.bias)
        if isinstance(t, int):
            return self.normalise(x, [r[0] for r in self.rows(range(t, t + 1))], self.weight, self.bias)
        # (T, B, F) as (B, T * F): one feature column per step and feature
        flat = x.transpose(0, 1).reshape(x.shape[1], -1)
        bias = None if self.bias is None else self.bias.repeat(len(t))
        out = self.normalise(flat, [r.reshape(-1) for r in self.rows(t)], self.weight.repeat(len(t)), bias)
        return out.view(x.shape[1], len(t), -1).transpose(0, 1)

    def rows(self, steps: range) -> tuple[torch.Tensor, ...]:
        """The statistics that ``normalise`` reads at ``steps``, one row per step (``(len(steps), F)``):

        - evaluation: the population ``(mean, var)`` (those of the last step seen, past it);
        - training: the moving averages ``(mean, var)``, views that it updates in place;
        - while collecting: views of the sums of the batch means and variances, and of their
          count ``(len(steps),)``, ``(mean, var, count)``, that it adds to.

        A compiled block of steps takes its rows out before it runs, so that it never sees the step
        index (an int that changes from block to block would make torch.compile compile every block).
        """
        if not self.training:
            last = self.running_mean.shape[0] - 1
            if last < 0:
                raise LongdepsError("batch norm has no population statistics yet: train the model, or "
                                    "recompute them with recompute_population_statistics")
            index = torch.arange(steps.start, steps.stop, device=self.running_mean.device).clamp(max=last)
            return self.running_mean[index], self.running_var[index]
        if self._sums is None:
            self._grow(steps.stop)
            return self.running_mean[steps.start:steps.stop], self.running_var[steps.start:steps.stop]
        mean, var, count = self._sums
        if steps.stop > count.shape[0]:
            extra = steps.stop - count.shape[0]
            mean, var = (torch.cat([s, s.new_zeros(extra, self.features)]) for s in (mean, var))
            count = torch.cat([count, count.new_zeros(extra)])
            self._sums = (mean, var, count)
        return mean[steps.start:steps.stop], var[steps.start:steps.stop], count[steps.start:steps.stop]

    def normalise(self, x: torch.Tensor, rows: tuple[torch.Tensor, ...] | list[torch.Tensor], weight: torch.Tensor,
                  bias: torch.Tensor | None) -> torch.Tensor:
        """``x`` ``(B, F')`` normalised feature by feature with the statistics ``rows`` of ``rows``, each
        flattened to ``(F',)`` (a count to ``()`` or ``(T,)``), and the affine ``weight``, ``bias`` ``(F',)``."""
        if not self.training:
            return F.batch_norm(x, *rows, weight, bias, False, 0.0, self.eps)
        if x.shape[0] < 2:
            raise LongdepsError(f"batch norm with batch statistics needs at least 2 sequences a batch, "
                                f"got {x.shape[0]}")
        if len(rows) == 2:  # the moving averages, updated in place by the kernel
            return torch.native_batch_norm(x, weight, bias, *rows, True, self.momentum, self.eps)[0]
        # collecting: the biased variance is recovered from 1 / sqrt(var + eps) (to within float
        # rounding of eps; clamped at 0)
        out, batch_mean, batch_invstd = torch.native_batch_norm(x, weight, bias, None, None, True, 0.0, self.eps)
        mean, var, count = rows
        mean += batch_mean.detach()
        var += batch_invstd.detach().pow(-2).sub_(self.eps).clamp_(min=0)
        count += 1
        return out

    # -- population statistics ------------------------------------------------
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
