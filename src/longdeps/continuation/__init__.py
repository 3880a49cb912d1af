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
from longdeps.errors import LongdepsError
from longdeps.model import SequenceModel

CONTINUATIONS: dict[str, type[Continuation]] = {"none": Continuation, "diffusion": Diffusion,
                                                "weight-noise": WeightNoise}


def make_continuation(config: ContinuationConfig, model: SequenceModel, updates_per_epoch: Fraction | None = None,
                      seed: int = 0) -> Continuation:
    """The continuation ``config.name`` for ``model``; ``updates_per_epoch`` (None for
    generated tasks) converts epoch schedules, ``seed`` seeds weight noise."""
    if config.name not in CONTINUATIONS:
        raise LongdepsError(f"unknown continuation {config.name!r}; choose from {', '.join(sorted(CONTINUATIONS))}")
    if config.propagate and config.name != "diffusion":
        raise LongdepsError(f"continuation.propagate=true applies to continuation.name=diffusion only, "
                            f"not {config.name!r}")
    return CONTINUATIONS[config.name](config, model, updates_per_epoch, seed)


__all__ = ["CONTINUATIONS", "Continuation", "Diffusion", "SigmaSchedule", "WeightNoise", "make_continuation"]
