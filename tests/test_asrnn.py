"""asRNN and the orthogonal RNN: float64 references from the equations, orthogonality under
training, the closed-form Jacobian, the linear limit, initialisations and dynamic trivialisation."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from longdeps import LongdepsError
from longdeps.cells import ASRNN, OrthogonalRNN, make_cell
from longdeps.config import OptimizerConfig, RunConfig
from longdeps.functional.orthogonal import cayley_init_, henaff_init_, retrivialise, skew
from longdeps.gradients import make_estimator
from longdeps.model import SequenceModel
from longdeps.tasks import make_task
from longdeps.optim import make_optimizer

EYE = torch.eye(6, dtype=torch.float64)


def raw(cell, name):
    """The unconstrained parameter behind the orthogonal weight ``name``."""
    return getattr(cell.parametrizations, name).original


def orthogonality_error(w):
    w = w.detach()
    return float(torch.linalg.matrix_norm(w.T @ w - torch.eye(w.shape[0], dtype=w.dtype)))


def reference_orthogonal(x, orthogonal_map):
    """``expm(A)`` or ``(I + A)^-1 (I - A)`` of ``A = A_u - A_u^T``, written out here."""
    a = x.triu(1) - x.triu(1).T
    eye = torch.eye(x.shape[0], dtype=x.dtype, device=x.device)
    return torch.linalg.matrix_exp(a) if orthogonal_map == "expm" else torch.linalg.inv(eye + a) @ (eye - a)


def reference_w_hh(cell, orthogonal_map="expm"):
    """``W_hh``: ``B`` from the skew parameter (base I), transposed for orientation BT."""
    b = reference_orthogonal(raw(cell, "weight_hh"), orthogonal_map)
    return b.T if cell.orientation == "BT" else b


def reference_asrnn(cell, x, h0, orthogonal_map="expm"):
    """h_t = W_f^-1 tanh(W_f (W_xh x_t + W_hh h_{t-1} + b)), W_f = U_f D_f, column form, explicit inverse."""
    w_hh = reference_w_hh(cell, orthogonal_map)
    w_f = reference_orthogonal(raw(cell, "weight_f"), orthogonal_map) @ torch.diag(cell.saturation.abs() + cell.saturation_eps)
    w_f_inv = torch.linalg.inv(w_f)
    h, out = h0.T, []
    for x_t in x:
        z = cell.weight_ih @ x_t.T + w_hh @ h + cell.bias[:, None]
        h = w_f_inv @ torch.tanh(w_f @ z)
        out.append(h.T)
    return torch.stack(out)


def reference_modrelu_rnn(cell, x, h0):
    w_hh = reference_w_hh(cell)
    h, out = h0, []
    for x_t in x:
        z = x_t @ cell.weight_ih.T + h @ w_hh.T
        h = torch.sign(z) * torch.relu(z.abs() + cell.bias)
        out.append(h)
    return torch.stack(out)


def randomised(cell, seed=0):
    """``cell`` in float64 with every parameter away from its special initial value."""
    torch.manual_seed(seed)
    cell = cell.double()
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return cell


@pytest.mark.parametrize("orthogonal_map, orientation", [("expm", "B"), ("cayley", "B"), ("expm", "BT")])
def test_asrnn_matches_float64_reference_forward_and_gradients(orthogonal_map, orientation, device):
    cell = randomised(ASRNN(3, 6, orthogonal_map=orthogonal_map, saturation_low=0.5, saturation_high=1.5,
                            orientation=orientation)).to(device)
    x, h0 = torch.randn(9, 4, 3, dtype=torch.float64).to(device), torch.randn(4, 6, dtype=torch.float64).to(device)
    out, final = cell(x, h0[None])
    ref = reference_asrnn(cell, x, h0, orthogonal_map)
    assert torch.allclose(out, ref, atol=1e-12) and torch.allclose(final[0], ref[-1], atol=1e-12)
    weights = torch.randn_like(ref)
    params = list(cell.parameters())
    for got, want in zip(torch.autograd.grad((out * weights).sum(), params),
                         torch.autograd.grad((ref * weights).sum(), params)):
        assert torch.allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("orientation", ["B", "BT"])
def test_orthrnn_modrelu_matches_float64_reference_forward_and_gradients(orientation, device):
    cell = randomised(OrthogonalRNN(3, 6, orientation=orientation)).to(device)
    x, h0 = torch.randn(9, 4, 3, dtype=torch.float64).to(device), torch.randn(4, 6, dtype=torch.float64).to(device)
    out, _ = cell(x, h0[None])
    ref = reference_modrelu_rnn(cell, x, h0)
    assert torch.allclose(out, ref, atol=1e-12)
    params = list(cell.parameters())
    for got, want in zip(torch.autograd.grad(out.square().sum(), params), torch.autograd.grad(ref.square().sum(), params)):
        assert torch.allclose(got, want, atol=1e-10)


def test_each_cell_defaults_to_its_reference_codes_orientation():
    assert OrthogonalRNN(3, 6).orientation == "BT" and ASRNN(3, 6).orientation == "B"


@pytest.mark.parametrize("cls", [ASRNN, OrthogonalRNN], ids=["asrnn", "orthrnn"])
def test_orientation_bt_is_the_transpose_of_b_for_the_same_parameters(cls):
    b = randomised(cls(3, 6, rebase_every=5, orientation="B"), seed=10)  # a base away from I too
    bt = cls(3, 6, rebase_every=5, orientation="BT").double()
    bt.load_state_dict(b.state_dict())
    with torch.no_grad():
        assert torch.equal(bt.weight_hh, b.weight_hh)  # the same B
        assert torch.equal(bt.recurrent_matrix(), b.recurrent_matrix().T)
        assert not torch.allclose(b.recurrent_matrix(), b.recurrent_matrix().T)
    # the steps use it: see the float64 references above, which build W_hh = B^T themselves


def test_identity_rotation_and_scalar_scale_give_tanh_az_over_a():
    a = 0.7
    torch.manual_seed(1)
    cell = ASRNN(3, 6, saturation_low=a, saturation_high=a, saturation_eps=0.0).double()
    assert torch.equal(cell.weight_f, EYE)
    x, h = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    z = x @ cell.weight_ih.T + h @ cell.weight_hh.T + cell.bias
    assert torch.allclose(cell.step(x, h), torch.tanh(a * z) / a, atol=1e-14)


def test_one_step_jacobian_matches_closed_form():
    cell = randomised(ASRNN(3, 6, saturation_low=0.5, saturation_high=2.0), seed=2)
    x, h = torch.randn(1, 3, dtype=torch.float64), torch.randn(1, 6, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda h: cell.step(x, h), h).reshape(6, 6)
    with torch.no_grad():
        u_f, d, w_hh = cell.weight_f, cell.saturation.abs() + cell.saturation_eps, cell.weight_hh
        z = (cell.weight_ih @ x[0] + w_hh @ h[0] + cell.bias)
        gate = torch.diag(1 - torch.tanh(u_f @ (d * z)) ** 2)
        closed = torch.diag(1 / d) @ u_f.T @ gate @ u_f @ torch.diag(d) @ w_hh
    assert torch.allclose(jacobian, closed, atol=1e-12)


@torch.no_grad()
def test_small_saturation_approaches_the_linear_orthogonal_rnn():
    torch.manual_seed(3)
    x = torch.randn(20, 4, 3, dtype=torch.float64)
    linear = randomised(OrthogonalRNN(3, 6, nonlinearity="linear", orientation="B"), seed=3)  # asrnn's default
    want, _ = linear(x)
    gaps = []
    for scale in (1e-2, 1e-3, 1e-4):
        cell = ASRNN(3, 6, saturation_low=scale, saturation_high=scale, saturation_eps=scale).double()
        cell.load_state_dict(linear.state_dict(), strict=False)
        raw(cell, "weight_f").normal_()  # any rotation U_f: the limit does not depend on it
        gaps.append(float((cell(x)[0] - want).abs().max()))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3 * gaps[0] and gaps[2] < 1e-3  # about scale^2


@pytest.mark.parametrize("options", [{"orthogonal_map": "expm"}, {"orthogonal_map": "cayley"}, {"rebase_every": 7}])
def test_orthogonal_after_many_large_steps(options):
    torch.manual_seed(4)
    cell = ASRNN(2, 6, saturation_low=0.5, saturation_high=1.0, uf_group="orthogonal", **options).double()
    optimizer = make_optimizer(OptimizerConfig(name="rmsprop", lr=0.05, orthogonal_lr_scale=1.0), cell)
    start = {name: getattr(cell, name).detach().clone() for name in ("weight_hh", "weight_f")}
    for _ in range(200):
        optimizer.zero_grad()
        out, _ = cell(torch.randn(5, 8, 2, dtype=torch.float64))
        (out - 1).square().mean().backward()
        optimizer.step()
    for name in ("weight_hh", "weight_f"):
        w = getattr(cell, name).detach()
        assert orthogonality_error(w) < 1e-5
        assert float((w - start[name]).abs().max()) > 0.1  # it did move along the manifold


@pytest.mark.parametrize("init", ["cayley", "henaff"])
def test_skew_initialisations_have_the_stated_structure(init):
    torch.manual_seed(5)
    cell = ASRNN(1, 7, recurrent_init=init).requires_grad_(False)
    a = raw(cell, "weight_hh")
    assert torch.equal(skew(a), a)  # a skew matrix, kept whole by A_u - A_u^T
    blocks = torch.block_diag(*[torch.ones(2, 2)] * 3, torch.ones(1, 1)).bool()
    assert torch.all(a[~blocks] == 0) and torch.all(a.diagonal() == 0)
    upper = a.diagonal(1)[::2]
    low, high = (-1.0, 0.0) if init == "cayley" else (-math.pi, math.pi)  # -tan(s/2), s in (0, pi/2)
    assert torch.all((upper >= low) & (upper <= high)) and upper.abs().min() > 0
    w = cell.weight_hh
    assert orthogonality_error(w) < 1e-5 and torch.all(w[~blocks] == 0) and w[6, 6] == 1
    assert torch.allclose(w[0:2, 0:2], torch.tensor([[math.cos(upper[0]), math.sin(upper[0])],
                                                     [-math.sin(upper[0]), math.cos(upper[0])]]), atol=1e-6)


def test_initial_values_follow_the_authors_code():
    torch.manual_seed(6)
    cell = ASRNN(3, 8, saturation_low=0.8, saturation_high=3.0, saturation_eps=0.0)
    assert torch.equal(cell.weight_f, torch.eye(8)) and torch.equal(cell.bias, torch.zeros(8))
    assert torch.allclose(cell.weight_ih.T @ cell.weight_ih, torch.eye(3), atol=1e-5)
    assert torch.all((cell.saturation >= 0.8) & (cell.saturation <= 3.0)) and cell.saturation.std() > 0
    x = torch.empty(6, 6)
    assert torch.all(cayley_init_(x, torch.Generator().manual_seed(0)).diagonal(1)[::2] < 0)
    assert torch.equal(henaff_init_(x, torch.Generator().manual_seed(0)), -x.T)


def test_retrivialise_keeps_the_matrix_and_zeroes_the_skew_parameter():
    cell = randomised(ASRNN(2, 6))
    before = {name: getattr(cell, name).detach().clone() for name in ("weight_hh", "weight_f")}
    assert retrivialise(cell) == 2
    for name in ("weight_hh", "weight_f"):
        assert torch.equal(raw(cell, name), torch.zeros(6, 6, dtype=torch.float64))
        assert torch.allclose(getattr(cell, name), before[name], atol=1e-13)
    optimizer = make_optimizer(OptimizerConfig(name="rmsprop", lr=0.05), cell)
    for _ in range(20):
        optimizer.zero_grad()
        cell(torch.randn(5, 4, 2, dtype=torch.float64))[0].square().mean().backward()
        optimizer.step()
    assert raw(cell, "weight_hh").detach().abs().max() > 0
    assert orthogonality_error(cell.weight_hh) < 1e-10 and orthogonality_error(cell.weight_f) < 1e-10


def test_rebase_every_k_optimiser_steps_and_at_the_start():
    torch.manual_seed(7)
    cell = OrthogonalRNN(2, 6, recurrent_init="henaff", rebase_every=3)
    assert torch.equal(raw(cell, "weight_hh"), torch.zeros(6, 6))  # dtriv: rebased before the first step
    assert not torch.equal(cell.parametrizations.weight_hh[0].base, torch.eye(6))
    optimizer = make_optimizer(OptimizerConfig(lr=0.01), cell)
    for step in range(1, 7):
        optimizer.zero_grad()
        cell(torch.randn(4, 3, 2))[0].square().mean().backward()
        optimizer.step()
        assert int(cell.updates) == step
        assert torch.equal(raw(cell, "weight_hh"), torch.zeros(6, 6)) == (step % 3 == 0)


@pytest.mark.parametrize("project", [True, False], ids=["projected", "unprojected"])
@pytest.mark.parametrize("cls", [ASRNN, OrthogonalRNN], ids=["asrnn", "orthrnn"])
def test_a_rebase_leaves_the_cells_function_unchanged(cls, project):
    cell = cls(3, 6, rebase_every=5).double()
    retrivialise(cell)  # a base away from I, orthogonal to float64 round-off (it was rebased in float32)
    cell = randomised(cell, seed=11)  # skew parameters away from 0
    x, h0 = torch.randn(9, 4, 3, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    with torch.no_grad():
        before, _ = cell(x, h0[None])
        assert retrivialise(cell, project=project) == (2 if cls is ASRNN else 1)
        after, _ = cell(x, h0[None])
    assert torch.equal(raw(cell, "weight_hh"), torch.zeros(6, 6, dtype=torch.float64))
    assert torch.allclose(after, before, atol=1e-12, rtol=0) and (before - h0).abs().max() > 0.1


def test_projection_onto_the_orthogonal_group_every_m_rebases():
    """rebase_every=1, project_every=3: rebases at the start (the 1st) and after every update (the
    (u+1)-th after update u); only the 3rd, 6th, ... project, which removes a perturbation of the base."""
    torch.manual_seed(12)
    cell = OrthogonalRNN(2, 6, recurrent_init="henaff", rebase_every=1, project_every=3).double()
    base = cell.parametrizations.weight_hh[0].base
    optimizer = make_optimizer(OptimizerConfig(lr=0.01), cell)
    projected = []
    for _ in range(6):
        with torch.no_grad():
            base.add_(1e-3 * torch.randn_like(base))  # off the orthogonal group
        optimizer.zero_grad()
        cell(torch.randn(4, 3, 2, dtype=torch.float64))[0].square().mean().backward()
        optimizer.step()
        error = orthogonality_error(base)
        assert error < 1e-12 or error > 1e-4
        projected.append(error < 1e-12)
    assert projected == [False, True, False, False, True, False]  # after updates 2 and 5: rebases 3 and 6


@pytest.mark.parametrize("cell", [ASRNN(3, 5), OrthogonalRNN(3, 5)], ids=["asrnn", "orthrnn"])
def test_update_on_all_steps_equals_step_by_step(cell):
    torch.manual_seed(8)
    cell = randomised(cell, seed=8)
    x, h0 = torch.randn(7, 2, 3, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    hs, _ = cell.unroll(x, h0)
    previous = torch.stack([h0, *hs[:-1]])
    weights = cell.step_weights()
    gh = F.linear(previous, weights.recurrent, weights.bias)
    together = cell.update(cell.project_input(x), gh, previous, range(7), weights)
    assert torch.allclose(together, torch.stack(hs), atol=1e-12)


def test_dsf_without_feedback_equals_fully_truncated_bptt():
    """DSF runs ``update`` on blocks of steps with detached per-sequence weights; at lambda = 0
    it must give the gradient of one-step truncated BPTT."""
    task = make_task("copy", 12, val_size=8)
    batch = dataclasses.replace(task.split("val")[0], x=task.split("val")[0].x.double())
    grads = []
    for name, options in (("dsf", {"feedback": "constant", "feedback_high": 0.0}), ("tbptt", {"truncation": 1})):
        torch.manual_seed(9)
        model = SequenceModel(ASRNN(task.input_size, 5, saturation_low=0.5, saturation_high=1.0), task.output_size,
                              "all").double()
        make_estimator(name, **options).backward(model, batch, task)
        grads.append([p.grad for p in model.parameters()])
    for dsf, tbptt in zip(*grads):
        assert torch.allclose(dsf, tbptt, atol=1e-12)


def test_make_cell_with_options_and_from_the_config():
    with pytest.warns(UserWarning, match="starts at exactly 0"):
        cell = make_cell("asrnn", 10, 8, recurrent_init="henaff", orthogonal_map="cayley", saturation_low=0.0,
                         saturation_high=0.0, saturation_eps=1e-5, uf_group="orthogonal", rebase_every=100, native=True)
    assert cell.uf_group == "orthogonal" and cell.saturation_eps == 1e-5 and cell.rebase_every == 100
    assert cell.parametrizations.weight_f[0].orthogonal_map == "cayley" and torch.equal(cell.saturation, torch.zeros(8))
    config = RunConfig().with_overrides(["cell.name=asrnn", "cell.saturation_low=0.8", "cell.saturation_high=3",
                                         "cell.saturation_eps=0", "cell.uf_group=default"])
    assert config.options("cell") == {"native": True, "saturation_low": 0.8, "saturation_high": 3.0,
                                      "saturation_eps": 0.0, "uf_group": "default"}
    assert make_cell(config.cell.name, 1, 4, **config.options("cell")).saturation.min() >= 0.8
    assert make_cell("orthrnn", 1, 4, nonlinearity="linear").nonlinearity == "linear"


def test_saturation_starting_at_zero_warns_and_never_moves():
    with pytest.warns(UserWarning, match=r"^asrnn: the saturation p starts at exactly 0 .* D_f stays at eps = 1e-05 "
                                         r"and the cell trains as a linear orthogonal RNN$") as caught:
        cell = ASRNN(2, 6, saturation_low=0.0, saturation_high=0.0, saturation_eps=1e-5).double()
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert caught[0].filename == __file__  # the warning points at the line that built the cell
    with pytest.warns(UserWarning) as caught:
        make_cell("asrnn", 2, 6, saturation_low=0.0, saturation_high=0.0)  # through the registry too
    assert caught[0].filename == __file__
    optimizer = make_optimizer(OptimizerConfig(name="rmsprop", lr=0.05), cell)
    for _ in range(5):  # what the warning says: the gradient of p is exactly 0, so p stays at 0
        optimizer.zero_grad()
        cell(torch.randn(5, 4, 2, dtype=torch.float64))[0].square().mean().backward()
        assert torch.equal(cell.saturation.grad, torch.zeros(6, dtype=torch.float64))
        optimizer.step()
    assert torch.equal(cell.saturation.detach(), torch.zeros(6, dtype=torch.float64))


@pytest.mark.parametrize("options", [{}, {"saturation_low": -0.1, "saturation_high": 0.1}])
def test_saturation_away_from_zero_builds_without_warning(options, recwarn):
    ASRNN(2, 6, **options)
    assert not [w for w in recwarn if "saturation" in str(w.message)]


@pytest.mark.parametrize("name, options, message", [
    ("asrnn", {"nonlinearity": "linear"}, "cell.nonlinearity='linear' applies to srn and orthrnn only, not cell 'asrnn'"),
    ("asrnn", {"uf_group": "slow"}, "unknown uf_group 'slow'"),
    ("asrnn", {"saturation_low": 1.0, "saturation_high": 0.5}, "saturation_low must be <= saturation_high"),
    ("asrnn", {"saturation_low": 0.0, "saturation_high": 0.0, "saturation_eps": 0.0}, "must start positive"),
    ("asrnn", {"recurrent_init": "orthogonal"}, "unknown recurrent_init 'orthogonal'"),
    ("orthrnn", {"orthogonal_map": "householder"}, "unknown orthogonal map 'householder'"),
    ("orthrnn", {"nonlinearity": "tanh"}, "unknown nonlinearity 'tanh'"),
    ("orthrnn", {"rebase_every": 0}, "rebase_every must be a positive"),
    ("asrnn", {"rebase_every": 100, "project_every": 0}, "project_every must be a positive number of rebases, got 0"),
    ("orthrnn", {"orientation": "B^T"}, r"unknown orientation 'B\^T'; choose from B, BT"),
])
def test_bad_options_get_one_line_errors(name, options, message):
    with pytest.raises(LongdepsError, match=message):
        make_cell(name, 1, 4, **options)
