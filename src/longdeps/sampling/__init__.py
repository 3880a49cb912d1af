"""Samplers: which examples make each mini-batch.

``SAMPLERS`` maps a registry name to its class; ``make_sampler`` builds one.
"""

from __future__ import annotations

from longdeps.errors import LongdepsError
from longdeps.sampling.uniform import Sampler, UniformSampler

SAMPLERS: dict[str, type[Sampler]] = {"uniform": UniformSampler}


def make_sampler(name: str, task, replacement: bool = False) -> Sampler:
    """Build sampler ``name`` for ``task``."""
    if name not in SAMPLERS:
        raise LongdepsError(f"unknown sampler {name!r}; choose from {', '.join(sorted(SAMPLERS))}")
    return SAMPLERS[name](task, replacement)


__all__ = ["SAMPLERS", "Sampler", "UniformSampler", "make_sampler"]
