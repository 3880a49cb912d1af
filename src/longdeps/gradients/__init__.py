"""Gradient estimators: how dL/dtheta is obtained through time.

``ESTIMATORS`` maps a registry name to its class; ``make_estimator`` builds one.
"""

from __future__ import annotations

from longdeps.errors import LongdepsError
from longdeps.gradients.base import GradientEstimator
from longdeps.gradients.bptt import BPTT
from longdeps.gradients.dsf import DSF
from longdeps.gradients.profile import hidden_gradient_norms, long_term_ratio
from longdeps.gradients.tbptt import TBPTT

ESTIMATORS: dict[str, type[GradientEstimator]] = {"bptt": BPTT, "tbptt": TBPTT, "dsf": DSF}


def make_estimator(name: str, truncation: int | None = None, hidden_size: int | None = None, seed: int = 0,
                   feedback: tuple[float, float] = (0.0, 1.0)) -> GradientEstimator:
    """Build estimator ``name``: ``truncation`` (steps) is for ``tbptt``; ``hidden_size``,
    ``seed`` and the ``feedback`` range of lambda are for ``dsf``."""
    if name not in ESTIMATORS:
        raise LongdepsError(f"unknown gradient estimator {name!r}; choose from {', '.join(sorted(ESTIMATORS))}")
    if truncation is not None and name != "tbptt":
        raise LongdepsError(f"gradient.truncation={truncation} applies to tbptt only, not {name!r}")
    if name == "tbptt":
        return TBPTT(truncation)
    if name == "dsf":
        return DSF(hidden_size, *feedback, seed=seed)
    return ESTIMATORS[name]()


__all__ = ["BPTT", "DSF", "ESTIMATORS", "GradientEstimator", "TBPTT", "hidden_gradient_norms", "long_term_ratio", "make_estimator"]
