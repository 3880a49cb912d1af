"""The LRU block against a float64 loop written from the paper's equations in complex arithmetic,
its initialisation, carried state, and what DSF's feedbacks do with its constant step Jacobian."""

import math

import pytest
import torch
import torch.nn.functional as F

from longdeps import LongdepsError
from longdeps.cells import make_cell
from longdeps.gradients import make_estimator
from longdeps.gradients.jacobian import step_jacobians
from longdeps.model import SequenceModel
from longdeps.tasks import make_task


def reference_lru(cell, x, h0, y0):
    """Every block output ``y_t`` and the final ``(h, y)``, step by step over ``x`` ``(T, B, I)``; ``h``
    complex ``(B, N)``."""
    lam = torch.exp(-torch.exp(cell.nu_log) + 1j * torch.exp(cell.theta_log))
    gamma = torch.exp(cell.gamma_log)
    b = torch.complex(cell.input_weight[:, 0], cell.input_weight[:, 1])
    c = torch.complex(cell.output_weight[..., 0], cell.output_weight[..., 1])
    h, y, outputs = h0, y0, []
    for x_t in x:
        v = x_t if cell.input_size == cell.hidden_size else x_t @ cell.encoder.weight.T + cell.encoder.bias
        n = F.layer_norm(v, (cell.hidden_size,), cell.norm.weight, cell.norm.bias, cell.norm.eps)
        h = lam * h + gamma * (n.to(h.dtype) @ b.T)
        z = (h @ c.T).real + cell.skip * n
        a, g = (F.gelu(z) @ cell.mlp.weight.T + cell.mlp.bias).chunk(2, -1)
        y = v + a * torch.sigmoid(g)
        outputs.append(y)
    return torch.stack(outputs), (h, y)


def pairs(h):
    """The cell's layout of a complex state ``(B, N)``: ``(Re h_k, Im h_k)`` side by side, ``(B, 2N)``."""
    return torch.stack([h.real, h.imag], -1).flatten(-2)


def lru_cell(input_size=3, hidden=5, **options):
    torch.manual_seed(0)
    return make_cell("lru", input_size, hidden, **options).double()


@pytest.mark.parametrize("native,backend", [(True, "loop"), (True, "doubling"), (False, "auto")])
@pytest.mark.parametrize("input_size", [3, 5])  # with the linear encoder, and without (input_size = hidden_size)
def test_forward_and_gradients_match_the_complex_float64_loop(native, backend, input_size):
    cell = lru_cell(input_size, 5, state_size=4, native=native, scan_backend=backend)
    assert isinstance(cell.encoder, torch.nn.Linear) == (input_size != 5)
    x = torch.randn(11, 3, input_size, dtype=torch.float64)
    h0 = torch.randn(3, 4, dtype=torch.complex128)
    y0 = torch.randn(3, 5, dtype=torch.float64)
    out, (h, y) = cell(x, (pairs(h0)[None], y0[None]))  # torch's layout: (num_layers, B, ...)
    h, y = h[0], y[0]
    want, (h_ref, y_ref) = reference_lru(cell, x, h0, y0)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, pairs(h_ref), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(out)
    params = list(cell.parameters())
    got = torch.autograd.grad((out * weights).sum() + h.square().sum(), params)
    expected = torch.autograd.grad((want * weights).sum() + h_ref.abs().square().sum(), params)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)


def test_scan_passes_gradcheck_on_a_tiny_block():
    cell = lru_cell(2, 3, state_size=2)
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    y0 = torch.zeros(2, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x, h0: cell(x, (h0[None], y0[None]))[0], (x, h0))


def test_initialisation_on_the_ring_with_gamma_from_lambda():
    torch.manual_seed(1)
    r_min, r_max, max_phase = 0.4, 0.7, math.pi / 10
    cell = make_cell("lru", 2, 4, state_size=4000, r_min=r_min, r_max=r_max, max_phase=max_phase)
    radius, phase = torch.exp(-torch.exp(cell.nu_log)), torch.exp(cell.theta_log)
    assert radius.min() >= r_min - 1e-6 and radius.max() <= r_max + 1e-6
    assert phase.min() >= 0 and phase.max() <= max_phase + 1e-6
    torch.testing.assert_close(torch.exp(cell.gamma_log), torch.sqrt(1 - radius ** 2))
    # uniform in the ring's area: |lambda|^2 uniform on [r_min^2, r_max^2] (mean and quartiles)
    squared = (radius.double() ** 2 - r_min ** 2) / (r_max ** 2 - r_min ** 2)
    assert squared.mean().item() == pytest.approx(0.5, abs=0.02)
    assert torch.quantile(squared, 0.25).item() == pytest.approx(0.25, abs=0.03)
    assert phase.double().mean().item() == pytest.approx(max_phase / 2, rel=0.05)
    assert cell.input_weight.std().item() == pytest.approx(1 / math.sqrt(2 * 4), rel=0.05)
    assert cell.output_weight.std().item() == pytest.approx(1 / math.sqrt(4000), rel=0.05)
    default = make_cell("lru", 2, 6)
    assert default.state_size == 6 and (default.r_min, default.r_max, default.max_phase) == (0.9, 0.999, 2 * math.pi)


