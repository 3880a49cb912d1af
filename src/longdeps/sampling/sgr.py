"""Sampling-based gradient regularisation (Chernodub & Nowicki 2016): batches
drawn from the examples whose long-term gradient ratio lies in a safe band.

Only the paper's abstract could be read; this is our reconstruction from it
and from the authors' SRN harness of the same months. For example ``i`` of
the training set,

    rho_i = ||dL_i/dh_k0|| / ||dL_i/dh_T||,   L_i = sum of example i's outputs

(a unit delta on every output, so rho does not depend on the target), from
one backward pass over a pool of examples (``hidden_gradient_norms``). For a
stack of layers (``cell.num_layers``) ``h_t`` is the hidden part of the whole
stacked state at step ``t``, every layer's ``h_t`` side by side (not the top
layer's alone), and under ``rule="batch"`` the long-term part is what crosses
the whole stacked state after step ``k0``. A
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

``rule="batch"`` is the mini-batch reading of the method: the pool's examples get
their long-term and short-term gradients from the true error (the part of
``dL_i/dtheta`` carried back across the state after step ``k0``, and the rest;
``longdeps.gradients.per_example``), and every batch is composed by
rejection: up to ``batch_tries`` batches are drawn uniformly from the pool,
and the first whose ratio

    R(B) = mean_{i in B} ||L_i||  /  ||mean_{i in B} S_i||

has ``log10 R`` in the band is taken (else the one closest to it, counted as
filled). The numerator bounds the batch's long-term gradient norm:
``||mean L_i|| <= mean ||L_i||`` (triangle inequality), a bound formed from
per-example norms alone; the denominator is the batch's short-term gradient
norm exactly, from the pool's Gram matrix ``S S^T``. The refresh records the
candidate batches' ``log10 R`` in place of ``log10 rho``, and how many of its
``candidate_batches`` (``batch_tries``) lie in the band.

Differences from the authors' SRN deltas: the ratio uses derivatives with
respect to the hidden state ``h_t`` (defined for every cell) rather than
the pre-activation deltas of an SRN, which differ by a factor ``f'(a_t)``
at each end. The band, ``k0``, the refresh interval and the pool size are
free parameters: the paper's values could not be read.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from longdeps.gradients import hidden_gradient_norms, long_term_ratio
from longdeps.gradients.per_example import long_short_gradients
from longdeps.model import SequenceModel
from longdeps.registry import check_variant
from longdeps.reporting import Setting
from longdeps.sampling.uniform import UniformSampler
from longdeps.tasks.base import Task

#: the quantiles of log10 rho recorded at every refresh
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
#: each rule and the options only it reads
RULE_OPTIONS = {"example": ("min_eligible",), "batch": ("batch_tries",)}


class SGRSampler(UniformSampler):
    """Draws batches from the pool examples whose ``log10 rho`` lies in the safe band.

    Args (see the module docstring):
        replacement: independent draws from the eligible examples instead of shuffled passes.
        log10_rho_min, log10_rho_max: the band, in log10 rho (log10 R under rule=batch).
        early_step: k0, the 0-based step whose gradient norm rho compares with the last step's.
        refresh_every: updates between two refreshes (a new pool each time).
        pool_size: training examples drawn and estimated at each refresh (None: all).
        min_eligible: rule=example: batches are drawn from this many examples at least (the closest to the band).
        rule: ``example`` or ``batch``.
        batch_tries: rule=batch: candidate batches drawn per update.

    ``eligible`` holds the training-set indices batches are drawn from until
    the next refresh; ``position`` and ``order`` count and order the draws
    from the current eligible set (they restart at every refresh).
    """

    #: it estimates examples one by one from a fixed training set, by the gradient through the readout input
    needs = {"fixed training set": "task", "independent examples": "cell", "carried readout input": "cell"}

    def __init__(self, task: Task, model: SequenceModel, replacement: bool = False, log10_rho_min: float = -3.5,
                 log10_rho_max: float = 0.5, early_step: int = 0, refresh_every: int = 50, pool_size: int | None = 1000,
                 min_eligible: int = 250, rule: str = "example", batch_tries: int = 100):
        super().__init__(task, model, replacement)
        check_variant("sampler", "rule", rule, RULE_OPTIONS, {"min_eligible": min_eligible, "batch_tries": batch_tries},
                      SGRSampler)
        self.log10_rho_min, self.log10_rho_max, self.early_step = log10_rho_min, log10_rho_max, early_step
        self.refresh_every, self.min_eligible, self.rule, self.batch_tries = refresh_every, min_eligible, rule, batch_tries
        self.pool_size = min(pool_size or task.train_size, task.train_size)
        self.updates = 0  #: batches drawn so far
        self.eligible: torch.Tensor | None = None  #: training-set indices batches are drawn from now
        self.refreshes: list[dict[str, Any]] = []  #: statistics of the refreshes not yet reported
        #: rule=batch: per pool example ||L_i|| (P,) and the Gram matrix S S^T (P, P) of the short-term parts
        self.long_norms: torch.Tensor | None = None
        self.gram: torch.Tensor | None = None
        self.filled_batches = 0  #: rule=batch: batches taken outside the band since the last report

    def choose(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        batch_rule = self.rule == "batch"
        if self.updates % self.refresh_every == 0:
            (self.refresh_batches if batch_rule else self.refresh)(batch_size, generator)
        self.updates += 1
        if batch_rule:
            candidates, log_ratio = self.candidates(batch_size, generator)
            distance = self.band_distance(log_ratio)
            filled = bool((distance > 0).all())
            self.filled_batches += filled
            # the first candidate in the band (argmin takes the first of equal values), else the closest
            return self.eligible[candidates[int(distance.argmin())]]
        return self.eligible[self.draw(len(self.eligible), batch_size, generator)]

    def band_distance(self, log_values: torch.Tensor) -> torch.Tensor:
        """How far each ``log10`` value lies outside the band (0 inside)."""
        low, high = self.log10_rho_min, self.log10_rho_max
        return (low - log_values).clamp_min(0) + (log_values - high).clamp_min(0)

    def candidates(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """rule=batch: ``batch_tries`` batches of pool positions drawn uniformly ``(N, b)`` and their
        ``log10 R`` ``(N,)``."""
        drawn = torch.randint(len(self.eligible), (self.batch_tries, batch_size), generator=generator)
        bound = self.long_norms[drawn].mean(1)
        short = self.gram[drawn[:, :, None], drawn[:, None, :]].sum((1, 2)).clamp_min(0).sqrt() / batch_size
        return drawn, (bound / short).log10()

    def refresh_batches(self, batch_size: int, generator: torch.Generator) -> None:
        """rule=batch: draw a new pool, form its examples' long- and short-term gradients, and
        record the ``log10 R`` of ``batch_tries`` candidate batches."""
        self.eligible = torch.randperm(self.task.train_size, generator=generator)[:self.pool_size]
        with self.evaluating() as device:
            long, short = long_short_gradients(self.model, self.task.train_examples(self.eligible).to(device), self.task,
                                               self.early_step)
        self.long_norms, self.gram = long.norm(dim=1).cpu(), (short @ short.T).cpu()
        _, log_ratio = self.candidates(batch_size, generator)
        self.record_refresh(int((self.band_distance(log_ratio) == 0).sum()), 0, log_ratio)

    def estimate(self, index: torch.Tensor) -> torch.Tensor:
        """``log10 rho_i`` of the training examples at ``index`` ``(P,)``, in one backward pass:
        ``(P,)``."""
        with self.evaluating() as device:
            norms = hidden_gradient_norms(self.model, self.task.train_examples(index).to(device), self.task, unit_output=True)
        return long_term_ratio(norms, self.early_step).log10().cpu()

    @contextmanager
    def evaluating(self) -> Iterator[torch.device]:
        """The model in eval mode (batch norm reads its population statistics) for the block, which
        gets the model's device; its mode is restored afterwards."""
        was_training = self.model.training
        self.model.eval()
        try:
            yield next(self.model.parameters()).device
        finally:
            self.model.train(was_training)

    def refresh(self, batch_size: int, generator: torch.Generator) -> None:
        """Draw a new pool, estimate it and set ``eligible``; record what happened."""
        pool = torch.randperm(self.task.train_size, generator=generator)[:self.pool_size]
        log_rho = self.estimate(pool)
        distance = self.band_distance(log_rho)
        inside = distance == 0
        need = min(max(self.min_eligible, batch_size), self.pool_size)
        in_band = int(inside.sum())
        if in_band >= need:
            self.eligible, filled = pool[inside], 0
        else:
            self.eligible, filled = pool[distance.argsort(stable=True)[:need]], need - in_band
        self.position, self.order = 0, None
        self.record_refresh(in_band, filled, log_rho)

    def record_refresh(self, in_band: int, filled: int, log_values: torch.Tensor) -> None:
        """Keep one refresh's statistics: ``pool``, the training examples drawn and estimated;
        ``in_band``, how many of the values tested (``log_values``: the pool's examples, or under
        rule=batch its ``candidate_batches``) lie in the band, and ``eligible_fraction`` of them;
        ``filled``, the examples added from outside the band; the quantiles of ``log_values``."""
        quantiles = torch.quantile(log_values.double(), torch.tensor(QUANTILES, dtype=torch.float64), interpolation="nearest")
        tested = {"candidate_batches": len(log_values)} if self.rule == "batch" else {}
        self.refreshes.append({
            "update": self.updates, "rule": self.rule, "pool": self.pool_size, **tested, "in_band": in_band,
            "eligible_fraction": in_band / len(log_values), "filled": filled,
            "band": [self.log10_rho_min, self.log10_rho_max],
            "log10_rho_quantiles": {f"q{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, quantiles)},
        })

    def statistics(self) -> dict[str, Any]:
        """``{"sampler_refreshes": [...]}``: one record per refresh since the last call; under
        rule=batch also ``sampler_filled_batches``, the batches taken outside the band."""
        refreshes, self.refreshes = self.refreshes, []
        if self.rule != "batch":
            return {"sampler_refreshes": refreshes}
        filled, self.filled_batches = self.filled_batches, 0
        return {"sampler_refreshes": refreshes, "sampler_filled_batches": filled}

    @classmethod
    def report_section(cls, settings: list[Setting], heading: str, out: Path, slug: str) -> list[str]:
        """"Sampler refreshes": what the refreshes found, per setting, and their plot
        (``longdeps.sampling.sgr_report``)."""
        from longdeps.sampling.sgr_report import refresh_section  # matplotlib, for reports only

        return refresh_section(settings, heading, out, slug)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "updates": self.updates, "eligible": self.eligible, "refreshes": self.refreshes,
                "long_norms": self.long_norms, "gram": self.gram, "filled_batches": self.filled_batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.updates, self.eligible, self.refreshes = state["updates"], state["eligible"], state["refreshes"]
        self.long_norms, self.gram, self.filled_batches = state["long_norms"], state["gram"], state["filled_batches"]
