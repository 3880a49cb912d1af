"""Gaussian-diffused activations: ``E[f(x + s * eps)]``, ``eps ~ N(0, 1)``, in closed form.

Diffusion (Mobahi 2016) trains on the objective convolved with a Gaussian
over the weights. For one unit with input vector ``v`` and isotropic weight
noise of scale sigma, the pre-activation is ``x + s * eps`` with the width
``s = sigma * ||v||``, so the smoothed unit is ``f`` diffused at width ``s``.

Each function takes ``x`` and a width ``s > 0`` that broadcasts against it
(``s = 0`` is the plain function, which callers use directly). Exact forms
hold to rounding; the two approximate ones carry a measured bound on the
absolute error, over every ``x`` and ``s``:

- ``tanh``: at most 0.0354. The error grows with ``s`` (0.0005 at ``s = 0.1``,
  0.020 at ``s = 1``, 0.034 at ``s = 5``) towards ``sup_z |erf(z) -
  tanh(2 z / sqrt(pi))| = 0.03534``, its limit as ``s -> inf``.
- ``logistic``: at most 0.0177, half the ``tanh`` bound, since
  ``logistic(x) = (1 + tanh(x / 2)) / 2``.

Moment propagation (``continuation.propagate``) also needs the *variance*
``Var[f(x + s eps)]``, for the nonlinearities an SRN uses (``MOMENTS``, with the mean):
exact for ``relu``; for ``tanh`` from ``E[tanh'] = d/dx E[tanh]`` applied to
the diffused mean, ``Var ~ (1 - m^2) (1 - 1 / k)`` with ``m`` the diffused
mean and ``k = sqrt(1 + pi s^2 / 2)``: 0 at ``s = 0``, 1 as ``s -> inf``, and
at most 0.063 from the exact variance over every ``x`` and ``s`` (measured on
a grid of ``x`` in [-15, 15], ``s`` in [1e-3, 1e2]).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

#: bounds on ``|E[f(x + s eps)] - diffused f(x, s)|`` over all ``x``, ``s`` (0 for exact forms)
ERROR_BOUND = {"tanh": 0.0354, "logistic": 0.0177, "erf": 0.0, "sign": 0.0, "relu": 0.0, "identity": 0.0, "square": 0.0}


def tanh_scale(x: torch.Tensor, s: torch.Tensor | float) -> torch.Tensor:
    """``k = sqrt(1 + pi s^2 / 2)``: diffused at width ``s``, tanh's argument is divided by ``k``."""
    return torch.sqrt(1 + (math.pi / 2) * torch.as_tensor(s, dtype=x.dtype) ** 2)


def tanh(x: torch.Tensor, s: torch.Tensor | float) -> torch.Tensor:
    """Approximate: tanh(z) ~ erf(sqrt(pi) z / 2), whose diffusion is exact (see ``erf``), mapped back to tanh."""
    return torch.tanh(x / tanh_scale(x, s))


def erf(x: torch.Tensor, s: torch.Tensor | float) -> torch.Tensor:
    """Exact: erf(x) = 2 P(g < x) - 1 with g ~ N(0, 1/2), and averaged over eps, g - s eps ~ N(0, 1/2 + s^2)."""
    return torch.erf(x / torch.sqrt(1 + 2 * torch.as_tensor(s, dtype=x.dtype) ** 2))


def sign(x: torch.Tensor, s: torch.Tensor | float) -> torch.Tensor:
    """Exact: E[sign(x + s eps)] = 2 P(eps > -x / s) - 1 = erf(x / (sqrt(2) s))."""
    return torch.erf(x / (math.sqrt(2) * torch.as_tensor(s, dtype=x.dtype)))


def normal_at(x: torch.Tensor, s: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(s, Phi(x / s), phi(x / s))``: ``s`` as a tensor, the standard normal CDF and density at ``x / s``."""
    s = torch.as_tensor(s, dtype=x.dtype)
    z = x / s
    return s, 0.5 * (1 + torch.erf(z / math.sqrt(2))), torch.exp(-0.5 * z ** 2) / math.sqrt(2 * math.pi)


def relu(x: torch.Tensor, s: torch.Tensor | float) -> torch.Tensor:
    """Exact: E[(x + s eps)^+] = x Phi(x / s) + s phi(x / s), integrating over eps > -x / s."""
    s, cdf, pdf = normal_at(x, s)
    return x * cdf + s * pdf


def logistic(x: torch.Tensor, s: torch.Tensor | float) -> torch.Tensor:
    """Approximate: logistic(x) = (1 + tanh(x / 2)) / 2 with ``tanh`` diffused at s / 2 (the probit approximation)."""
    return torch.sigmoid(x / torch.sqrt(1 + (math.pi / 8) * torch.as_tensor(s, dtype=x.dtype) ** 2))


def identity(x: torch.Tensor, s: torch.Tensor | float) -> torch.Tensor:
    """Exact: E[x + s eps] = x."""
    return x


def square(x: torch.Tensor, s: torch.Tensor | float) -> torch.Tensor:
    """Exact: E[(x + s eps)^2] = x^2 + 2 x s E[eps] + s^2 E[eps^2] = x^2 + s^2."""
    return x ** 2 + torch.as_tensor(s, dtype=x.dtype) ** 2


def tanh_moments(x: torch.Tensor, s: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (``tanh``) and approximate variance: ``E[tanh^2] = 1 - E[tanh']`` and
    ``E[tanh'(x + s eps)] = d/dx E[tanh(x + s eps)]``, which for the diffused mean ``m = tanh(x / k)``
    is ``(1 - m^2) / k``."""
    k = tanh_scale(x, s)
    mean = torch.tanh(x / k)
    return mean, (1 - mean ** 2) * (1 - 1 / k)


def relu_moments(x: torch.Tensor, s: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact mean (``relu``) and variance: ``E[(x + s eps)^+ ^2] = (x^2 + s^2) Phi(x / s) + x s phi(x / s)``
    less the squared mean."""
    s, cdf, pdf = normal_at(x, s)
    mean = x * cdf + s * pdf
    return mean, ((x ** 2 + s ** 2) * cdf + x * s * pdf - mean ** 2).clamp_min(0)


#: name -> the plain function
PLAIN: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh, "erf": torch.erf, "sign": torch.sign, "relu": torch.relu, "logistic": torch.sigmoid,
    "identity": lambda x: x, "square": torch.square,
}

#: name -> its diffused form ``f(x, s)``
DIFFUSED: dict[str, Callable[[torch.Tensor, torch.Tensor | float], torch.Tensor]] = {
    "tanh": tanh, "erf": erf, "sign": sign, "relu": relu, "logistic": logistic, "identity": identity, "square": square,
}

#: name -> the mean and the variance of ``f(x + s eps)`` in closed form, ``f(x, s)``; the
#: mean is the name's ``DIFFUSED`` form
MOMENTS: dict[str, Callable[[torch.Tensor, torch.Tensor | float], tuple[torch.Tensor, torch.Tensor]]] = {
    "tanh": tanh_moments, "relu": relu_moments,
}

#: bounds on the absolute error of the variance of ``MOMENTS`` over all ``x``, ``s`` (0 for exact forms)
VARIANCE_ERROR_BOUND = {"tanh": 0.063, "relu": 0.0}

__all__ = ["DIFFUSED", "ERROR_BOUND", "MOMENTS", "PLAIN", "VARIANCE_ERROR_BOUND", "erf", "identity", "logistic",
           "relu", "relu_moments", "sign", "square", "tanh", "tanh_moments"]
