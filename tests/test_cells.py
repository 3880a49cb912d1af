"""Cells against float64 references written from their equations, and against torch.nn."""

import pytest
import torch

from longdeps import LongdepsError
from longdeps.cells import GRU, LSTM, SRN, make_cell


def reference_srn(x, w_ih, w_hh, b, h0):
    h, out = h0, []
    for x_t in x:
        h = torch.tanh(x_t @ w_ih.T + h @ w_hh.T + b)
        out.append(h)
    return torch.stack(out)


def reference_lstm(x, w_ih, w_hh, b, h0, c0):
    h, c, out = h0, c0, []
    n = h0.shape[1]
    for x_t in x:
        z = x_t @ w_ih.T + h @ w_hh.T + b
        i, f, g, o = z[:, :n], z[:, n:2 * n], z[:, 2 * n:3 * n], z[:, 3 * n:]
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        out.append(h)
    return torch.stack(out), (h, c)


def reference_gru(x, w_ih, w_hh, b_ih, b_hh, h0):
    h, out = h0, []
    n = h0.shape[1]
    for x_t in x:
        a, b = x_t @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        r = torch.sigmoid(a[:, :n] + b[:, :n])
        z = torch.sigmoid(a[:, n:2 * n] + b[:, n:2 * n])
        cand = torch.tanh(a[:, 2 * n:] + r * b[:, 2 * n:])
        h = (1 - z) * cand + z * h
        out.append(h)
    return torch.stack(out)


def core_of(cell):
    return {SRN: lambda: cell.rnn, LSTM: lambda: cell.lstm, GRU: lambda: cell.gru}[type(cell)]()


def params_of(cell):
    core = core_of(cell)
    return core.weight_ih_l0, core.weight_hh_l0, core.bias_ih_l0 + core.bias_hh_l0


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("name", ["srn", "lstm", "gru"])
def test_forward_and_gradients_match_float64_reference(name, native, device):
    torch.manual_seed(0)
    cell = make_cell(name, 3, 6, native=native, recurrent_init="orthogonal").double().to(device)
    with torch.no_grad():  # non-zero biases so that the bias path is checked too
        for p in cell.parameters():
            if p.dim() == 1:
                p.uniform_(-0.5, 0.5)
    x = torch.randn(12, 4, 3, dtype=torch.float64).to(device)
    out, state = cell(x)
    w_ih, w_hh, b = params_of(cell)
    zeros = torch.zeros(4, 6, dtype=torch.float64, device=device)
    if name == "srn":
        ref = reference_srn(x, w_ih, w_hh, b, zeros)
        assert torch.allclose(state, ref[-1], atol=1e-12)
    elif name == "gru":
        core = cell.gru
        ref = reference_gru(x, core.weight_ih_l0, core.weight_hh_l0, core.bias_ih_l0, core.bias_hh_l0, zeros)
        assert torch.allclose(state, ref[-1], atol=1e-12)
    else:
        ref, (h, c) = reference_lstm(x, w_ih, w_hh, b, zeros, zeros)
        assert torch.allclose(state[1], c, atol=1e-12)
    assert torch.allclose(out, ref, atol=1e-12)
    weights = torch.randn_like(ref)
    params = list(cell.parameters())
    got = torch.autograd.grad((out * weights).sum(), params)
    want = torch.autograd.grad((ref * weights).sum(), params)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, atol=1e-10)


def test_srn_equals_torch_rnn_with_same_weights(device):
    torch.manual_seed(1)
    cell = SRN(2, 5, recurrent_init="orthogonal", native=False).to(device)
    native = torch.nn.RNN(2, 5).to(device)
    native.load_state_dict({k.removeprefix("rnn."): v for k, v in cell.state_dict().items()})
    x = torch.randn(30, 3, 2).to(device)
    h0 = torch.randn(3, 5).to(device)
    out, h = cell(x, h0[None])
    want, h_n = native(x, h0[None])
    assert torch.allclose(out, want, atol=1e-6)
    assert h.shape == h_n.shape and torch.allclose(h, h_n, atol=1e-6)


