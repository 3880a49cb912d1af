"""The plain sampler: fresh batches, shuffled epochs, or draws with replacement."""

from __future__ import annotations

from typing import Any

import torch

from longdeps.errors import LongdepsError
from longdeps.model import SequenceModel
from longdeps.reporting import ReportSection
from longdeps.tasks.base import Batch, Task


class Sampler(ReportSection):
    """Chooses the examples of each training batch.

    A generated task (``task.train_size is None``) makes a fresh batch for
    every update. A finite training set is read by ``choose``; an ordered
    task (carried-state streams) is read segment after segment, each
    continuing the previous one, and may not be reordered.

    The run hands over the ``model`` it trains, so that a sampler may choose
    by what the model currently does (``sgr``); the model is the very module
    being trained, not a copy.
    """

    name: str

    def __init__(self, task: Task, model: SequenceModel | None = None):
        self.task = task
        self.model = model
        self.position = 0  #: examples (or, for ordered tasks, segments) drawn so far

    def next_batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        """The next training batch, drawn with ``generator``."""
        if self.task.train_size is None:
            return self.task.sample(batch_size, generator)
        if self.task.ordered:
            segments = self.task.segments(batch_size)
            k = self.position % segments
            self.position += 1
            return self.task.train_segment(k, batch_size)
        return self.task.train_examples(self.choose(batch_size, generator))

    def choose(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Indices into the training set, ``(batch_size,)``."""
        raise NotImplementedError

    def statistics(self) -> dict[str, Any]:
        """What the sampler did since the last call, logged with the next evaluation record
        (JSON-ready; empty for samplers with nothing to report)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = state["position"]


class UniformSampler(Sampler):
    """Every example equally likely: shuffled epochs (each example once per
    epoch, a new order every epoch), or with ``replacement`` independent
    uniform draws (as ``randi`` in Chernodub & Nowicki's code)."""

    def __init__(self, task: Task, model: SequenceModel | None = None, replacement: bool = False):
        super().__init__(task, model)
        self.replacement = replacement
        self.order: torch.Tensor | None = None

    def choose(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        return self.draw(self.task.train_size, batch_size, generator)

    def draw(self, size: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """``batch_size`` positions in ``[0, size)``: the next ones of shuffled passes, or
        independent draws with ``replacement``."""
        if self.replacement:
            self.position += batch_size
            return torch.randint(size, (batch_size,), generator=generator)
        if batch_size > size:
            raise LongdepsError(f"train.batch_size={batch_size} exceeds the {size} training examples of task {self.task.name!r}")
        chosen, remaining = [], batch_size
        while remaining:
            start = self.position % size
            if start == 0 or self.order is None:
                self.order = torch.randperm(size, generator=generator)
            take = min(remaining, size - start)
            chosen.append(self.order[start:start + take])
            self.position += take
            remaining -= take
        return torch.cat(chosen)

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position, "order": self.order}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position, self.order = state["position"], state["order"]
