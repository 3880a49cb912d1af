"""Gaussian-diffused activations and diffused cells against Monte Carlo references in float64."""

import math

import pytest
import torch

from longdeps import LongdepsError
from longdeps.cells import GRU, LSTM, SRN
from longdeps.functional import diffused
from longdeps.functional.diffused import DIFFUSED, ERROR_BOUND, PLAIN

D = torch.float64
EXACT = [name for name, bound in ERROR_BOUND.items() if bound == 0]


def stratified_normal(n: int, seed: int) -> torch.Tensor:
    """``n`` standard normal draws, one in each of ``n`` equal-probability strata (random within
    its stratum): an unbiased Monte Carlo sample whose error falls about as fast as 1/n."""
    g = torch.Generator().manual_seed(seed)
    u = (torch.arange(n, dtype=D) + 0.5 + 0.9 * (torch.rand(n, generator=g, dtype=D) - 0.5)) / n
    return math.sqrt(2) * torch.erfinv(2 * u - 1)


def monte_carlo(name: str, x: torch.Tensor, s: float, n: int = 1_000_000) -> torch.Tensor:
    """E[f(x + s eps)] for each entry of ``x``."""
    eps = stratified_normal(n, seed=7)
    return torch.stack([PLAIN[name](xi + s * eps).mean() for xi in x])


POINTS = torch.tensor([-2.0, -0.5, 0.3, 1.5], dtype=D)


@pytest.mark.parametrize("s", [0.3, 1.0, 3.0])
@pytest.mark.parametrize("name", EXACT)
def test_exact_forms_match_monte_carlo_to_1e_3_relative(name, s):
    reference = monte_carlo(name, POINTS, s)
    closed = DIFFUSED[name](POINTS, s)
    assert torch.allclose(closed, reference, rtol=1e-3, atol=1e-9), (closed, reference)  # atol: relu far left, 6e-13


@pytest.mark.parametrize("name", ["tanh", "logistic"])
def test_approximate_forms_stay_within_their_stated_bound_which_is_nearly_reached(name):
    x = torch.linspace(-60, 60, 241, dtype=D)
    worst = 0.0
    for s in (0.1, 0.5, 1.0, 3.0, 30.0):
        error = (DIFFUSED[name](x, s) - monte_carlo(name, x, s, n=200_000)).abs().max().item()
        assert error <= ERROR_BOUND[name], (s, error)
        worst = max(worst, error)
    assert worst > 0.97 * ERROR_BOUND[name]  # the bound is not loose


@pytest.mark.parametrize("name", list(DIFFUSED))
def test_narrow_width_gives_the_plain_function(name):
    x = POINTS[POINTS != 0]
    assert torch.allclose(DIFFUSED[name](x, 1e-7), PLAIN[name](x), atol=1e-6)


def test_tanh_form_is_the_papers_formula():
    x, s = torch.tensor([0.7], dtype=D), 1.3
    assert diffused.tanh(x, s).item() == pytest.approx(math.tanh(0.7 / math.sqrt(1 + math.pi / 2 * 1.3 ** 2)), abs=1e-15)


# -- diffused cells ----------------------------------------------------------

