"""The smoothing level sigma over training: stages from sigma_0 down, then a final stage at 0."""

from __future__ import annotations

import math
from fractions import Fraction

from longdeps.config import ContinuationConfig
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

    def __init__(self, config: ContinuationConfig, updates_per_epoch: Fraction | float | None = None):
        c = config
        if c.shape not in SHAPES:
            raise LongdepsError(f"unknown continuation.shape {c.shape!r}; choose from {', '.join(SHAPES)}")
        if c.unit not in UNITS:
            raise LongdepsError(f"unknown continuation.unit {c.unit!r}; choose from {', '.join(UNITS)}")
        if c.unit == "epochs" and updates_per_epoch is None:
            raise LongdepsError("continuation.unit=epochs needs a finite training set (set task.train_size)")
        self.config = config
        #: updates per stage, exact
        self.stage_updates = Fraction(c.stage_length) * (Fraction(updates_per_epoch) if c.unit == "epochs" else 1)

    def stage(self, step: int) -> int:
        """The stage of update ``step`` (0-based); ``stages`` and above are the final stage at 0."""
        return math.floor(step / self.stage_updates)

    def __call__(self, step: int) -> float:
        """sigma for update ``step``."""
        c, k = self.config, self.stage(step)
        if k >= c.stages:
            return 0.0
        if c.shape == "geometric":
            return c.sigma0 * c.ratio ** k
        if c.shape == "linear":
            return c.sigma0 * (1 - k / c.stages)
        return c.sigma0 * (1 + math.cos(math.pi * k / c.stages)) / 2

    @property
    def end(self) -> int:
        """The first update of the final stage (sigma = 0 from there on)."""
        return math.ceil(self.config.stages * self.stage_updates)
