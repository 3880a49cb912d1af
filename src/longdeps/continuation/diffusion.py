"""Gaussian continuation over the weights (Mobahi 2016): closed-form diffusion and its
exact counterpart, weight-noise injection.

The smoothed objective at level sigma is ``g(theta) = E_eps[f(theta + sigma eps)]``
over every weight of the recurrent cell. ``diffusion`` trains on its closed-form
approximation: each nonlinearity of the cell is replaced by its diffused version
at the width ``sigma * ||[h_{t-1}; x_t; 1]||`` (``RecurrentCell.diffusion_width``),
which is exact for one step of an SRN alone and a mean-field approximation
through time (the same noisy weights act at every step; ``h_{t-1}`` is taken as
fixed). With ``propagate`` the cell carries the variance of ``h_{t-1}`` forward
too, so the width grows along the sequence and long paths are flattened more
than short ones (moment propagation; ``SRN``). In a stack of layers each layer diffuses its
own nonlinearities at the width of its own input (the layer below's output); moment
propagation is refused there, as it would have to carry a layer's variance into the next. ``weight-noise`` samples ``g`` instead: one fresh draw of
``eps`` per update, its gradient applied to the unperturbed weights, which is
an unbiased estimate of ``grad g``. Both follow a ``SigmaSchedule`` and log
``sigma`` with every evaluation.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from typing import Iterator

import torch

from longdeps.continuation.base import Continuation
from longdeps.continuation.schedule import SigmaSchedule
from longdeps.model import SequenceModel
from longdeps.seeding import seeded_generator


class Diffusion(Continuation):
    """Sets the cell's smoothing to the schedule's sigma before each update.

    A cell without a diffused form is refused when the continuation is built (``needs``).
    """

    needs = {"diffused form": "cell"}

    def __init__(self, model: SequenceModel, updates_per_epoch: Fraction | None = None, propagate: bool = False,
                 **schedule):
        """``propagate``: the cell carries each unit's variance through time (moment propagation)."""
        self.schedule = SigmaSchedule(**schedule, updates_per_epoch=updates_per_epoch)
        self.propagate = propagate
        model.cell.set_smoothing(self.schedule(0), self.propagate)

    def before_step(self, step: int, model: SequenceModel) -> dict[str, float]:
        sigma = self.schedule(step)
        model.cell.set_smoothing(sigma, self.propagate)
        return {"sigma": sigma}

    @torch.no_grad()
    def statistics(self, model: SequenceModel, inputs: torch.Tensor) -> dict[str, float]:
        """The diffusion widths ``s`` the smoothed cell applies over ``inputs``, every step and
        example: ``width_mean``, ``width_min``, ``width_max`` (none while sigma is 0)."""
        if model.cell.smoothing == 0:
            return {}
        was_training = model.training
        model.train()
        with model.cell.recording_widths() as widths:
            model.cell(inputs)
        model.train(was_training)
        s = torch.cat([w.flatten() for w in widths])
        return {"width_mean": float(s.mean()), "width_min": float(s.min()), "width_max": float(s.max())}


class WeightNoise(Continuation):
    """Adds ``sigma * eps`` to the cell's ``perturbed_parameters`` while the update's
    gradient is computed, and restores them exactly before the optimiser steps.

    ``eps`` for update ``step`` comes from a generator of its own seeded with
    (``seed``, ``step``), so a resumed run draws the same noise.
    """

    def __init__(self, updates_per_epoch: Fraction | None = None, seed: int = 0, **schedule):
        self.schedule = SigmaSchedule(**schedule, updates_per_epoch=updates_per_epoch)
        self.seed = seed
        self.sigma, self.step = 0.0, 0

    def before_step(self, step: int, model: SequenceModel) -> dict[str, float]:
        self.sigma, self.step = self.schedule(step), step
        return {"sigma": self.sigma}

    @contextlib.contextmanager
    def perturbation(self, model: SequenceModel) -> Iterator[None]:
        if self.sigma == 0:
            yield
            return
        generator = seeded_generator("weight-noise", self.seed, self.step)
        parameters = model.cell.perturbed_parameters()
        saved = [p.detach().clone() for p in parameters]
        with torch.no_grad():
            for p in parameters:
                noise = torch.randn(p.shape, generator=generator, dtype=p.dtype)
                p.add_(noise.to(p.device), alpha=self.sigma)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, original in zip(parameters, saved):
                    p.copy_(original)
