"""minGRU and minLSTM against float64 loops written from their equations, the scan they train
through (underflow included), carried state, their diffused form and their step Jacobians."""

import pytest
import torch

from longdeps.cells import make_cell
from longdeps.functional.diffused import DIFFUSED
from longdeps.functional.scan import linear_scan
from longdeps.gradients import make_estimator
from longdeps.gradients.jacobian import step_jacobians
from longdeps.model import SequenceModel
from longdeps.tasks import make_task


def reference(name, cell, x, h0, width=None):
    """Every ``h_t`` of ``name`` over ``x`` ``(T, B, I)``, one step at a time; ``width(x_t, h)``: the
    gate's diffusion width (None: plain)."""
    w, b = cell.linear.weight, cell.linear.bias
    h, out = h0, []
    for x_t in x:
        pre = x_t @ w.T + b
        if name == "mingru":
            gate, candidate = pre.chunk(2, -1)
            z = torch.sigmoid(gate) if width is None else DIFFUSED["logistic"](gate, width(x_t, h))
            h = (1 - z) * h + z * candidate
        else:
            f, i, candidate = pre.chunk(3, -1)
            f, i = torch.sigmoid(f), torch.sigmoid(i)
            h = f / (f + i) * h + i / (f + i) * candidate
        out.append(h)
    return torch.stack(out)


@pytest.mark.parametrize("native,backend", [(True, "loop"), (True, "doubling"), (False, "auto")])
@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_forward_and_gradients_match_the_float64_loop(name, native, backend):
    torch.manual_seed(0)
    cell = make_cell(name, 3, 5, native=native, scan_backend=backend).double()
    x = torch.randn(13, 4, 3, dtype=torch.float64)
    h0 = torch.randn(4, 5, dtype=torch.float64)
    out, h = cell(x, h0[None])  # torch's layout: (num_layers, B, H)
    h = h[0]
    want = reference(name, cell, x, h0)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, want[-1], rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(out)
    params = list(cell.parameters())
    got = torch.autograd.grad((out * weights).sum(), params)
    expected = torch.autograd.grad((want * weights).sum(), params)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", ["loop", "doubling"])
def test_scan_passes_gradcheck(backend):
    torch.manual_seed(0)
    cell = make_cell("mingru", 2, 3, scan_backend=backend).double()
    x = torch.randn(5, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h0: cell(x, h0[None])[0], (x, h0))


def test_float32_doubling_scan_at_1000_steps_is_exact_to_rounding_although_products_underflow():
    """The products of minGRU's coefficients 1 - z_t over long spans underflow in float32; nothing
    is divided by them, so the scan still agrees with a float64 loop (the log-space form of the
    paper is not needed here)."""
    torch.manual_seed(0)
    cell = make_cell("mingru", 8, 16, scan_backend="doubling")
    x = torch.randn(1000, 4, 8)
    with torch.no_grad():
        a = 1 - torch.sigmoid(cell.linear(x)[..., :16])
        assert torch.all(a.prod(0) == 0)  # underflowed
        out, _ = cell(x)
    want = reference("mingru", cell.double(), x.double(), torch.zeros(4, 16, dtype=torch.float64))
    torch.testing.assert_close(out.double(), want, rtol=1e-4, atol=1e-5)
    assert torch.isinf(torch.cumprod(a, 0).reciprocal()).any()  # a cumulative-product form would overflow


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
@pytest.mark.parametrize("native", [True, False])
def test_two_halves_with_the_carried_state_equal_the_whole(name, native):
    torch.manual_seed(0)
    cell = make_cell(name, 3, 5, native=native).double()
    x = torch.randn(10, 2, 3, dtype=torch.float64)
    whole, final = cell(x)
    first, carried = cell(x[:6])
    second, last = cell(x[6:], carried)
    torch.testing.assert_close(torch.cat([first, second]), whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(last, final, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("native", [True, False])
def test_smoothed_mingru_diffuses_its_gate_at_the_width_of_its_input_alone(native):
    """The gate's pre-activation W_z x_t + b_z carries noise of scale sigma * sqrt(||x_t||^2 + 1)."""
    torch.manual_seed(0)
    cell = make_cell("mingru", 3, 5, native=native).double()
    cell.set_smoothing(0.3)
    x = torch.randn(7, 4, 3, dtype=torch.float64)
    h0 = torch.randn(4, 5, dtype=torch.float64)
    with cell.recording_widths() as widths:
        out, _ = cell(x, h0[None])
    width = lambda x_t, h: 0.3 * torch.sqrt(x_t.square().sum(-1, keepdim=True) + 1)
    torch.testing.assert_close(out, reference("mingru", cell, x, h0, width), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.cat([w.flatten() for w in widths]), width(x, None).flatten())
    assert not torch.allclose(out, reference("mingru", cell, x, h0))


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_step_jacobians_are_the_diagonal_coefficients_and_stationary_dsf_is_their_diagonal_mean(name):
    torch.manual_seed(0)
    task = make_task("copy", 6)
    model = SequenceModel(make_cell(name, task.input_size, 5), task.output_size, task.readout).double()
    batch = task.sample(4, torch.Generator().manual_seed(0))
    x = batch.x = batch.x.double()
    with torch.no_grad():
        states = model.cell.native_states(x, model.cell.initial_state(4))[0]
        a, _ = model.cell.coefficients(model.cell.project_input(x), None)
    steps = list(range(x.shape[0]))
    jacobians = step_jacobians(model.cell, x, states, steps, torch.arange(4))
    torch.testing.assert_close(jacobians, torch.diag_embed(a), rtol=1e-12, atol=1e-12)
    dsf = make_estimator("dsf", feedback="stationary", jacobian_steps=len(steps), jacobian_examples=4)
    dsf.backward(model, batch, task)
    torch.testing.assert_close(dsf.feedback["matrix"], torch.diag(a.mean((0, 1))), rtol=1e-12, atol=1e-12)
