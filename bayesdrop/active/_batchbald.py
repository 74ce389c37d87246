r"""BatchBALD: greedy batch acquisition by the joint mutual information (Kirsch et al. 2019).

For a batch :math:`x_{1:n}` and sampled probabilities :math:`p_s(y \mid x)` drawn with the SAME
weights :math:`\omega_s` for every point (consistent masks, see :func:`consistent_masks`):

.. math::

    a(x_{1:n}) = \mathcal H[y_{1:n}] - \sum_{i=1}^n \frac1S \sum_s \mathcal H[p_s(y \mid x_i)],
    \qquad p(\hat y_{1:n}) = \frac1S \sum_s \prod_i p_s(\hat y_i \mid x_i) .

Points are added greedily, each time the one that maximises :math:`a` (a
:math:`1 - 1/e` approximation, the function being submodular). Writing the joint of the batch
and a candidate as :math:`p(\hat y_{1:n}) \, q(y \mid \hat y_{1:n})` with the posterior-weighted
prediction :math:`q(y \mid \hat y) = \sum_s w_s(\hat y)\, p_s(y \mid x)`,
:math:`w_s(\hat y) \propto \prod_i p_s(\hat y_i \mid x_i)`:

.. math::

    \mathcal H[y_{1:n}, y] = \mathcal H[y_{1:n}]
        + \sum_{\hat y} p(\hat y_{1:n})\, \mathcal H[q(\cdot \mid \hat y_{1:n})] .

The sum over :math:`\hat y` runs exactly over the :math:`C^n` configurations while they are at
most ``num_configs``; beyond, over ``num_configs`` configurations drawn from :math:`p(\hat y)`
(draw :math:`s`, then each :math:`\hat y_i \sim p_s`), each with weight :math:`1/M`: the
importance-sampled estimate of the paper with the proposal equal to the joint. The weights
:math:`w_s` are kept normalised in log space, so long batches do not underflow. Candidates are
scored in chunks of the pool: memory :math:`O(\text{chunk} \cdot M \cdot C)`, never
:math:`S \times N \times C^n`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from bayesdrop import functional as BF
from bayesdrop._validation import check_positive_int
from bayesdrop.active._batch import Acquisition, _generator, check_k
from bayesdrop.active._scores import check_samples

__all__ = ["batchbald", "joint_entropy"]

_TINY = 1e-40
# Elements of one (chunk, M, C) block of posterior-weighted predictions (32 MB in float32).
_BLOCK = 1 << 23


@dataclass
class _Configs:
    """Log-products ``(S, M)`` of the chosen points' probabilities, per configuration."""

    log_prod: Tensor  # (S, M) float64
    exact: bool
    sample_of: Tensor | None = None  # (M,) the sample each drawn configuration came from

    def weights(self) -> tuple[Tensor, Tensor, float]:
        """Posterior weights ``w (S, M)``, configuration weights ``alpha (M,)``, ``H[batch]``."""
        num_samples = self.log_prod.shape[0]
        log_p = torch.logsumexp(self.log_prod, 0) - math.log(num_samples)  # (M,)
        w = torch.softmax(self.log_prod, 0)
        if self.exact:
            alpha = log_p.exp()
            return w, alpha, float(-(alpha * log_p).sum())
        alpha = torch.full_like(log_p, 1.0 / log_p.shape[0])
        return w, alpha, float(-log_p.mean())


def _log(probs: Tensor) -> Tensor:
    return probs.double().clamp_min(_TINY).log()


def _draw(configs: _Configs, log_point: Tensor, generator: torch.Generator) -> Tensor:
    """Extend every drawn configuration by a label of the new point ``log_point (S, C)``."""
    assert configs.sample_of is not None
    labels = torch.multinomial(log_point[configs.sample_of].exp(), 1, generator=generator)
    return configs.log_prod + log_point[:, labels[:, 0]]


class _State:
    """The greedy batch so far: chosen points' log-probabilities and the configurations."""

    def __init__(self, num_samples: int, num_configs: int, seed: int | None) -> None:
        self.num_configs = num_configs
        self.generator = _generator(seed)
        self.points: list[Tensor] = []  # (S, C) log-probabilities of each chosen point
        self.configs = _Configs(torch.zeros(num_samples, 1, dtype=torch.float64), exact=True)

    def add(self, chosen: Tensor) -> None:
        log_point = _log(chosen)
        self.points.append(log_point)
        size = self.configs.log_prod.shape[1] * log_point.shape[1]
        if self.configs.exact and size <= self.num_configs:
            joint = self.configs.log_prod[:, :, None] + log_point[:, None, :]
            self.configs = _Configs(joint.reshape(log_point.shape[0], size), exact=True)
            return
        if self.configs.exact:  # switch to drawn configurations, replaying the batch so far
            num_samples = log_point.shape[0]
            sample_of = torch.randint(num_samples, (self.num_configs,), generator=self.generator)
            self.configs = _Configs(
                torch.zeros(num_samples, self.num_configs, dtype=torch.float64),
                exact=False,
                sample_of=sample_of,
            )
            for point in self.points:
                self.configs.log_prod = _draw(self.configs, point, self.generator)
            return
        self.configs.log_prod = _draw(self.configs, log_point, self.generator)


