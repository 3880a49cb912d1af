"""Sampling-based gradient regularisation (Chernodub & Nowicki 2016): batches
drawn from the examples whose long-term gradient ratio lies in a safe band.

Only the paper's abstract could be read; this is the reconstruction of
shared/design/methods.md (Part B 1.4). For example ``i`` of the training set,

    rho_i = ||dL_i/dh_k0|| / ||dL_i/dh_T||,   L_i = sum of example i's outputs

(a unit delta on every output, so rho does not depend on the target), from
one backward pass over a pool of examples (``hidden_gradient_norms``). A
small rho means that little error signal from the output reaches step
``k0`` (vanishing), a large one that it grows on the way (exploding).
Every ``refresh_every`` updates a fresh pool of ``pool_size`` training
examples is drawn and estimated; the examples of the pool with
``log10 rho`` in ``[log10_rho_min, log10_rho_max]`` are *eligible*, and the
batches until the next refresh are drawn from them (shuffled passes, or
independent draws with ``replacement``). An example left out now is
estimated again whenever a later pool holds it, so it re-enters once its
rho moves into the band. When fewer than ``min_eligible`` (at least the
batch size; all of the pool at most) pool examples are in the band, the batches are drawn from
that many examples closest to the band (distance in log10 rho, 0 inside),
and the refresh records how many were filled in this way.

Differences from the authors' SRN deltas: the ratio uses derivatives with
respect to the hidden state ``h_t`` (defined for every cell) rather than
the pre-activation deltas of an SRN, which differ by a factor ``f'(a_t)``
at each end. The band, ``k0``, the refresh interval and the pool size are
free parameters: the paper's values could not be read.
"""

from __future__ import annotations

from typing import Any

import torch

from longdeps.config import SamplerConfig
from longdeps.errors import LongdepsError
from longdeps.gradients import hidden_gradient_norms, long_term_ratio
from longdeps.model import SequenceModel
from longdeps.sampling.uniform import UniformSampler
from longdeps.tasks import Task

#: the quantiles of log10 rho recorded at every refresh
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


class SGRSampler(UniformSampler):
    """Draws batches from the pool examples whose ``log10 rho`` lies in the safe band.

    ``eligible`` holds the training-set indices batches are drawn from until
    the next refresh; ``position`` and ``order`` count and order the draws
    from the current eligible set (they restart at every refresh).
    """

    name = "sgr"

    def __init__(self, task: Task, model: SequenceModel | None, config: SamplerConfig):
        super().__init__(task, model, config)
        if task.train_size is None or task.ordered:
            raise LongdepsError(f"sampler sgr needs a fixed, unordered training set; set task.train_size for task {task.name!r}")
        if model is None:
            raise LongdepsError("sampler sgr reads the model's gradients; build it with the model it trains")
        self.pool_size = min(config.pool_size or task.train_size, task.train_size)
        self.updates = 0  #: batches drawn so far
        self.eligible: torch.Tensor | None = None  #: training-set indices batches are drawn from now
        self.refreshes: list[dict[str, Any]] = []  #: statistics of the refreshes not yet reported

    def choose(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        if self.updates % self.config.refresh_every == 0:
            self.refresh(batch_size, generator)
        self.updates += 1
        return self.eligible[self.draw(len(self.eligible), batch_size, generator)]

    def estimate(self, index: torch.Tensor) -> torch.Tensor:
        """``log10 rho_i`` of the training examples at ``index`` ``(P,)``, in one backward pass:
        ``(P,)``. The model is evaluated in eval mode (batch norm reads its population statistics)."""
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        norms = hidden_gradient_norms(self.model, self.task.train_examples(index).to(device), self.task, unit_output=True)
        self.model.train(was_training)
        return long_term_ratio(norms, self.config.early_step).log10().cpu()

    def refresh(self, batch_size: int, generator: torch.Generator) -> None:
        """Draw a new pool, estimate it and set ``eligible``; record what happened."""
        low, high = self.config.log10_rho_min, self.config.log10_rho_max
        pool = torch.randperm(self.task.train_size, generator=generator)[:self.pool_size]
        log_rho = self.estimate(pool)
        inside = (log_rho >= low) & (log_rho <= high)
        need = min(max(self.config.min_eligible, batch_size), self.pool_size)
        in_band = int(inside.sum())
        if in_band >= need:
            self.eligible, filled = pool[inside], 0
        else:
            distance = (low - log_rho).clamp_min(0) + (log_rho - high).clamp_min(0)
            self.eligible, filled = pool[distance.argsort(stable=True)[:need]], need - in_band
        self.position, self.order = 0, None
        quantiles = torch.quantile(log_rho.double(), torch.tensor(QUANTILES, dtype=torch.float64), interpolation="nearest")
        self.refreshes.append({
            "update": self.updates, "pool": self.pool_size, "in_band": in_band,
            "eligible_fraction": in_band / self.pool_size, "filled": filled,
            "band": [low, high], "log10_rho_quantiles": {f"q{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, quantiles)},
        })

    def statistics(self) -> dict[str, Any]:
        """``{"sampler_refreshes": [...]}``: one record per refresh since the last call."""
        refreshes, self.refreshes = self.refreshes, []
        return {"sampler_refreshes": refreshes}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "updates": self.updates, "eligible": self.eligible, "refreshes": self.refreshes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.updates, self.eligible, self.refreshes = state["updates"], state["eligible"], state["refreshes"]
