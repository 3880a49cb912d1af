"""Optimiser builder: learning-rate groups declared by cells, step hooks, and a tiny asRNN run."""

import json
import math

import pytest
import torch
from torch import nn

from longdeps import LongdepsError
from longdeps.cells import make_cell
from longdeps.config import OptimizerConfig, RunConfig
from longdeps.experiment import run_experiment
from longdeps.model import SequenceModel
from longdeps.optim import make_optimizer, make_schedule, param_groups


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
    ({}, OptimizerConfig(name="adagrad"), "unknown optimizer 'adagrad'; choose from adam, adamw, sgd, rmsprop"),
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


def expected_lr(lr, k, steps, schedule="constant", warmup=0, step_size=1000, gamma=0.1):
    """The learning rate of update ``k`` (0-based) as docs/optimisers.md states it."""
    if k < warmup:
        return lr * (k + 1) / (warmup + 1)
    j = k - warmup
    if schedule == "step":
        return lr * gamma ** (j // step_size)
    if schedule == "cosine":
        return lr * (1 + math.cos(math.pi * j / (steps - warmup))) / 2
    return lr


@pytest.mark.parametrize("options", [
    {"schedule": "step", "step_size": 4, "gamma": 0.5}, {"schedule": "cosine"}, {"warmup": 5},
    {"schedule": "step", "step_size": 3, "gamma": 0.2, "warmup": 4}, {"schedule": "cosine", "warmup": 6},
])
def test_the_learning_rate_follows_the_schedule_in_every_group(options):
    steps, module = 20, Declaring({"orthogonal": ["b"]})
    config = OptimizerConfig(name="adamw", lr=0.1, weight_decay=0.01, orthogonal_lr_scale=0.5, **options)
    optimizer = make_optimizer(config, module)
    schedule = make_schedule(config, optimizer, steps)
    seen = []
    for _ in range(steps):
        seen.append([group["lr"] for group in optimizer.param_groups])
        module.a.grad, module.b.grad = torch.ones(2), torch.ones(2)
        optimizer.step()
        schedule.step()
    wanted = [expected_lr(0.1, k, steps, **options) for k in range(steps)]
    assert seen == [[pytest.approx(w, abs=1e-12), pytest.approx(w / 2, abs=1e-12)] for w in wanted]
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]["weight_decay"] == 0.01


def test_a_constant_rate_without_warmup_has_no_schedule():
    assert make_schedule(OptimizerConfig(), make_optimizer(OptimizerConfig(), Declaring({})), 10) is None


@pytest.mark.parametrize("config, message", [
    (OptimizerConfig(schedule="linear"), "unknown optimizer.schedule 'linear'; choose from constant, step, cosine"),
    (OptimizerConfig(gamma=0.5), "optimizer.gamma=0.5 applies to optimizer.schedule=step only, not constant"),
    (OptimizerConfig(schedule="cosine", step_size=10), "optimizer.step_size=10 applies to optimizer.schedule=step only"),
    (OptimizerConfig(warmup=10), "optimizer.warmup=10 must be less than train.steps=10"),
])
def test_bad_schedules_get_one_line_errors(config, message):
    with pytest.raises(LongdepsError, match=f"^{message}"):
        make_schedule(config, make_optimizer(config, Declaring({})), 10)


def test_schedule_options_enter_the_run_id_only_away_from_their_defaults():
    plain = RunConfig()
    assert RunConfig().with_overrides(["optimizer.schedule=constant", "optimizer.warmup=0"]).run_id() == plain.run_id()
    assert "schedule" not in plain.to_dict()["optimizer"] and "warmup" not in plain.to_dict(identity=True)["optimizer"]
    ids = {RunConfig().with_overrides(o).run_id() for o in
           (["optimizer.schedule=cosine"], ["optimizer.warmup=10"], ["optimizer.name=adamw"], [])}
    assert len(ids) == 4


def test_a_resumed_run_with_a_schedule_is_the_uninterrupted_run(tmp_path, interrupt_and_resume):
    """Stopped at update 25, after the warm-up and between two checkpoints, the run resumes from
    its checkpoint at 20 with the schedule where it was, and ends as the run that never stopped."""
    config = RunConfig().with_overrides([
        "task.seq_len=8", "task.val_size=64", "task.test_size=64", "cell.name=gru", "cell.hidden_size=8",
        "optimizer.name=adamw", "optimizer.lr=0.01", "optimizer.weight_decay=0.01", "optimizer.schedule=step",
        "optimizer.step_size=7", "optimizer.gamma=0.5", "optimizer.warmup=5", "train.steps=40", "train.eval_every=10",
        "train.checkpoint_every=20", "train.batch_size=8", "train.profile_examples=8", "train.stop_when_solved=false"])
    whole = run_experiment(config, tmp_path / "whole", progress=False)
    resumed = interrupt_and_resume(config, tmp_path / "resumed", 25)

    def records(result):
        lines = (result.run_dir / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "wall_time"} for line in lines]
    assert records(resumed) == records(whole) and resumed.summary["test_loss"] == whole.summary["test_loss"]
    checkpoint = torch.load(whole.run_dir / "checkpoint.pt", weights_only=False)
    assert checkpoint["optimizer"]["param_groups"][0]["lr"] == pytest.approx(expected_lr(
        0.01, 40, 40, "step", 5, 7, 0.5))
