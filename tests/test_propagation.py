"""Moment propagation through time (``continuation.propagate``): the closed-form variances and
the propagated SRN against Monte Carlo over weight noise, in float64."""

import math

import numpy as np
import pytest
import torch

from longdeps import LongdepsError
from longdeps.cells import GRU, LSTM, SRN
from longdeps.functional.diffused import DIFFUSED, MOMENTS, PLAIN, VARIANCE_ERROR_BOUND

D = torch.float64


def gaussian_moments(name: str, x: torch.Tensor, s: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of ``f(x + s eps)`` for each entry of ``x`` by Gauss-Hermite quadrature
    on 2001 points of a fine grid (accurate to about 1e-10 for these smooth ``f``)."""
    eps = torch.linspace(-10, 10, 20001, dtype=D)
    weights = torch.exp(-eps ** 2 / 2)
    weights = weights / weights.sum()
    values = PLAIN[name](x[:, None] + s * eps)
    mean = (values * weights).sum(1)
    return mean, (values ** 2 * weights).sum(1) - mean ** 2


@pytest.mark.parametrize("s", [0.3, 1.0, 3.0])
def test_relu_moments_are_exact(s):
    x = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.5], dtype=D)
    mean, variance = gaussian_moments("relu", x, s)
    assert torch.allclose(MOMENTS["relu"](x, s)[0], mean, rtol=1e-6, atol=1e-12)
    assert torch.allclose(MOMENTS["relu"](x, s)[1], variance, rtol=1e-6, atol=1e-12)


def test_tanh_variance_stays_within_its_stated_bound_which_is_nearly_reached():
    x = torch.linspace(-15, 15, 301, dtype=D)
    worst = 0.0
    for s in np.geomspace(1e-2, 1e2, 41):
        _, reference = gaussian_moments("tanh", x, float(s))
        worst = max(worst, (MOMENTS["tanh"](x, float(s))[1] - reference).abs().max().item())
    assert VARIANCE_ERROR_BOUND["tanh"] * 0.9 < worst <= VARIANCE_ERROR_BOUND["tanh"], worst


def test_variances_vanish_at_zero_width_and_tanh_tends_to_one():
    x = torch.tensor([-1.0, 0.2, 2.0], dtype=D)
    for name in MOMENTS:
        assert MOMENTS[name](x, 1e-12)[1].abs().max() < 1e-12
    assert torch.allclose(MOMENTS["tanh"](torch.zeros(1, dtype=D), 1e6)[1], torch.ones(1, dtype=D), atol=1e-5)


@pytest.mark.parametrize("name", ["tanh", "relu"])
def test_the_mean_of_the_moments_is_the_diffused_form(name):
    x = torch.linspace(-3, 3, 13, dtype=D)
    for s in (0.2, 1.0, 4.0):
        assert torch.allclose(MOMENTS[name](x, s)[0], DIFFUSED[name](x, s), rtol=1e-14, atol=1e-15)


def propagating_srn(nonlinearity: str, hidden: int, sigma: float) -> SRN:
    torch.manual_seed(1)
    cell = SRN(3, hidden, nonlinearity=nonlinearity).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0, 1 / math.sqrt(hidden))
    cell.set_smoothing(sigma, propagate=True)
    return cell


def weight_noise_moments(cell: SRN, x: torch.Tensor, h0: torch.Tensor, sigma: float,
                         samples: int = 40_000) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Mean and variance of every ``h_t`` ``(B, H)`` over ``samples`` draws of the cell's weights with
    N(0, sigma^2) noise on each (the bias of each unit once), a fresh draw at every step: the
    independence of the noise from ``h_{t-1}`` that the propagation assumes."""
    rnn, g = cell.rnn, torch.Generator().manual_seed(0)
    bias = (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach()
    h, moments = h0.expand(samples, *h0.shape), []
    for x_t in x:
        def noisy(w):
            return w.detach() + sigma * torch.randn(samples, *w.shape, generator=g, dtype=D)
        z = (torch.einsum("bi,khi->kbh", x_t, noisy(rnn.weight_ih_l0))
             + torch.einsum("kbj,khj->kbh", h, noisy(rnn.weight_hh_l0)) + noisy(bias)[:, None])
        h = PLAIN[cell.nonlinearity](z)
        moments.append((h.mean(0), h.var(0)))
    return moments


def propagated_and_monte_carlo(nonlinearity: str, sigma: float):
    """Propagated ``(mean, variance)`` of ``h_1`` and ``h_2`` (32 units, batch 4) beside their
    Monte Carlo values and 5 Monte Carlo standard errors of the mean."""
    cell = propagating_srn(nonlinearity, 32, sigma)
    x, h0 = torch.randn(2, 4, 3, dtype=D), 0.5 * torch.randn(4, 32, dtype=D)
    with torch.no_grad():
        first = cell.step(x[0], h0)
        second = cell.step(x[1], first, 1)
    reference = weight_noise_moments(cell, x, h0, sigma)
    margins = [5 * variance.sqrt() / math.sqrt(40_000) + 1e-6 for _, variance in reference]  # 1e-6: a relu unit never on
    return (first, second), reference, margins


@pytest.mark.parametrize("sigma", [0.1, 0.3, 1.0])
def test_propagated_tanh_moments_of_one_and_two_steps_match_monte_carlo(sigma):
    """Within the closed forms' bounds at each step (2 steps: twice), plus 0.01 at step 2, where the
    pre-activation, a sum of products, is taken as Gaussian, plus the Monte Carlo margin."""
    propagated, reference, margins = propagated_and_monte_carlo("tanh", sigma)
    for steps, (mean, variance), (mc_mean, mc_variance), margin in zip((1, 2), propagated, reference, margins):
        closure = 0.0 if steps == 1 else 0.01
        assert ((mean - mc_mean).abs() <= steps * 0.0354 + closure + margin).all()
        assert ((variance - mc_variance).abs() <= steps * VARIANCE_ERROR_BOUND["tanh"] + closure + 5 * margin).all()


@pytest.mark.parametrize("sigma", [0.1, 0.3, 1.0])
def test_propagated_relu_moments_are_exact_for_one_step_and_close_for_two(sigma):
    """Step 1: exact. Step 2: the Gaussian closure costs up to 3% of ``|mean| + sd`` in the mean and
    16% of the variance here (tolerances 5% and 20%)."""
    propagated, reference, margins = propagated_and_monte_carlo("relu", sigma)
    (mean, variance), (mc_mean, mc_variance) = propagated[0], reference[0]
    assert ((mean - mc_mean).abs() <= margins[0]).all()
    # the Monte Carlo error of the variance of a rectified, skewed unit from 40,000 draws is up to 8%
    # (it falls to 2% with 160,000); the closed form itself is exact (test_relu_variance_is_exact)
    assert ((variance - mc_variance).abs() <= 0.1 * mc_variance + 5e-5).all()
    (mean, variance), (mc_mean, mc_variance) = propagated[1], reference[1]
    assert ((mean - mc_mean).abs() <= 0.05 * (mc_mean.abs() + mc_variance.sqrt()) + margins[1]).all()
    assert ((variance - mc_variance).abs() <= 0.2 * mc_variance + 1e-3).all()


def test_one_step_from_a_fixed_state_is_the_diffused_cell():
    cell = propagating_srn("tanh", 6, 0.4)
    x, h0 = torch.randn(3, 3, dtype=D), torch.randn(3, 6, dtype=D)
    mean, _ = cell.step(x, h0)
    cell.set_smoothing(0.4)
    assert torch.equal(mean, cell.step(x, h0))


def test_width_grows_along_the_sequence_with_propagation_only():
    cell = propagating_srn("tanh", 16, 0.5)
    x = torch.randn(30, 4, 3, dtype=D)
    widths = {}
    for propagate in (False, True):
        cell.set_smoothing(0.5, propagate)
        with cell.recording_widths() as recorded:
            cell(x)
        widths[propagate] = torch.stack([w.mean() for w in recorded])
    assert (widths[True] >= widths[False] - 1e-12).all()
    assert widths[True][-10:].mean() > 1.2 * widths[False][-10:].mean()


def test_at_sigma_zero_or_in_evaluation_propagation_is_the_plain_cell_bit_for_bit():
    torch.manual_seed(0)
    cell, x = SRN(3, 5), torch.randn(7, 2, 3)
    plain, plain_state = cell(x)
    cell.set_smoothing(0.0, propagate=True)
    out, state = cell(x)
    assert torch.equal(out, plain) and torch.equal(state, plain_state)
    cell.set_smoothing(0.3, propagate=True)
    cell.eval()
    assert torch.equal(cell(x)[0], plain)


@pytest.mark.parametrize("make, name", [(lambda: LSTM(3, 5), "LSTM"), (lambda: GRU(3, 5), "GRU")])
def test_cells_without_a_propagated_form_are_rejected_by_name(make, name):
    with pytest.raises(LongdepsError, match=f"^cell {name} has no moment-propagated form"):
        make().set_smoothing(0.1, propagate=True)


def test_propagate_without_diffusion_is_rejected(tmp_path):
    from longdeps.config import RunConfig
    from longdeps.experiment import run_experiment

    config = RunConfig.from_dict({"task": {"name": "adding", "seq_len": 5}, "cell": {"hidden_size": 4, "name": "srn"},
                                  "continuation": {"name": "weight-noise", "propagate": True},
                                  "train": {"steps": 1, "batch_size": 2}})
    with pytest.raises(LongdepsError, match="continuation.propagate=True applies to diffusion only"):
        run_experiment(config, tmp_path)
