// A hand-fused BN-LSTM sequence kernel, for benchmarks/bn_lstm_floor.py --kernel only.
//
// It answers "what would a fused C++ kernel give?" for the speed target of
// BN-LSTM (<= 2x torch.nn.LSTM): the whole time loop, forward and backward,
// runs in C++; the batch norms of the recurrent term and of the cell, the
// gates and the cell update are plain loops over the (B, 4H) and (B, H)
// blocks of a step; sigmoid and tanh are ATen's vectorised kernels; the two
// matrix products of a step go through oneDNN with the weight packed once per
// sequence (float32; at::mm otherwise). The input term BN(W_x x_t) + b is
// computed by the caller for all steps at once, as in the library's cell.
//
// Maths and notation as in longdeps/cells/bn_lstm.py; batch statistics with
// the biased variance, as in training. The library does not use this file.

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <cmath>
#include <vector>

namespace {

// x W^T for x (B, K) and weight (N, K): oneDNN with the packed weight when given, else at::mm.
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& packed) {
  if (!packed.defined()) return at::mm(x, weight.t());
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mkldnn::_linear_pointwise", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                         c10::string_view, c10::List<std::optional<at::Scalar>>,
                                         std::optional<c10::string_view>)>();
  return op.call(x, packed, std::nullopt, "none", c10::List<std::optional<at::Scalar>>(), std::string_view(""));
}

// Batch norm of every column of x (rows, cols), row-major, with batch statistics (biased variance):
// xhat = (x - mean) / sqrt(var + eps) and y = gamma xhat + shift, where the shift is read at
// shift[b * shift_stride + j] (stride 0: one value a column). Writes var (cols,), xhat and y.
template <typename T>
void batch_norm(const T* __restrict__ x, int64_t rows, int64_t cols, const T* __restrict__ gamma,
                const T* __restrict__ shift, int64_t shift_stride, T eps, T* __restrict__ var,
                T* __restrict__ xhat, T* __restrict__ y) {
  std::vector<T> mean(cols, T(0)), invstd(cols);
  for (int64_t b = 0; b < rows; ++b)
    for (int64_t j = 0; j < cols; ++j) mean[j] += x[b * cols + j];
  for (int64_t j = 0; j < cols; ++j) {
    mean[j] /= T(rows);
    var[j] = T(0);
  }
  for (int64_t b = 0; b < rows; ++b)
    for (int64_t j = 0; j < cols; ++j) {
      T d = x[b * cols + j] - mean[j];
      var[j] += d * d;
    }
  for (int64_t j = 0; j < cols; ++j) {
    var[j] /= T(rows);
    invstd[j] = T(1) / std::sqrt(var[j] + eps);
  }
  for (int64_t b = 0; b < rows; ++b)
    for (int64_t j = 0; j < cols; ++j) {
      int64_t k = b * cols + j;
      xhat[k] = (x[k] - mean[j]) * invstd[j];
      y[k] = gamma[j] * xhat[k] + shift[b * shift_stride + j];
    }
}

// The backward of batch_norm: dx from dy (both (rows, cols)), with gamma's (and, if given, the
// shift's) gradients added to grad_gamma and grad_shift (cols,).
template <typename T>
void batch_norm_backward(const T* __restrict__ dy, const T* __restrict__ xhat, const T* __restrict__ var,
                         const T* __restrict__ gamma, int64_t rows, int64_t cols, T eps, T* __restrict__ dx,
                         T* __restrict__ grad_gamma, T* __restrict__ grad_shift) {
  std::vector<T> sum_dy(cols, T(0)), sum_dy_xhat(cols, T(0)), scale(cols);
  for (int64_t b = 0; b < rows; ++b)
    for (int64_t j = 0; j < cols; ++j) {
      sum_dy[j] += dy[b * cols + j];
      sum_dy_xhat[j] += dy[b * cols + j] * xhat[b * cols + j];
    }
  const T n = T(rows);
  for (int64_t j = 0; j < cols; ++j) {
    grad_gamma[j] += sum_dy_xhat[j];
    if (grad_shift) grad_shift[j] += sum_dy[j];
    scale[j] = gamma[j] / (n * std::sqrt(var[j] + eps));
  }
  for (int64_t b = 0; b < rows; ++b)
    for (int64_t j = 0; j < cols; ++j) {
      int64_t k = b * cols + j;
      dx[k] = scale[j] * (n * dy[k] - sum_dy[j] - xhat[k] * sum_dy_xhat[j]);
    }
}

// What the forward keeps for the backward, every entry (T, B, .) or (T, .).
struct Saved {
  at::Tensor outputs, xhat_h, gates, cells, xhat_c, tanh_c, var_h, var_c;
};