def test_gru_equals_torch_gru_with_same_weights(device):
    torch.manual_seed(5)
    cell = GRU(2, 5, recurrent_init="orthogonal", native=False).to(device)
    with torch.no_grad():
        for p in cell.parameters():
            if p.dim() == 1:
                p.uniform_(-0.5, 0.5)
    native = torch.nn.GRU(2, 5).to(device)
    native.load_state_dict({k.removeprefix("gru."): v for k, v in cell.state_dict().items()})
    x, h0 = torch.randn(30, 3, 2).to(device), torch.randn(3, 5).to(device)
    out, h = cell(x, h0[None])
    want, h_n = native(x, h0[None])
    assert torch.allclose(out, want, atol=1e-6) and h.shape == h_n.shape and torch.allclose(h, h_n, atol=1e-6)


def test_lstm_equals_torch_lstm_with_same_weights(device):
    torch.manual_seed(2)
    cell = LSTM(2, 5, recurrent_init="identity", native=False).to(device)
    native = torch.nn.LSTM(2, 5).to(device)
    native.load_state_dict({k.removeprefix("lstm."): v for k, v in cell.state_dict().items()})
    x = torch.randn(30, 3, 2).to(device)
    state = (torch.randn(3, 5).to(device), torch.randn(3, 5).to(device))
    out, (h, c) = cell(x, (state[0][None], state[1][None]))
    want, (h_n, c_n) = native(x, (state[0][None], state[1][None]))
    assert torch.allclose(out, want, atol=1e-6)
    assert c.shape == c_n.shape and torch.allclose(c, c_n, atol=1e-6)


@pytest.mark.parametrize("name", ["srn", "lstm", "gru"])
def test_step_unroll_and_batch_first_agree(name, device):
    torch.manual_seed(3)
    cell = make_cell(name, 3, 4).to(device)
    x = torch.randn(7, 2, 3).to(device)
    out, final = cell(x)
    state = cell.initial_state(2)
    for t, x_t in enumerate(x):
        state = cell.step(x_t, state, t)
        assert torch.allclose(cell.hidden(state), out[t], atol=1e-6)
    cell.batch_first = True
    out_bf, _ = cell(x.transpose(0, 1))
    assert out_bf.shape == (2, 7, 4)
    assert torch.allclose(out_bf.transpose(0, 1), out, atol=1e-6)


def test_initialisations():
    torch.manual_seed(4)
    lstm = LSTM(1, 8, recurrent_init="identity", forget_bias=1.0)
    w = lstm.lstm.weight_hh_l0
    assert torch.equal(w[16:24], torch.eye(8))
    others = torch.cat([w[:16], w[24:]])
    assert torch.allclose(others.T @ others, torch.eye(8), atol=1e-5)
    bias = lstm.lstm.bias_ih_l0 + lstm.lstm.bias_hh_l0
    assert torch.equal(bias[8:16], torch.ones(8)) and torch.equal(bias[:8], torch.zeros(8))
    srn = SRN(3, 8, recurrent_init="orthogonal", input_init="xavier")
    assert torch.allclose(srn.rnn.weight_hh_l0.T @ srn.rnn.weight_hh_l0, torch.eye(8), atol=1e-5)
    assert srn.rnn.weight_ih_l0.abs().max() <= (6 / 11) ** 0.5
    assert torch.equal(SRN(1, 8, recurrent_init="identity").rnn.weight_hh_l0, torch.eye(8))


def test_bad_input_gets_one_line_errors():
    cell = make_cell("lstm", 3, 4)
    with pytest.raises(LongdepsError, match=r"input_size=3, got \(5, 2, 2\)"):
        cell(torch.randn(5, 2, 2))
    x = torch.randn(5, 2, 3)
    x[2, 1, 0] = float("nan")
    with pytest.raises(LongdepsError, match="non-finite"):
        cell(x)
    with pytest.raises(LongdepsError, match="unknown cell 'gruu'"):
        make_cell("gruu", 1, 4)
    with pytest.raises(LongdepsError, match="^cell.forget_bias=1.0 applies to lstm and bn-lstm only, not cell 'srn'$"):
        make_cell("srn", 1, 4, forget_bias=1.0)
    with pytest.raises(LongdepsError, match="unknown initialisation 'ortho'"):
        make_cell("srn", 1, 4, recurrent_init="ortho")
    with pytest.raises(LongdepsError, match="hidden_size must be a positive integer, got 0"):
        make_cell("srn", 1, 0)
