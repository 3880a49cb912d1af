"""The continuation interface, and ``none``: no smoothing."""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from longdeps.model import SequenceModel
from longdeps.reporting import ReportSection


class Continuation(ReportSection):
    """No smoothing: the model trains on its own objective throughout.

    The trainer calls ``before_step`` before each update and computes the
    update's gradient inside ``perturbation``. A continuation's constructor names what it is
    built with among ``model`` (the model it smooths), ``updates_per_epoch`` (None for generated
    tasks; for epoch schedules) and ``seed`` (the run's), then its options; ``**schedule`` takes
    the ``SigmaSchedule``'s.
    """

    def before_step(self, step: int, model: SequenceModel) -> dict[str, float]:
        """Set the smoothing level for update ``step`` (0-based); returns what to log with evaluations."""
        return {}

    def statistics(self, model: SequenceModel, inputs: torch.Tensor) -> dict[str, float]:
        """What the smoothing does to the model now, measured on ``inputs`` ``(T, B, I)`` (a fixed
        batch), logged with each evaluation next to ``before_step``'s values."""
        return {}

    def perturbation(self, model: SequenceModel) -> ContextManager[None]:
        """A context in which the model's gradient for the current update is computed."""
        return contextlib.nullcontext()