template <typename T>
void forward_steps(const at::Tensor& u, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& weight_hh,
                   const at::Tensor& packed, const T* gamma_h, const T* gamma_c, const T* beta_c, T eps,
                   Saved& s) {
  const int64_t steps = u.size(0), batch = u.size(1), G = u.size(2), H = G / 4;
  at::Tensor z = at::empty({batch, G}, u.options());    // gate pre-activations
  at::Tensor z_c = at::empty({batch, H}, u.options());  // BN(c_t)
  at::Tensor h = h0;
  const T* c_prev = c0.data_ptr<T>();
  for (int64_t t = 0; t < steps; ++t) {
    // i, f, g, o pre-activations: BN(h_{t-1} W_hh^T; gamma_h) + u_t
    at::Tensor gh = linear(h, weight_hh, packed);
    batch_norm(gh.data_ptr<T>(), batch, G, gamma_h, u[t].data_ptr<T>(), G, eps, s.var_h[t].data_ptr<T>(),
               s.xhat_h[t].data_ptr<T>(), z.data_ptr<T>());
    at::Tensor gates = s.gates[t];
    at::sigmoid_out(gates, z);
    at::Tensor candidate = gates.narrow(1, 2 * H, H);
    at::tanh_out(candidate, z.narrow(1, 2 * H, H));
    // c_t = f c_{t-1} + i g
    const T* a = gates.data_ptr<T>();
    T* c = s.cells[t].data_ptr<T>();
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t k = 0; k < H; ++k)
        c[b * H + k] = a[b * G + H + k] * c_prev[b * H + k] + a[b * G + k] * a[b * G + 2 * H + k];
    // h_t = o tanh(BN(c_t; gamma_c, beta_c))
    batch_norm(c, batch, H, gamma_c, beta_c, 0, eps, s.var_c[t].data_ptr<T>(), s.xhat_c[t].data_ptr<T>(),
               z_c.data_ptr<T>());
    at::Tensor tanh_c = s.tanh_c[t];
    at::tanh_out(tanh_c, z_c);
    const T* th = tanh_c.data_ptr<T>();
    T* hp = s.outputs[t].data_ptr<T>();
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t k = 0; k < H; ++k) hp[b * H + k] = a[b * G + 3 * H + k] * th[b * H + k];
    h = s.outputs[t];
    c_prev = c;
  }
}

std::vector<at::Tensor> bn_lstm_forward(const at::Tensor& u, const at::Tensor& h0, const at::Tensor& c0,
                                        const at::Tensor& weight_hh, const at::Tensor& gamma_h,
                                        const at::Tensor& gamma_c, const at::Tensor& beta_c, double eps,
                                        const std::optional<at::Tensor>& packed) {
  const int64_t steps = u.size(0), batch = u.size(1), G = u.size(2), H = G / 4;
  auto o = u.options();
  Saved s{at::empty({steps, batch, H}, o), at::empty({steps, batch, G}, o), at::empty({steps, batch, G}, o),
          at::empty({steps, batch, H}, o), at::empty({steps, batch, H}, o), at::empty({steps, batch, H}, o),
          at::empty({steps, G}, o),        at::empty({steps, H}, o)};
  at::Tensor gh = gamma_h.contiguous(), gc = gamma_c.contiguous(), bc = beta_c.contiguous();
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "bn_lstm_forward", [&] {
    forward_steps<scalar_t>(u.contiguous(), h0.contiguous(), c0.contiguous(), weight_hh,
                            packed.value_or(at::Tensor()), gh.data_ptr<scalar_t>(), gc.data_ptr<scalar_t>(),
                            bc.data_ptr<scalar_t>(), scalar_t(eps), s);
  });
  return {s.outputs, s.xhat_h, s.gates, s.cells, s.xhat_c, s.tanh_c, s.var_h, s.var_c};
}

// Gradients, in place: grad_u (T, B, 4H), grad_gh (T, B, 4H) (of h_{t-1} W_hh^T), grad_h and grad_c (B, H)
// (those of h_0 and c_0 at the end), and the sums over steps of grad_gamma_h, grad_gamma_c, grad_beta_c.
template <typename T>
void backward_steps(const at::Tensor& grad_outputs, const at::Tensor& c0, const at::Tensor& weight_hh_t,
                    const at::Tensor& packed_t, const T* gamma_h, const T* gamma_c, T eps, const Saved& s,
                    at::Tensor& grad_u, at::Tensor& grad_gh, at::Tensor& grad_h, at::Tensor& grad_c,
                    T* grad_gamma_h, T* grad_gamma_c, T* grad_beta_c) {
  const int64_t steps = s.gates.size(0), batch = s.gates.size(1), G = s.gates.size(2), H = G / 4;
  std::vector<T> grad_y(batch * H), grad_c_in(batch * H);
  T* dc = grad_c.data_ptr<T>();
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* a = s.gates[t].data_ptr<T>();
    const T* th = s.tanh_c[t].data_ptr<T>();
    const T* c_prev = t > 0 ? s.cells[t - 1].data_ptr<T>() : c0.data_ptr<T>();
    T* dh = grad_h.data_ptr<T>();
    T* dz = grad_u[t].data_ptr<T>();
    if (grad_outputs.defined()) {
      const T* go = grad_outputs[t].data_ptr<T>();
      for (int64_t i = 0; i < batch * H; ++i) dh[i] += go[i];
    }
    // output gate, and the gradient of y = BN(c_t) through tanh
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t k = 0; k < H; ++k) {
        int64_t i = b * H + k;
        T o = a[b * G + 3 * H + k];
        dz[b * G + 3 * H + k] = dh[i] * th[i] * o * (T(1) - o);
        grad_y[i] = dh[i] * o * (T(1) - th[i] * th[i]);
      }
    // through BN(c_t), then the cell update
    batch_norm_backward(grad_y.data(), s.xhat_c[t].data_ptr<T>(), s.var_c[t].data_ptr<T>(), gamma_c, batch, H, eps,
                        grad_c_in.data(), grad_gamma_c, grad_beta_c);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t k = 0; k < H; ++k) {
        int64_t i = b * H + k;
        T dct = dc[i] + grad_c_in[i];
        T ig = a[b * G + k], fg = a[b * G + H + k], gg = a[b * G + 2 * H + k];
        dz[b * G + k] = dct * gg * ig * (T(1) - ig);
        dz[b * G + H + k] = dct * c_prev[i] * fg * (T(1) - fg);
        dz[b * G + 2 * H + k] = dct * ig * (T(1) - gg * gg);
        dc[i] = dct * fg;
      }
    // through BN(h_{t-1} W_hh^T), then the matrix product: dL/dh_{t-1} = grad_gh W_hh
    batch_norm_backward(dz, s.xhat_h[t].data_ptr<T>(), s.var_h[t].data_ptr<T>(), gamma_h, batch, G, eps,
                        grad_gh[t].data_ptr<T>(), grad_gamma_h, static_cast<T*>(nullptr));
    grad_h = linear(grad_gh[t], weight_hh_t, packed_t);
  }
}

