"""Continuation: how the objective is smoothed over training.

A schedule sets the model's smoothing level before each update. ``none``
leaves the objective as it is; ``diffusion`` trains the closed-form
Gaussian-diffused cell and ``weight-noise`` samples the same smoothing by
perturbing the cell's weights (see ``longdeps.continuation.diffusion``).
"""

from __future__ import annotations

import dataclasses

from fractions import Fraction

from longdeps.config import ContinuationConfig
from longdeps.continuation.base import Continuation
from longdeps.continuation.diffusion import Diffusion, WeightNoise
from longdeps.continuation.schedule import SigmaSchedule
from longdeps.model import SequenceModel
from longdeps.registry import Registry, defaults_of

#: the schedule's fields, which every continuation takes (``none`` ignores them: a suite's
#: control runs share the schedule of the runs they are compared with)
SCHEDULE = ("sigma0", "shape", "ratio", "stages", "stage_length", "unit")
CONTINUATIONS = Registry("continuation", "continuation", defaults_of(ContinuationConfig), shared=SCHEDULE)
CONTINUATIONS.add("none", Continuation, "no smoothing: the model trains on its own objective")
CONTINUATIONS.add("diffusion", Diffusion, "the closed-form Gaussian-diffused cell, sigma lowered along the schedule "
                                          "(Mobahi 2016)")
CONTINUATIONS.add("weight-noise", WeightNoise, "Gaussian noise of scale sigma on the cell's weights, one draw per "
                                               "update: the sampled counterpart of diffusion")


def make_continuation(config: ContinuationConfig, model: SequenceModel, updates_per_epoch: Fraction | None = None,
                      seed: int = 0) -> Continuation:
    """The continuation ``config.name`` for ``model``; ``updates_per_epoch`` (None for
    generated tasks) converts epoch schedules, ``seed`` seeds weight noise. A field of
    ``config`` set for another continuation, or a cell it cannot smooth, is refused."""
    options = {key: value for key, value in dataclasses.asdict(config).items() if key != "name"}
    cls = CONTINUATIONS.checked(config.name, options, {"cell": model.cell})
    return cls(config, model, updates_per_epoch, seed)


__all__ = ["CONTINUATIONS", "Continuation", "Diffusion", "SigmaSchedule", "WeightNoise", "make_continuation"]
