"""Gradient estimators: how dL/dtheta is obtained through time.

``ESTIMATORS`` is the registry (``longdeps.registry``); ``make_estimator`` builds one.
``alignment`` measures how close an estimator's gradient is to the exact one.
"""

from __future__ import annotations

from longdeps.config import GradientConfig
from longdeps.gradients.alignment import alignment, recurrent_parameters
from longdeps.gradients.base import GradientEstimator
from longdeps.gradients.bptt import BPTT
from longdeps.gradients.dsf import DSF, FEEDBACKS
from longdeps.gradients.profile import hidden_gradient_norms, long_term_ratio
from longdeps.gradients.tbptt import TBPTT
from longdeps.registry import Registry, defaults_of

ESTIMATORS = Registry("gradient estimator", "gradient", defaults_of(GradientConfig), context=("seed",))
ESTIMATORS.add("bptt", BPTT, "exact backpropagation through time")
ESTIMATORS.add("tbptt", TBPTT, "truncated BPTT: the state is detached every gradient.truncation steps")
ESTIMATORS.add("dsf", DSF, "stationary state feedback (Caillon et al. 2025): one fixed matrix A in place of every "
                           "step Jacobian")


def make_estimator(name: str, *, seed: int = 0, **options) -> GradientEstimator:
    """Build estimator ``name`` with the ``options`` it takes (``gradient.*`` config fields:
    ``truncation`` for tbptt; ``feedback``, ``feedback_low``, ... for dsf); an option that only
    another estimator takes is refused unless it is at its default. ``seed`` is the run's."""
    return ESTIMATORS.build(name, options, seed=seed)


__all__ = ["BPTT", "DSF", "ESTIMATORS", "FEEDBACKS", "GradientEstimator", "TBPTT", "alignment", "hidden_gradient_norms",
           "long_term_ratio", "make_estimator", "recurrent_parameters"]
