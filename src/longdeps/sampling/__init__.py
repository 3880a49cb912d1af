"""Samplers: which examples make each mini-batch.

``SAMPLERS`` is the registry (``longdeps.registry``); ``make_sampler`` builds one.
"""

from __future__ import annotations

from longdeps.config import SamplerConfig
from longdeps.model import SequenceModel
from longdeps.registry import Registry, defaults_of
from longdeps.sampling.sgr import SGRSampler
from longdeps.sampling.uniform import Sampler, UniformSampler
from longdeps.tasks.base import Task

SAMPLERS = Registry("sampler", "sampler", defaults_of(SamplerConfig), context=("task", "model"))
SAMPLERS.add("uniform", UniformSampler, "every example equally likely: fresh batches, shuffled passes or draws with "
                                        "replacement")
SAMPLERS.add("sgr", SGRSampler, "sampling-based gradient regularisation (Chernodub & Nowicki 2016): examples or "
                                "batches whose long-term gradient ratio lies in a band")


def make_sampler(name: str, *, task: Task, model: SequenceModel | None = None, **options) -> Sampler:
    """Build sampler ``name`` for ``task`` with its keyword ``options`` (``sampler.*`` config fields);
    ``model`` is the network being trained (samplers that choose by the model's gradients need it).
    An option of another sampler is refused."""
    peers = {"task": task, "cell": None if model is None else model.cell}
    return SAMPLERS.build(name, options, peers, task=task, model=model)


__all__ = ["SAMPLERS", "SGRSampler", "Sampler", "UniformSampler", "make_sampler"]
