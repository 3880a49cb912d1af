"""The sequence model's readout: each initialisation against its stated distribution, and the config path."""

import math

import pytest
import torch
from torch import nn

from longdeps import LongdepsError
from longdeps.config import RunConfig
from longdeps.experiment import Run
from longdeps.model import init_readout_
from longdeps.store import ResultStore

H, O = 400, 500  # 200,000 weights: sample moments within about 0.3%


def test_default_readout_is_pytorchs_linear():
    torch.manual_seed(0)
    ours = init_readout_(nn.Linear(H, O), "default")
    torch.manual_seed(0)
    theirs = nn.Linear(H, O)
    assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)
    bound = 1 / math.sqrt(H)  # kaiming_uniform_(a=sqrt(5)) and the bias rule of nn.Linear
    assert ours.weight.abs().max() <= bound and ours.bias.abs().max() <= bound and ours.bias.abs().max() > 0


def test_kaiming_readout_is_normal_with_fan_in_relu_variance_and_zero_bias():
    torch.manual_seed(1)
    layer = init_readout_(nn.Linear(H, O), "kaiming").requires_grad_(False)
    w, std = layer.weight, math.sqrt(2 / H)
    assert torch.equal(layer.bias, torch.zeros(O))
    assert abs(float(w.mean())) < 0.01 * std
    assert float(w.std()) == pytest.approx(std, rel=0.01)
    within_one_std = float((w.abs() < std).float().mean())
    assert within_one_std == pytest.approx(math.erf(1 / math.sqrt(2)), abs=0.005)  # 0.6827: normal, not uniform (0.577)


def test_uniform_readout_fills_the_range_with_zero_bias():
    torch.manual_seed(2)
    layer = init_readout_(nn.Linear(H, O), "uniform", scale=0.05).requires_grad_(False)
    w = layer.weight
    assert torch.equal(layer.bias, torch.zeros(O))
    assert float(w.abs().max()) <= 0.05 and float(w.abs().max()) > 0.0499
    assert float(w.var()) == pytest.approx(0.05 ** 2 / 3, rel=0.01)
    assert float((w.abs() < 0.025).float().mean()) == pytest.approx(0.5, abs=0.005)


def test_run_builds_its_readout_from_the_config(tmp_path):
    config = RunConfig().with_overrides(["task.seq_len=10", "cell.hidden_size=8", "readout.init=uniform",
                                         "readout.scale=0.01"])
    readout = Run(config, ResultStore(tmp_path)).model.readout
    assert readout.weight.abs().max() <= 0.01 and torch.equal(readout.bias, torch.zeros(1))
    assert RunConfig().readout.init == "default"


@pytest.mark.parametrize("init, scale, message", [
    ("xavier", 0.1, "unknown readout init 'xavier'; choose from default, kaiming, uniform"),
    ("uniform", 0.0, "readout scale must be positive for the uniform init, got 0.0"),
])
def test_bad_readout_settings_get_one_line_errors(init, scale, message):
    with pytest.raises(LongdepsError, match=message):
        init_readout_(nn.Linear(3, 2), init, scale)
