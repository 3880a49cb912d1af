"""Continuation: how the objective is smoothed over training.

A schedule sets the model's smoothing level before each update. ``none``
leaves the objective as it is; Gaussian diffusion plugs in here.
"""

from __future__ import annotations

from longdeps.errors import LongdepsError
from longdeps.model import SequenceModel


class Continuation:
    """No smoothing: the model trains on its own objective throughout."""

    name = "none"

    def before_step(self, step: int, model: SequenceModel) -> dict[str, float]:
        """Set the smoothing level for update ``step``; returns what to log."""
        return {}


CONTINUATIONS: dict[str, type[Continuation]] = {"none": Continuation}


def make_continuation(name: str) -> Continuation:
    if name not in CONTINUATIONS:
        raise LongdepsError(f"unknown continuation {name!r}; choose from {', '.join(sorted(CONTINUATIONS))}")
    return CONTINUATIONS[name]()


__all__ = ["CONTINUATIONS", "Continuation", "make_continuation"]
