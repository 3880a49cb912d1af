"""The smoothing level sigma over training: stages from sigma_0 down, then a final stage at 0."""

from __future__ import annotations

import math
from fractions import Fraction

from longdeps.errors import LongdepsError

SHAPES = ("geometric", "linear", "cosine")
UNITS = ("updates", "epochs")


class SigmaSchedule:
    """Piecewise-constant sigma: stage ``k = floor(position / stage_length)`` holds

    - geometric: ``sigma_0 * ratio^k``;
    - linear: ``sigma_0 * (1 - k / stages)``;
    - cosine: ``sigma_0 * (1 + cos(pi k / stages)) / 2``;

    for ``k < stages``, and 0 from stage ``stages`` on. ``position`` is the
    update's index, or with ``unit=epochs`` the epochs completed before it
    (``step * batch_size / train_size``, so an update belongs to the stage
    its first example falls in). ``stage_length = 1`` with many stages gives
    a smooth decay. Stage boundaries are computed in exact fractions (pass
    ``updates_per_epoch`` as ``Fraction(train_size, batch_size)``).
    """

    def __init__(self, sigma0: float = 0.1, shape: str = "geometric", ratio: float = 0.5, stages: int = 4,
                 stage_length: float = 100.0, unit: str = "updates", updates_per_epoch: Fraction | float | None = None):
        if shape not in SHAPES:
            raise LongdepsError(f"unknown continuation.shape {shape!r}; choose from {', '.join(SHAPES)}")
        if unit not in UNITS:
            raise LongdepsError(f"unknown continuation.unit {unit!r}; choose from {', '.join(UNITS)}")
        if unit == "epochs" and updates_per_epoch is None:
            raise LongdepsError("continuation.unit=epochs needs a finite training set (set task.train_size)")
        self.sigma0, self.shape, self.ratio, self.stages = sigma0, shape, ratio, stages
        #: updates per stage, exact
        self.stage_updates = Fraction(stage_length) * (Fraction(updates_per_epoch) if unit == "epochs" else 1)

    def stage(self, step: int) -> int:
        """The stage of update ``step`` (0-based); ``stages`` and above are the final stage at 0."""
        return math.floor(step / self.stage_updates)

    def __call__(self, step: int) -> float:
        """sigma for update ``step``."""
        k = self.stage(step)
        if k >= self.stages:
            return 0.0
        if self.shape == "geometric":
            return self.sigma0 * self.ratio ** k
        if self.shape == "linear":
            return self.sigma0 * (1 - k / self.stages)
        return self.sigma0 * (1 + math.cos(math.pi * k / self.stages)) / 2

    @property
    def end(self) -> int:
        """The first update of the final stage (sigma = 0 from there on)."""
        return math.ceil(self.stages * self.stage_updates)