def test_bad_options_get_one_line_errors():
    for options, match in (({"r_min": 0.9, "r_max": 0.5}, "0 <= cell.r_min <= cell.r_max < 1, got r_min=0.9"),
                           ({"r_max": 1.0}, "r_max=1.0"), ({"max_phase": 0.0}, "max_phase must be > 0"),
                           ({"state_size": -1}, "state_size must be an integer >= 0"),
                           ({"scan_backend": "fft"}, "unknown cell.scan_backend 'fft'")):
        with pytest.raises(LongdepsError, match=match):
            make_cell("lru", 2, 3, **options)


@pytest.mark.parametrize("native", [True, False])
def test_two_halves_with_the_carried_state_equal_the_whole(native):
    cell = lru_cell(native=native)
    x = torch.randn(10, 2, 3, dtype=torch.float64)
    whole, final = cell(x)
    first, carried = cell(x[:4])
    second, last = cell(x[4:], carried)
    torch.testing.assert_close(torch.cat([first, second]), whole, rtol=1e-12, atol=1e-12)
    for a, b in zip(last, final):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_the_step_jacobian_is_the_rotation_scaling_of_lambda_and_reads_no_previous_output():
    cell = lru_cell(state_size=4)
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        states, _ = cell.native_states(x, cell.initial_state(3))
    jacobians = step_jacobians(cell, x, states, [0, 3, 5], torch.arange(3))
    re, im = (p.detach() for p in cell.eigenvalues())
    rotation = torch.block_diag(*(torch.tensor([[r, -i], [i, r]], dtype=torch.float64) for r, i in zip(re, im)))
    torch.testing.assert_close(jacobians[..., :8, :8], rotation.expand(3, 3, 8, 8), rtol=1e-12, atol=1e-12)
    assert torch.all(jacobians[..., :, 8:] == 0)  # y_{t-1} is read by no step
    assert jacobians[..., 8:, :8].std(dim=(0, 1)).max() > 1e-3  # dy_t/dh_{t-1} varies: GELU and GLU


def dsf_and_bptt_grads(settings, reference=("bptt", {})):
    torch.manual_seed(0)
    task = make_task("copy", 6)
    model = SequenceModel(make_cell("lru", task.input_size, 5, state_size=3, r_max=0.9), task.output_size,
                          task.readout).double()
    batch = task.sample(4, torch.Generator().manual_seed(0))
    batch.x = batch.x.double()
    out = []
    for estimator in (make_estimator("dsf", **settings), make_estimator(reference[0], **reference[1])):
        model.zero_grad(set_to_none=True)
        estimator.backward(model, batch, task)
        out.append([p.grad.clone() for p in model.parameters()])
    return out


def test_dsf_stationary_with_one_exact_step_is_bptt_and_stationary_diagonal_is_truncated_bptt():
    """With the state stored as [Re h; Im h; y], the mean step Jacobian holds the exact (constant)
    rotation-scaling of lambda; one exact step carries each output's error into h_{t-1}, after
    which only that block acts, so the stationary feedback is exact. Its diagonal drops the
    rotation, and without the exact step the mean of dy_t/dh_{t-1} stands in for each step's."""
    for settings, reference in (({"feedback": "stationary", "exact_window": 1}, ("bptt", {})),
                                # the mean Jacobian's diagonal is Re lambda on h and 0 on y, and a
                                # diagonal feedback never moves an error from y into h
                                ({"feedback": "stationary-diagonal"}, ("tbptt", {"truncation": 1}))):
        got, want = dsf_and_bptt_grads(settings, reference)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12)
    for settings in ({"feedback": "stationary-diagonal", "exact_window": 1}, {"feedback": "stationary"},
                     {"feedback": "uniform"}, {"feedback": "constant", "feedback_low": 0.5, "feedback_high": 0.5}):
        got, want = dsf_and_bptt_grads(settings)
        assert any(not torch.allclose(g, w, rtol=1e-6, atol=1e-9) for g, w in zip(got, want)), settings
