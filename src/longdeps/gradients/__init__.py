"""Gradient estimators: how dL/dtheta is obtained through time.

``ESTIMATORS`` maps a registry name to its class; ``make_estimator`` builds one.
"""

from __future__ import annotations

from longdeps.errors import LongdepsError
from longdeps.gradients.base import GradientEstimator
from longdeps.gradients.bptt import BPTT
from longdeps.gradients.profile import hidden_gradient_norms
from longdeps.gradients.tbptt import TBPTT

ESTIMATORS: dict[str, type[GradientEstimator]] = {"bptt": BPTT, "tbptt": TBPTT}


def make_estimator(name: str, truncation: int | None = None) -> GradientEstimator:
    """Build estimator ``name``; ``truncation`` (steps) is for ``tbptt`` only."""
    if name not in ESTIMATORS:
        raise LongdepsError(f"unknown gradient estimator {name!r}; choose from {', '.join(sorted(ESTIMATORS))}")
    if name == "tbptt":
        return TBPTT(truncation)
    if truncation is not None:
        raise LongdepsError(f"gradient.truncation={truncation} applies to tbptt only, not {name!r}")
    return ESTIMATORS[name]()


__all__ = ["BPTT", "ESTIMATORS", "GradientEstimator", "TBPTT", "hidden_gradient_norms", "make_estimator"]