def _candidate_entropy(configs: _Configs, probs: Tensor) -> Tensor:
    """:math:`\\sum_m \\alpha_m H[q(\\cdot \\mid \\hat y_m, x_n)]` for every point, chunked."""
    w, alpha, _ = configs.weights()
    num_samples, num_points, num_classes = probs.shape
    w32, alpha32 = w.to(probs.dtype), alpha.to(probs.dtype)
    flat = probs.reshape(num_samples, num_points * num_classes)
    chunk = max(1, _BLOCK // (w.shape[1] * num_classes))
    out = []
    for start in range(0, num_points, chunk):
        block = flat[:, start * num_classes : (start + chunk) * num_classes]
        q = (w32.T @ block).reshape(w.shape[1], -1, num_classes)  # (M, n, C)
        out.append(alpha32 @ BF.entropy(q.clamp_min(0.0)))
    return torch.cat(out).double()


def batchbald(
    samples: Tensor,
    k: int,
    *,
    num_configs: int = 1000,
    seed: int | None = None,
) -> Acquisition:
    r"""Choose ``k`` points greedily by the joint mutual information (BatchBALD).

    Parameters
    ----------
    samples : Tensor (S, N, C)
        Sampled probabilities of the pool, drawn with consistent masks (the same dropout
        mask for every point in sample :math:`s`); :func:`bayesdrop.active.score_pool` with
        ``method="batchbald"`` draws them so. With independent masks per point the joint
        factorises and BatchBALD degrades to top-k BALD plus noise.
    k : int
        The batch size, in ``1..N``.
    num_configs : int, default 1000
        The largest number of label configurations :math:`M` summed exactly; beyond it,
        :math:`M` configurations are drawn (the paper draws up to 10,000 on a GPU). Time per
        step is :math:`O(N S M C)`.
    seed : int, optional
        Seeds the drawn configurations.

    Returns
    -------
    Acquisition
        ``indices`` in the order chosen; ``scores[i]`` is the joint mutual information of
        the first ``i + 1`` points (in nats), so ``scores[0]`` is the top BALD score.

    References
    ----------
    Kirsch, van Amersfoort & Gal (2019), "BatchBALD: Efficient and Diverse Batch Acquisition
    for Deep Bayesian Active Learning", NeurIPS.

    Examples
    --------
    >>> import torch
    >>> import bayesdrop
    >>> from bayesdrop.active import batchbald
    >>> a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # (S=4, C=2)
    >>> b = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])
    >>> pool = torch.stack([a, a, b], dim=1)  # (S, N=3, C): an exact copy of a at 1
    >>> bayesdrop.active.bald(pool)  # top-k BALD would take both copies
    tensor([0.6931, 0.6931, 0.3681])
    >>> batchbald(pool, 2).indices  # the copy adds nothing once a is known
    tensor([0, 2])
    """
    samples = check_samples(samples)
    k = check_k(k, samples.shape[1])
    num_configs = check_positive_int("num_configs", num_configs)
    if samples.dtype in (torch.float16, torch.bfloat16):
        samples = samples.float()
    conditional = BF.expected_entropy(samples).double()  # (N,)
    state = _State(samples.shape[0], num_configs, seed)
    chosen: list[int] = []
    values: list[float] = []
    taken = torch.zeros(samples.shape[1], dtype=torch.bool)
    for _ in range(k):
        joint = _candidate_entropy(state.configs, samples) + state.configs.weights()[2]
        gain = joint - conditional - (conditional[chosen].sum() if chosen else 0.0)
        gain[taken] = -math.inf
        best = int(torch.argmax(gain))
        chosen.append(best)
        values.append(float(gain[best]))
        taken[best] = True
        state.add(samples[:, best, :])
    return Acquisition(
        indices=torch.tensor(chosen, dtype=torch.long),
        scores=torch.tensor(values, dtype=torch.float64),
        method="batchbald",
    )


def joint_entropy(
    samples: Tensor, *, num_configs: int | None = None, seed: int | None = None
) -> float:
    r"""Joint entropy :math:`\mathcal H[y_1, \dots, y_N]` of all points of ``samples (S, N, C)``.

    Exact (a sum over the :math:`C^N` configurations) when ``num_configs`` is None, else
    estimated from ``num_configs`` configurations drawn from the joint.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.active import joint_entropy
    >>> s = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    >>> round(joint_entropy(s), 6)  # two labels that always agree: one bit, log 2
    0.693147
    """
    samples = check_samples(samples)
    limit = samples.shape[-1] ** samples.shape[1] if num_configs is None else num_configs
    state = _State(samples.shape[0], check_positive_int("num_configs", limit), seed)
    for i in range(samples.shape[1] - 1):
        state.add(samples[:, i, :])
    last = samples[:, -1:, :]
    return float(_candidate_entropy(state.configs, last)[0] + state.configs.weights()[2])
