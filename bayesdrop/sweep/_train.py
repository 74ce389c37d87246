r"""Training a :class:`~bayesdrop.nn.BatchedMLP` on per-model regression data.

Each model minimises its own loss on its own minibatches; the step sums the models' losses
(whose gradients do not mix) and applies Adam elementwise with a per-model step count, so
training ``M`` models at once gives what training them one by one would (with other random
draws). The losses are the reference implementations':

* MC dropout (Gal & Ghahramani, 2016), homoscedastic with precision :math:`\tau`:

  .. math:: \frac{1}{|B|}\sum_{n\in B} (y_n - \hat y_n)^2 + \lambda \sum_k \lVert W_k\rVert^2,
     \qquad \lambda = \frac{(1-p)\,l^2}{2N\tau};

* Concrete Dropout (Gal, Hron & Kendall, 2017), heteroscedastic head :math:`(\mu, s)`:

  .. math:: \frac{1}{|B|}\sum_{n\in B} \left(e^{-s_n}(y_n-\mu_n)^2 + s_n\right)
     + \sum_k \left(\frac{l^2}{N}\frac{\lVert W_k\rVert^2}{1-p_k}
     + \frac{2}{N} K_k \big(p_k\log p_k + (1-p_k)\log(1-p_k)\big)\right).

  With ``learn_noise=True`` and one output, :math:`s` is instead one learned log noise
  variance per network (homoscedastic, precision learned rather than searched).

Both are the negative ELBO per point times a constant (2/τ resp. 2), up to additive constants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from bayesdrop import functional as BF
from bayesdrop._validation import check_positive, check_positive_int, fail
from bayesdrop.functional import batched as BB
from bayesdrop.nn._batched import BatchedMLP
from bayesdrop.sweep._data import RegressionBatch

__all__ = ["BatchedAdam", "fit_regression"]


class BatchedAdam:
    """Adam over parameters whose first dimension indexes independent models.

    ``step(active)`` updates only the models where ``active`` is true, each with its own step
    count, so a model that saw no data in a step is left untouched (also its moments). The
    update is torch's :class:`torch.optim.Adam` without weight decay.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.sweep import BatchedAdam
    >>> w = torch.nn.Parameter(torch.ones(2, 3))
    >>> opt = BatchedAdam([w], lr=0.1)
    >>> w.grad = torch.ones(2, 3)
    >>> opt.step(torch.tensor([True, False]))
    >>> [round(v, 4) for v in w[:, 0].tolist()]
    [0.9, 1.0]
    """

    def __init__(
        self,
        params: Sequence[torch.nn.Parameter],
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.lr = check_positive("lr", lr)
        self.betas, self.eps = betas, eps
        first = self.params[0]
        self.steps = torch.zeros(first.shape[0], dtype=first.dtype, device=first.device)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: Tensor | None = None) -> None:
        b1, b2 = self.betas
        on = None if active is None or bool(active.all()) else active.to(self.steps.dtype)
        self.steps += 1.0 if on is None else on
        t = self.steps.clamp(min=1.0)
        step_size = self.lr / (1.0 - b1**t) * (1.0 if on is None else on)
        root_c2 = torch.sqrt(1.0 - b2**t)
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=False):
            if p.grad is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            g = p.grad
            if on is None:
                m.lerp_(g, 1.0 - b1)
                v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            else:
                keep = on.reshape(shape)
                m.add_(keep * (1.0 - b1) * (g - m))
                v.add_(keep * (1.0 - b2) * (g * g - v))
            denom = v.sqrt().div_(root_c2.reshape(shape)).add_(self.eps)
            p.addcdiv_(m * step_size.reshape(shape), denom, value=-1.0)


def _loss(net: BatchedMLP, out: Tensor, yb: Tensor, valid: Tensor, reg: Tensor) -> Tensor:
    counts = valid.sum(1).clamp(min=1)
    if net.dropout == "concrete":
        mean, log_var = out[..., 0], net.noise_log_variance(out)
        point = torch.exp(-log_var) * (yb - mean).pow(2) + log_var
    else:
        point = (yb - out[..., 0]).pow(2)
    data = (point * valid).sum(1) / counts
    return (data + reg * valid.any(1)).sum()


def _regularizer(net: BatchedMLP, weight_decay: Tensor | None, num_data: Tensor) -> Tensor:
    sq = net.kernel_sq_norms()
    if net.dropout == "bernoulli":
        assert weight_decay is not None  # set by the caller for Bernoulli dropout
        return weight_decay * sq.sum(1)
    rates = net.drop_rates()
    wr, dr = net.length_scale**2 / num_data, 2.0 / num_data
    terms = [
        BF.concrete_regularization(sq[:, k], rates[:, k], net.widths[k], wr, dr)
        for k in range(net.num_layers)
    ]
    return torch.stack(terms, 1).sum(1)


def _check(net: BatchedMLP, data: RegressionBatch, tau: Tensor | float | None) -> Tensor | None:
    if not isinstance(net, BatchedMLP):
        fail("net", "a bayesdrop.nn.BatchedMLP", type(net).__name__, type_error=True)
    if net.num_models != data.num_models or net.widths[0] != data.x.shape[2]:
        fail(
            "data",
            f"{net.num_models} sets of {net.widths[0]} features",
            f"{data.num_models} sets of {data.x.shape[2]}",
        )
    want = 2 if net.dropout == "concrete" and net.log_noise is None else 1
    if net.widths[-1] != want:
        fail(
            "net",
            f"{want} output(s) for dropout={net.dropout!r}",
            net.widths[-1],
            "Concrete nets predict (mean, log-variance) unless learn_noise=True; MC nets the mean.",
        )
    if net.dropout == "concrete":
        return None
    if tau is None:
        fail("tau", "given for MC dropout (it sets the weight decay)", None)
    tau_t = torch.as_tensor(tau, dtype=data.x.dtype, device=data.x.device).expand(net.num_models)
    if not bool((tau_t > 0).all()):
        fail("tau", "positive", tau_t.tolist())
    return BB.mc_dropout_weight_decay(net.p, tau_t, data.num_data.to(tau_t), net.length_scale)


def fit_regression(
    net: BatchedMLP,
    data: RegressionBatch,
    *,
    epochs: int,
    tau: Tensor | float | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    progress: Callable[[int], None] | None = None,
) -> BatchedMLP:
    """Train every model of ``net`` on its own training set with Adam (see the module doc).

    An epoch shuffles each model's data and walks through it in minibatches of ``batch_size``
    (the last one smaller), as Keras' ``fit`` does. Models with fewer points than the largest
    skip the steps beyond their data.

    Parameters
    ----------
    net : BatchedMLP
        ``dropout="bernoulli"`` with one output (MC dropout, homoscedastic) or
        ``dropout="concrete"`` with two outputs (mean and log-variance), or one output and
        ``learn_noise=True``.
    data : RegressionBatch
        One standardised training set per model.
    epochs : int
    tau : float or Tensor of shape (M,), optional
        Model precision of each MC-dropout model (sets its weight decay); unused for Concrete.
    batch_size : int, default 128
    lr : float, default 1e-3
        Adam's learning rate (Keras' default, as in the reference code).
    progress : callable, optional
        Called with the epoch number after every epoch.

    Returns
    -------
    BatchedMLP
        ``net``, trained in place and put in eval mode.

    Examples
    --------
    >>> import torch
    >>> import bayesdrop
    >>> from bayesdrop.sweep import RegressionBatch, fit_regression
    >>> x = torch.linspace(-2, 2, 64)[:, None]
    >>> data = RegressionBatch.from_arrays([x, x], [x[:, 0] ** 2, -x[:, 0]])
    >>> net = bayesdrop.nn.BatchedMLP(2, 1, (32,), 1, p=[0.01, 0.05])
    >>> mse_before = (net(data.x)[..., 0] - data.y).pow(2).mean(1)
    >>> net = fit_regression(net, data, epochs=100, tau=10.0, batch_size=32, lr=1e-2)
    >>> mse_after = (net(data.x)[..., 0] - data.y).pow(2).mean(1)
    >>> bool((mse_after < 0.3 * mse_before).all())
    True
    """
    weight_decay = _check(net, data, tau)
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    params = list(net.parameters())
    opt = BatchedAdam(params, lr=lr)
    num_models, n_max = data.y.shape
    device = data.x.device
    rows = torch.arange(num_models, device=device)[:, None]
    num_data = data.num_data.to(data.x.dtype)
    padded = data.num_data[:, None] <= torch.arange(n_max, device=device)
    net.train()
    for epoch in range(epochs):
        keys = torch.rand(num_models, n_max, device=device).masked_fill_(padded, 2.0)
        order = keys.argsort(dim=1)
        for start in range(0, n_max, batch_size):
            idx = order[:, start : start + batch_size]
            pos = torch.arange(start, start + idx.shape[1], device=device)
            valid = (pos < data.num_data[:, None]).to(data.x.dtype)
            opt.zero_grad()
            out = net(data.x[rows, idx])
            loss = _loss(
                net, out, data.y[rows, idx], valid, _regularizer(net, weight_decay, num_data)
            )
            loss.backward()
            opt.step(valid.any(1))
        if progress is not None:
            progress(epoch + 1)
    if not all(bool(torch.isfinite(p).all()) for p in params):
        fail("lr", "small enough for stable training", "non-finite weights after training")
    return net.eval()
