"""Gradient estimators: how dL/dtheta is obtained through time.

``ESTIMATORS`` maps a registry name to its class; ``make_estimator`` builds one.
``alignment`` measures how close an estimator's gradient is to the exact one.
"""

from __future__ import annotations

import inspect

from longdeps.errors import LongdepsError
from longdeps.gradients.alignment import alignment, recurrent_parameters
from longdeps.gradients.base import GradientEstimator
from longdeps.gradients.bptt import BPTT
from longdeps.gradients.dsf import DSF, FEEDBACKS
from longdeps.gradients.profile import hidden_gradient_norms, long_term_ratio
from longdeps.gradients.tbptt import TBPTT

ESTIMATORS: dict[str, type[GradientEstimator]] = {"bptt": BPTT, "tbptt": TBPTT, "dsf": DSF}


def make_estimator(name: str, *, seed: int = 0, **options) -> GradientEstimator:
    """Build estimator ``name`` with the ``options`` it takes (``gradient.*`` config fields:
    ``truncation`` for tbptt; ``feedback``, ``feedback_low``, ... for dsf; None: the
    estimator's default); an option that only another estimator takes is refused unless it
    is None. ``seed`` is the run's."""
    if name not in ESTIMATORS:
        raise LongdepsError(f"unknown gradient estimator {name!r}; choose from {', '.join(sorted(ESTIMATORS))}")
    cls = ESTIMATORS[name]
    accepted = set(inspect.signature(cls).parameters) - {"seed", "scan_backend", "block"}
    for key, value in options.items():
        if key not in accepted and value is not None:
            raise LongdepsError(f"gradient.{key}={value} applies to {_taker(key)} only, not {name!r}")
    kwargs = {key: value for key, value in options.items() if key in accepted and value is not None}
    if "seed" in inspect.signature(cls).parameters:
        kwargs["seed"] = seed
    return cls(**kwargs)


def _taker(option: str) -> str:
    return " and ".join(n for n, c in ESTIMATORS.items() if option in inspect.signature(c).parameters) or "no estimator"


__all__ = ["BPTT", "DSF", "ESTIMATORS", "FEEDBACKS", "GradientEstimator", "TBPTT", "alignment", "hidden_gradient_norms",
           "long_term_ratio", "make_estimator", "recurrent_parameters"]
