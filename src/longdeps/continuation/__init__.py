"""Continuation: how the objective is smoothed over training.

A schedule sets the model's smoothing level before each update. ``none``
leaves the objective as it is; ``diffusion`` trains the closed-form
Gaussian-diffused cell and ``weight-noise`` samples the same smoothing by
perturbing the cell's weights (see ``longdeps.continuation.diffusion``).
"""

from __future__ import annotations

from fractions import Fraction

from longdeps.config import ContinuationConfig
from longdeps.continuation.base import Continuation
from longdeps.continuation.diffusion import Diffusion, WeightNoise
from longdeps.continuation.schedule import SigmaSchedule
from longdeps.model import SequenceModel
from longdeps.registry import Registry, defaults_of, options_of

#: the schedule's options, which every continuation takes (``none`` ignores them: a suite's
#: control runs share the schedule of the runs they are compared with)
SCHEDULE = tuple(name for name in options_of(SigmaSchedule) if name != "updates_per_epoch")
CONTINUATIONS = Registry("continuation", "continuation", defaults_of(ContinuationConfig), shared=SCHEDULE,
                         context=("model", "updates_per_epoch", "seed"))
CONTINUATIONS.add("none", Continuation, "no smoothing: the model trains on its own objective")
CONTINUATIONS.add("diffusion", Diffusion, "the closed-form Gaussian-diffused cell, sigma lowered along the schedule "
                                          "(Mobahi 2016)")
CONTINUATIONS.add("weight-noise", WeightNoise, "Gaussian noise of scale sigma on the cell's weights, one draw per "
                                               "update: the sampled counterpart of diffusion")


def make_continuation(name: str, *, model: SequenceModel, updates_per_epoch: Fraction | None = None, seed: int = 0,
                      **options) -> Continuation:
    """The continuation ``name`` for ``model`` with its keyword ``options`` (``continuation.*`` config
    fields: the schedule's, ``propagate``); ``updates_per_epoch`` (None for generated tasks) converts
    epoch schedules, ``seed`` seeds weight noise. An option of another continuation, or a cell it
    cannot smooth, is refused."""
    return CONTINUATIONS.build(name, options, {"cell": model.cell}, model=model, updates_per_epoch=updates_per_epoch,
                               seed=seed)


__all__ = ["CONTINUATIONS", "Continuation", "Diffusion", "SigmaSchedule", "WeightNoise", "make_continuation"]
