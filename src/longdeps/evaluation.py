"""Evaluation: a model's metrics on a split, and what a run measures at each evaluation.

``evaluate`` scores any model. An ``Evaluator`` measures a run's model every
``train.eval_every`` updates: the cell's ``before_evaluation`` pass over
training data (batch norm's population statistics) first, then the
validation metrics, the gradient profile ``||dL/dh_t||`` on a fixed probe
batch, what the continuation, sampler and estimator report
(``statistics()``) and, every ``train.alignment_every`` updates, the
estimator's alignment with exact BPTT. It keeps the best-validation weights,
which score the test set at the end.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Iterator

import torch

from longdeps.config import TrainConfig
from longdeps.continuation import Continuation
from longdeps.gradients import GradientEstimator, alignment, hidden_gradient_norms
from longdeps.model import SequenceModel
from longdeps.sampling import Sampler
from longdeps.seeding import seeded_generator
from longdeps.tasks.base import Batch, Task


@torch.no_grad()
def evaluate(model: SequenceModel, task: Task, batches: Iterable[Batch], device: torch.device | str = "cpu") -> dict[str, float]:
    """Each metric of ``task.per_example_metrics`` averaged over ``batches``.

    Per-example values are weighted by the number of outputs they average
    (``task.example_weights``, by default 1 for many-to-one tasks, the steps
    for many-to-many ones), so the result is the mean over all predictions. A batch that ``continues`` the previous
    one starts from its final state.
    """
    was_training = model.training
    model.eval()
    sums: dict[str, float] = defaultdict(float)
    count, state = 0, None
    for batch in batches:
        batch = batch.to(device)
        outputs, final = model(batch.x, state if batch.continues else None)
        weight = task.example_weights(batch)
        if weight is None:
            weight = batch.x.shape[0] if task.readout == "all" else 1
            for key, values in task.per_example_metrics(outputs, batch.y).items():
                sums[key] += float(values.sum()) * weight
            count += batch.size * weight
        else:
            weight = weight.to(device)
            for key, values in task.per_example_metrics(outputs, batch.y).items():
                sums[key] += float((values.double() * weight).sum())
            count += float(weight.sum())
        state = final
    model.train(was_training)
    return {key: total / count for key, total in sums.items()}


def weights(model: SequenceModel) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s state dict."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Evaluator:
    """The evaluations of one run: ``model`` on ``task``, trained by ``estimator``, ``sampler`` and
    ``continuation`` as ``train`` says, on ``device``."""

    def __init__(self, task: Task, model: SequenceModel, estimator: GradientEstimator, sampler: Sampler,
                 continuation: Continuation, train: TrainConfig, device: torch.device):
        self.task, self.model, self.train, self.device = task, model, train, device
        self.estimator, self.sampler, self.continuation = estimator, sampler, continuation
        probe = task.split("val")[0]
        self.probe = probe.select(torch.arange(min(train.profile_examples, probe.size)))
        self.alignment_batch = task.fixed_train_batch(train.batch_size, train.seed) if train.alignment_every else None
        self.best: dict[str, Any] | None = None  #: the best validation metrics so far, their update and weights

    def population_inputs(self, examples: int | None, step: int) -> Iterator[torch.Tensor]:
        """Training inputs for one pass of population statistics at update ``step``, in batches of
        ``train.batch_size``: the first ``examples`` of the training set (None: all of it), or for a
        generated task 10,000 examples drawn with a generator of their own. For carried-state
        streams an example is one stream's segment, read in order from the start of the epoch."""
        size, batch_size = self.task.train_size, self.train.batch_size
        if self.task.ordered:
            segments = self.task.segments(batch_size)
            for k in range(segments if examples is None else min(segments, -(-examples // batch_size))):
                yield self.task.train_segment(k, batch_size).x.to(self.device)
            return
        total = examples or size or 10_000
        generator = seeded_generator("population", self.train.seed, step)
        for start in range(0, min(total, size) if size else total, batch_size):
            if size:
                batch = self.task.train_examples(torch.arange(start, min(start + batch_size, total, size)))
            else:
                batch = self.task.sample(min(batch_size, total - start), generator)
            yield batch.x.to(self.device)

    def recompute_population(self, examples: int | None, step: int) -> int:
        """The cell's ``before_evaluation`` pass over training data (batch norm: population
        statistics); returns the number of batches it read (0 for cells that need none)."""
        return self.model.cell.before_evaluation(self.model, self.population_inputs(examples, step))

    def measure(self, step: int, smoothing: dict[str, float], history: list[dict[str, Any]]) -> dict[str, Any]:
        """The evaluation's part of the record at update ``step``: validation metrics, gradient
        profile, the components' statistics (``smoothing``: what the continuation set for the
        update) and, when due after the records in ``history``, the alignment. Keeps the weights if
        they are the best so far."""
        if self.train.population_examples != 0:
            self.recompute_population(self.train.population_examples, step)
        val = evaluate(self.model, self.task, self.task.split("val"), self.device)
        self.model.eval()
        profile = hidden_gradient_norms(self.model, self.probe.to(self.device), self.task).mean(dim=1)
        self.model.train()
        record = {
            "val": val, "val_metric": val[self.task.metric], "solved": bool(self.task.solved(val)),
            "grad_profile": [float(v) for v in profile],
            "smoothing": {**smoothing, **self.continuation.statistics(self.model, self.probe.x.to(self.device))},
            **self.sampler.statistics(),
            **self.estimator.statistics(),
            **self.model.cell.statistics(),
        }
        if self.alignment_due(step, history):
            record["alignment"] = alignment(self.model, self.alignment_batch.to(self.device), self.task, self.estimator)
        if self.best is None or self.is_better(val, self.best["val"]):
            self.best = {"step": step, "val": val, "model": weights(self.model)}
        return record

    def alignment_due(self, step: int, history: list[dict[str, Any]]) -> bool:
        """Whether the evaluation at ``step`` measures the gradient's alignment: ``train.alignment_every``
        updates or more after the last record of ``history`` that did."""
        every = self.train.alignment_every
        if not every:
            return False
        last = max((r["step"] for r in history if "alignment" in r), default=0)
        return step - last >= every

    def is_better(self, new: dict[str, float], old: dict[str, float]) -> bool:
        """Higher (or lower) headline metric, then lower loss."""
        sign = 1 if self.task.higher_is_better else -1
        return (sign * new[self.task.metric], -new["loss"]) > (sign * old[self.task.metric], -old["loss"])

    def test(self, batches: Iterable[Batch]) -> dict[str, float]:
        """The metrics of the best-validation weights over ``batches``; the model keeps its own."""
        current = weights(self.model)
        self.model.load_state_dict(self.best["model"])
        test = evaluate(self.model, self.task, batches, self.device)
        self.model.load_state_dict(current)
        return test