std::vector<at::Tensor> bn_lstm_backward(const std::optional<at::Tensor>& grad_outputs,
                                         const std::optional<at::Tensor>& grad_c_last, const at::Tensor& h0,
                                         const at::Tensor& c0, const at::Tensor& weight_hh,
                                         const at::Tensor& gamma_h, const at::Tensor& gamma_c, double eps,
                                         const std::optional<at::Tensor>& packed_t,
                                         at::TensorList saved) {
  Saved s{saved[0], saved[1], saved[2], saved[3], saved[4], saved[5], saved[6], saved[7]};
  const int64_t steps = s.gates.size(0), batch = s.gates.size(1), G = s.gates.size(2), H = G / 4;
  auto o = s.gates.options();
  at::Tensor grad_u = at::empty({steps, batch, G}, o), grad_gh = at::empty({steps, batch, G}, o);
  at::Tensor grad_h = at::zeros({batch, H}, o);
  at::Tensor grad_c = grad_c_last ? grad_c_last->contiguous().clone() : at::zeros({batch, H}, o);
  at::Tensor grad_gamma_h = at::zeros({G}, o), grad_gamma_c = at::zeros({H}, o), grad_beta_c = at::zeros({H}, o);
  at::Tensor gh = gamma_h.contiguous(), gc = gamma_c.contiguous();
  AT_DISPATCH_FLOATING_TYPES(o.dtype().toScalarType(), "bn_lstm_backward", [&] {
    backward_steps<scalar_t>(grad_outputs ? grad_outputs->contiguous() : at::Tensor(), c0.contiguous(),
                             weight_hh.t().contiguous(), packed_t.value_or(at::Tensor()),
                             gh.data_ptr<scalar_t>(), gc.data_ptr<scalar_t>(), scalar_t(eps), s, grad_u, grad_gh,
                             grad_h, grad_c, grad_gamma_h.data_ptr<scalar_t>(), grad_gamma_c.data_ptr<scalar_t>(),
                             grad_beta_c.data_ptr<scalar_t>());
  });
  // dL/dW_hh = sum_t grad_gh_t^T h_{t-1}: one product over all steps
  at::Tensor h_prev = at::cat({h0.unsqueeze(0), s.outputs.narrow(0, 0, steps - 1)}).view({steps * batch, H});
  at::Tensor grad_weight_hh = grad_gh.view({steps * batch, G}).t().mm(h_prev);
  return {grad_u, grad_h, grad_c, grad_weight_hh, grad_gamma_h, grad_gamma_c, grad_beta_c};
}

}  // namespace

TORCH_LIBRARY(longdeps_bench, m) {
  m.def("bn_lstm_forward(Tensor u, Tensor h0, Tensor c0, Tensor weight_hh, Tensor gamma_h, Tensor gamma_c, "
        "Tensor beta_c, float eps, Tensor? packed) -> Tensor[]");
  m.def("bn_lstm_backward(Tensor? grad_outputs, Tensor? grad_c, Tensor h0, Tensor c0, Tensor weight_hh, "
        "Tensor gamma_h, Tensor gamma_c, float eps, Tensor? packed_t, Tensor[] saved) -> Tensor[]");
}

// the packed weights are oneDNN tensors: one kernel for every backend
TORCH_LIBRARY_IMPL(longdeps_bench, CompositeExplicitAutograd, m) {
  m.impl("bn_lstm_forward", bn_lstm_forward);
  m.impl("bn_lstm_backward", bn_lstm_backward);
}
