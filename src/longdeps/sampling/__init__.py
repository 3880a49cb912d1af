"""Samplers: which examples make each mini-batch.

``SAMPLERS`` maps a registry name to its class; ``make_sampler`` builds one.
"""

from __future__ import annotations

from longdeps.config import SamplerConfig
from longdeps.errors import LongdepsError
from longdeps.model import SequenceModel
from longdeps.sampling.sgr import SGRSampler
from longdeps.sampling.uniform import Sampler, UniformSampler
from longdeps.tasks import Task

SAMPLERS: dict[str, type[Sampler]] = {"uniform": UniformSampler, "sgr": SGRSampler}


def make_sampler(config: SamplerConfig, task: Task, model: SequenceModel | None = None) -> Sampler:
    """Build sampler ``config.name`` for ``task``; ``model`` is the network being trained
    (samplers that choose by the model's gradients need it)."""
    if config.name not in SAMPLERS:
        raise LongdepsError(f"unknown sampler {config.name!r}; choose from {', '.join(sorted(SAMPLERS))}")
    return SAMPLERS[config.name](task, config=config, model=model)


__all__ = ["SAMPLERS", "SGRSampler", "Sampler", "UniformSampler", "make_sampler"]
