"""Optimiser builder: learning-rate groups declared by cells, step hooks, and a tiny asRNN run."""

import pytest
import torch
from torch import nn

from longdeps import LongdepsError
from longdeps.cells import make_cell
from longdeps.config import OptimizerConfig, RunConfig
from longdeps.experiment import run_experiment
from longdeps.model import SequenceModel
from longdeps.optim import make_optimizer, param_groups


def groups_by_name(optimizer):
    return {group["name"]: group for group in optimizer.param_groups}


def ids(params):
    return {id(p) for p in params}


@pytest.mark.parametrize("uf_group", ["default", "orthogonal"])
def test_asrnn_groups_orthogonal_parameters_at_the_scaled_rate(uf_group):
    model = SequenceModel(make_cell("asrnn", 3, 6, uf_group=uf_group), 4, "all")
    optimizer = make_optimizer(OptimizerConfig(name="rmsprop", lr=2e-4, orthogonal_lr_scale=0.1), model)
    groups = groups_by_name(optimizer)
    assert set(groups) == {"default", "orthogonal"}
    assert groups["default"]["lr"] == 2e-4 and groups["orthogonal"]["lr"] == pytest.approx(2e-5)
    w_hh, u_f = model.cell.parametrizations.weight_hh.original, model.cell.parametrizations.weight_f.original
    assert id(w_hh) in ids(groups["orthogonal"]["params"])
    assert id(u_f) in ids(groups[uf_group]["params"])
    assert len(groups["orthogonal"]["params"]) == (2 if uf_group == "orthogonal" else 1)
    every = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(every) == len(ids(every)) == len(list(model.parameters()))  # each parameter exactly once
    assert ids(every) == ids(model.parameters())


@pytest.mark.parametrize("name", ["adam", "sgd", "rmsprop"])
@pytest.mark.parametrize("cell", ["srn", "lstm", "gru"])
def test_other_cells_keep_one_group_at_the_base_rate(cell, name):
    model = SequenceModel(make_cell(cell, 2, 4), 3, "last")
    optimizer = make_optimizer(OptimizerConfig(name=name, lr=3e-3), model)
    assert [(g["name"], g["lr"]) for g in optimizer.param_groups] == [("default", 3e-3)]
    assert ids(optimizer.param_groups[0]["params"]) == ids(model.parameters())


class Declaring(nn.Module):
    def __init__(self, groups):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
        self.groups = groups
        self.steps = 0

    def param_groups(self):
        return {name: [getattr(self, p) for p in params] for name, params in self.groups.items()}

    def after_optimizer_step(self):
        self.steps += 1


def test_any_module_can_declare_groups_and_a_step_hook():
    module = Declaring({"orthogonal": ["b"]})
    assert {name: ids(params) for name, params in param_groups(module).items()} == \
        {"default": {id(module.a)}, "orthogonal": {id(module.b)}}
    optimizer = make_optimizer(OptimizerConfig(name="sgd", lr=1.0, orthogonal_lr_scale=0.5), module)
    module.a.grad, module.b.grad = torch.ones(2), torch.ones(2)
    optimizer.step()
    optimizer.step()
    assert torch.equal(module.a, -2 * torch.ones(2)) and torch.equal(module.b, -torch.ones(2))
    assert module.steps == 2


@pytest.mark.parametrize("groups, config, message", [
    ({"slow": ["a"]}, OptimizerConfig(), "unknown parameter group 'slow'"),
    ({"orthogonal": ["a"], "default": ["a"]}, OptimizerConfig(), "declared in two groups"),
    ({}, OptimizerConfig(name="adagrad"), "unknown optimizer 'adagrad'"),
])
def test_bad_groups_and_settings_get_one_line_errors(groups, config, message):
    with pytest.raises(LongdepsError, match=message):
        make_optimizer(config, Declaring(groups))


@pytest.mark.filterwarnings("ignore:asrnn. the saturation p starts at exactly 0")  # the authors' copy setting
def test_tiny_asrnn_copy_run_finishes_with_recorded_groups(tmp_path):
    config = RunConfig().with_overrides([
        "task.name=copy", "task.seq_len=10", "task.val_size=64", "task.test_size=64", "cell.name=asrnn",
        "cell.hidden_size=16", "cell.recurrent_init=henaff", "cell.saturation_low=0", "cell.saturation_high=0",
        "cell.saturation_eps=1e-5", "cell.rebase_every=10", "optimizer.name=rmsprop", "optimizer.lr=1e-3",
        "optimizer.alpha=0.9", "gradient.clip_norm=10", "train.steps=30", "train.eval_every=15",
        "train.checkpoint_every=30", "train.batch_size=16", "train.profile_examples=8"])
    result = run_experiment(config, tmp_path, progress=False)
    assert result.status == "finished" and result.summary["steps_done"] == 30
    assert torch.isfinite(torch.tensor(result.summary["test_loss"]))
    checkpoint = torch.load(result.run_dir / "checkpoint.pt", weights_only=False)
    assert [(g["name"], g["lr"]) for g in checkpoint["optimizer"]["param_groups"]] == \
        [("default", 1e-3), ("orthogonal", pytest.approx(1e-4))]
    assert int(checkpoint["model"]["cell.updates"]) == 30
    assert checkpoint["config"]["optimizer"]["orthogonal_lr_scale"] == 0.1