def srn_weight_noise_reference(cell: SRN, x: torch.Tensor, h: torch.Tensor, sigma: float, samples: int = 2_000_000,
                               chunk: int = 250_000) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard error of one SRN step under N(0, sigma^2) noise on the cell's
    ``perturbed_parameters``, by plain Monte Carlo over the weights."""
    perturbed = {id(p) for p in cell.perturbed_parameters()}
    rnn = cell.rnn
    g = torch.Generator().manual_seed(3)
    total, total_sq = 0.0, 0.0
    for _ in range(samples // chunk):
        def noisy(p):
            return p + sigma * torch.randn(chunk, *p.shape, generator=g, dtype=D) if id(p) in perturbed else p.expand(chunk, *p.shape)
        w_ih, w_hh, b_ih, b_hh = noisy(rnn.weight_ih_l0), noisy(rnn.weight_hh_l0), noisy(rnn.bias_ih_l0), noisy(rnn.bias_hh_l0)
        z = torch.einsum("khi,bi->kbh", w_ih, x) + torch.einsum("khj,bj->kbh", w_hh, h) + (b_ih + b_hh)[:, None]
        out = PLAIN[cell.nonlinearity](z)
        total, total_sq = total + out.sum(0), total_sq + (out ** 2).sum(0)
    mean = total / samples
    return mean, torch.sqrt((total_sq / samples - mean ** 2) / samples)


def small_srn(nonlinearity: str) -> tuple[SRN, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    cell = SRN(3, 4, nonlinearity=nonlinearity).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0, 0.5)
    return cell, torch.randn(2, 3, dtype=D), 0.8 * torch.randn(2, 4, dtype=D)


def test_diffused_relu_srn_step_is_the_weight_noise_average():
    cell, x, h = small_srn("relu")
    sigma = 0.3
    cell.set_smoothing(sigma)
    reference, stderr = srn_weight_noise_reference(cell, x, h, sigma)
    step = cell.step(x, h)
    assert ((step - reference).abs() <= 1e-3 * reference.abs() + 4 * stderr).all(), (step, reference, stderr)


def test_diffused_tanh_srn_step_uses_the_width_of_its_whole_input_and_matches_weight_noise():
    cell, x, h = small_srn("tanh")
    sigma = 0.2
    cell.set_smoothing(sigma)
    width = sigma * torch.sqrt((h ** 2).sum(1, keepdim=True) + (x ** 2).sum(1, keepdim=True) + 1)
    z = x @ cell.rnn.weight_ih_l0.T + h @ cell.rnn.weight_hh_l0.T + cell.rnn.bias_ih_l0 + cell.rnn.bias_hh_l0
    step = cell.step(x, h)
    assert torch.allclose(step, torch.tanh(z / torch.sqrt(1 + math.pi / 2 * width ** 2)), rtol=1e-12, atol=0)
    assert width.max() < 1  # where the tanh form errs by at most 0.0203 (see functional.diffused)
    reference, stderr = srn_weight_noise_reference(cell, x, h, sigma, samples=500_000)
    assert ((step - reference).abs() <= 0.0203 + 4 * stderr).all()


@pytest.mark.parametrize("make", [lambda: SRN(3, 5), lambda: SRN(3, 5, nonlinearity="relu"), lambda: LSTM(3, 5), lambda: GRU(3, 5)])
def test_sigma_zero_is_the_plain_cell_bit_for_bit_on_the_native_path(make):
    torch.manual_seed(1)
    cell, x = make(), torch.randn(7, 2, 3)
    plain, plain_state = cell(x)
    loop, _ = cell.unroll(x)
    cell.set_smoothing(0.2)
    assert not cell.fused
    smoothed, _ = cell(x)
    assert not torch.allclose(smoothed, plain)
    cell.eval()  # evaluation never smooths
    assert cell.fused and torch.equal(cell(x)[0], plain)
    cell.train()
    cell.set_smoothing(0.0)
    assert cell.fused
    again, again_state = cell(x)
    assert torch.equal(again, plain) and all(torch.equal(a, b) for a, b in zip(again_state, plain_state))
    assert all(torch.equal(a, b) for a, b in zip(cell.unroll(x)[0], loop))


@pytest.mark.parametrize("make", [lambda: LSTM(3, 5), lambda: GRU(3, 5)])
def test_gated_cells_approach_the_plain_cell_as_sigma_shrinks_and_flatten_as_it_grows(make):
    torch.manual_seed(2)
    cell, x = make().double(), torch.randn(6, 2, 3, dtype=D)
    plain, _ = cell(x)
    cell.set_smoothing(1e-7)
    assert torch.allclose(cell(x)[0], plain, atol=1e-9)
    cell.set_smoothing(100.0)  # every gate near 1/2 and every candidate near 0, so h_1 near 0
    assert cell.hidden(cell.step(x[0], cell.initial_state(2))).abs().max() < 0.02
    cell.set_smoothing(0.0)
    assert cell.hidden(cell.step(x[0], cell.initial_state(2))).abs().max() > 0.1


def test_negative_sigma_is_rejected():
    with pytest.raises(LongdepsError, match="smoothing sigma must be >= 0, got -0.1"):
        SRN(2, 3).set_smoothing(-0.1)


@pytest.mark.parametrize("make", [lambda: SRN(2, 5), lambda: LSTM(2, 5), lambda: GRU(2, 5)])
def test_smoothed_cells_go_through_dsf_which_at_zero_feedback_is_truncated_bptt(make):
    from longdeps.gradients import make_estimator
    from longdeps.model import SequenceModel
    from longdeps.tasks import make_task

    task = make_task("adding", 10, None, val_size=10, test_size=10)
    batch = task.sample(4, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = SequenceModel(make(), task.output_size, task.readout)
    model.cell.set_smoothing(0.3)
    grads = []
    for estimator in (make_estimator("dsf", feedback="constant", feedback_high=0.0), make_estimator("tbptt", truncation=1)):
        model.zero_grad()
        estimator.backward(model, batch, task)
        grads.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))
    model.cell.set_smoothing(0.0)
    model.zero_grad()
    make_estimator("tbptt", truncation=1).backward(model, batch, task)
    assert not all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(grads[1], model.parameters()))
