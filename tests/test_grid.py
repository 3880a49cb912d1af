"""The promise of the four axes, generated from the registries: every combination of a cell, a
gradient estimator, a sampler and a continuation either trains (two updates, finite loss and
gradients) or is refused when the run is built, by a capability one of them declares, in one
line naming both values; each with one layer and with a stack of two (``cell.num_layers``). A
component joins this grid by being registered."""

import itertools
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from longdeps import LongdepsError
from longdeps.cells import CELLS, RecurrentCell, StepWeights
from longdeps.config import RunConfig
from longdeps.continuation import CONTINUATIONS
from longdeps.experiment import Run
from longdeps.gradients import ESTIMATORS
from longdeps.registry import CAPABILITIES
from longdeps.sampling import SAMPLERS
from longdeps.store import ResultStore

TINY = ["task.name=adding", "task.seq_len=6", "task.train_size=16", "task.val_size=8", "task.test_size=8",
        "cell.hidden_size=4", "train.batch_size=4", "train.steps=2", "train.population_examples=8",
        "train.profile_examples=4"]
#: options without which a component cannot be built
REQUIRED = {"tbptt": ["gradient.truncation=2"]}
AXES = ("cell", "gradient", "sampler", "continuation")


def grid(cells=None):
    return list(itertools.product(cells or list(CELLS), ESTIMATORS, SAMPLERS, CONTINUATIONS))


def train_or_refuse(point, results, device="cpu", layers=1) -> str:
    """Build the run of ``point`` with ``layers`` recurrent layers on ``device`` and train two updates;
    returns "trained" or "refused"."""
    overrides = [f"{axis}.name={name}" for axis, name in zip(AXES, point)] + [f"train.device={device}"]
    overrides += [f"cell.num_layers={layers}"] if layers > 1 else []
    config = RunConfig().with_overrides(TINY + overrides + [o for name in point for o in REQUIRED.get(name, [])])
    try:
        run = Run(config, ResultStore(results))
    except LongdepsError as err:
        chosen = dict(zip(("cell", "gradient estimator", "sampler", "continuation"), point), task="adding")
        refusal = re.fullmatch(r"(.+) '(.+)' cannot be combined with (cell|task) '(.+)': it needs (.+)", str(err))
        assert refusal, f"{point}: not a declared refusal: {err}"
        kind, name, role, peer, need = refusal.groups()
        assert (chosen[kind], chosen[role], need) == (name, peer, need) and need in CAPABILITIES.values()
        return "refused"
    for _ in range(2):
        run.continuation.before_step(run.step, run.model)
        loss, norm = run.train_step()  # refuses a non-finite loss or gradient norm itself
        run.step += 1
        assert math.isfinite(loss) and math.isfinite(norm)
        assert all(torch.isfinite(p.grad).all() for p in run.model.parameters() if p.grad is not None)
    return "trained"


@pytest.mark.parametrize("layers", [1, 2], ids=["1-layer", "2-layers"])
@pytest.mark.parametrize("point", grid(), ids="-".join)
def test_every_combination_trains_or_is_refused_by_a_declared_capability(point, layers, tmp_path, device):
    train_or_refuse(point, tmp_path, device, layers)


class ToyCell(RecurrentCell):
    """``h_t = tanh(W x_t + U h_{t-1})``: a cell written and registered in this file alone."""

    name, description = "toy", "a tanh RNN of two matrices (tests/test_grid.py)"

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = False, native: bool = True):
        super().__init__(input_size, hidden_size, batch_first, native)
        self.weight_ih = nn.Parameter(torch.randn(hidden_size, input_size) / input_size ** 0.5)
        self.weight_hh = nn.Parameter(torch.randn(hidden_size, hidden_size) / hidden_size ** 0.5)

    def initial_state(self, batch_size):
        return self.zeros(batch_size)

    def hidden(self, state):
        return state

    def project_input(self, x):
        return F.linear(x, self.weight_ih)

    def step_weights(self):
        return StepWeights(self.weight_hh)

    def update(self, u, gh, state, t, weights):
        return torch.tanh(u + gh)


def test_a_cell_registered_in_a_test_joins_the_grid_and_trains(tmp_path, monkeypatch):
    monkeypatch.setitem(CELLS, "toy", ToyCell)
    points = [point for point in grid() if point[0] == "toy"]
    assert len(points) == len(ESTIMATORS) * len(SAMPLERS) * len(CONTINUATIONS)
    outcomes = {point: train_or_refuse(point, tmp_path, layers=2) for point in points}
    # no diffused form declared: diffusion refuses it, everything else trains
    assert {point for point, outcome in outcomes.items() if outcome == "refused"} == {
        point for point in points if point[3] == "diffusion"}
