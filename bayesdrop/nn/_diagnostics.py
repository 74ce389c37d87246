"""Watching Concrete Dropout's learned rates: their values, their trend, and their collapse.

On small data sets the Concrete Dropout objective can drive every learned rate towards 0 (the
UCI ``concrete`` set: about 1e-4 after 4000 epochs, still falling; ``benchmarks/README.md``).
The network is then close to a point estimate: its epistemic uncertainty vanishes while its
learned noise fits the training residuals. :class:`ConcreteRateMonitor` records the rates during
training and warns with a :class:`bayesdrop.ConcreteCollapseWarning` when one has fallen below
a threshold and is still falling; :func:`bayesdrop.mc_predict` warns when it is asked to predict
with a model whose learned rates have all collapsed.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from torch import nn

from bayesdrop._validation import check_module, check_positive, check_positive_int, fail
from bayesdrop._vocabulary import Likelihood
from bayesdrop.exceptions import ConcreteCollapseWarning
from bayesdrop.functional._kl import regularizer_constants
from bayesdrop.nn._concrete import ConcreteDropout

__all__ = [
    "COLLAPSE_THRESHOLD",
    "ConcreteRateMonitor",
    "RateReport",
    "collapsed_rates",
    "concrete_rates",
    "set_concrete_regularizers",
]

# A learned drop rate below this, and still falling, is reported as collapsed.
COLLAPSE_THRESHOLD = 1e-3


def concrete_rates(model: nn.Module) -> dict[str, float]:
    """The learned drop rate of every Concrete Dropout layer of ``model``, by module name.

    Examples
    --------
    >>> from torch import nn
    >>> import bayesdrop
    >>> from bayesdrop.nn import concrete_rates
    >>> model = nn.Sequential(bayesdrop.ConcreteDropout(nn.Linear(3, 4)), nn.ReLU())
    >>> {name: round(p, 6) for name, p in concrete_rates(model).items()}
    {'0': 0.1}
    """
    check_module("model", model)
    return {
        name or "(model)": float(m.p.detach())
        for name, m in model.named_modules()
        if isinstance(m, ConcreteDropout)
    }


def set_concrete_regularizers(
    model: nn.Module,
    num_data: int,
    *,
    tau: float = 1.0,
    likelihood: Likelihood = "gaussian",
    length_scale: float | None = None,
) -> dict[str, tuple[float, float]]:
    r"""Set every Concrete Dropout layer's :math:`\lambda_w, \lambda_p` for ``num_data`` points.

    The regularisers of :meth:`ConcreteDropout.regularization
    <bayesdrop.ConcreteDropout.regularization>` scale with :math:`1/N`
    (:func:`bayesdrop.regularizer_constants`): :math:`\lambda_w = s\,l^2/2`,
    :math:`\lambda_p = s` with :math:`s = 2/(\tau N)` for a Gaussian likelihood and
    :math:`1/N` for a categorical one. Where the training set grows (a bandit's history, an
    active-learning pool's labelled set), call this before each round of training: constants
    fixed at an early, small :math:`N` over-regularise later rounds by the growth factor.

    Parameters
    ----------
    model : nn.Module
        A model holding at least one :class:`bayesdrop.ConcreteDropout` (or spatial) layer.
    num_data : int
        The number of training points :math:`N` now.
    tau : float, default 1.0
        Model precision :math:`\tau` (Gaussian likelihood only).
    likelihood : {"gaussian", "categorical", "heteroscedastic"}
        The data term: mean squared error or mean cross-entropy.
    length_scale : float, optional
        The prior length-scale :math:`l`; by default each layer's own ``length_scale`` (the
        one its :meth:`~bayesdrop.ConcreteDropout.kl` uses).

    Returns
    -------
    dict
        ``{module name: (weight_regularizer, dropout_regularizer)}`` of the layers set.

    Examples
    --------
    >>> from torch import nn
    >>> import bayesdrop
    >>> from bayesdrop.nn import set_concrete_regularizers
    >>> model = nn.Sequential(bayesdrop.ConcreteDropout(nn.Linear(3, 4), length_scale=1e-2))
    >>> set_concrete_regularizers(model, 1000)  # 2/N and l**2/N for a Gaussian likelihood
    {'0': (1.0000000000000001e-07, 0.002)}
    >>> model[0].dropout_regularizer
    0.002
    """
    check_module("model", model)
    layers = [
        (n or "(model)", m) for n, m in model.named_modules() if isinstance(m, ConcreteDropout)
    ]
    if not layers:
        fail("model", "a model with ConcreteDropout layers", "none")
    if length_scale is not None:
        length_scale = check_positive("length_scale", length_scale)
    out = {}
    for name, layer in layers:
        scale = layer.length_scale if length_scale is None else length_scale
        consts = regularizer_constants(scale, num_data, tau=tau, likelihood=likelihood)
        layer.weight_regularizer = consts.weight_regularizer
        layer.dropout_regularizer = consts.dropout_regularizer
        out[name] = (consts.weight_regularizer, consts.dropout_regularizer)
    return out


def collapsed_rates(model: nn.Module, threshold: float = COLLAPSE_THRESHOLD) -> dict[str, float]:
    """The Concrete Dropout layers whose learned rate is below ``threshold``."""
    return {n: p for n, p in concrete_rates(model).items() if p < threshold}


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of log10(p) against the step (decades per step)."""
    if len(points) < 2:
        return 0.0
    xs = [s for s, _ in points]
    ys = [math.log10(max(p, 1e-300)) for _, p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return 0.0 if sxx == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


@dataclass(frozen=True)
class RateReport:
    """Learned rates at the last update and their trend.

    Attributes
    ----------
    step : float
        The step (epoch) of the last update.
    rates : dict of str to float
        The learned drop rate of each Concrete Dropout layer.
    trend : dict of str to float
        The least-squares slope of :math:`\\log_{10} p` against the step over the last
        ``window`` updates, in decades per step (negative: falling).
    collapsed : list of str
        Layers whose rate is below the threshold and not rising.
    threshold : float
        The collapse threshold.
    """

    step: float
    rates: dict[str, float]
    trend: dict[str, float]
    collapsed: list[str]
    threshold: float

    def summary(self) -> str:
        """One line per layer: rate, trend, and whether it collapsed."""
        lines = [f"Concrete Dropout rates at step {self.step:g}:"]
        for name, p in self.rates.items():
            flag = "  COLLAPSED" if name in self.collapsed else ""
            slope = self.trend[name]
            lines.append(f"  {name:<24} p = {p:.3g}   trend {slope:+.3g} decades/step{flag}")
        return "\n".join(lines)


class ConcreteRateMonitor:
    r"""Record a model's learned Concrete Dropout rates during training; warn when they collapse.

    Call :meth:`update` once per epoch (or every few steps). A layer whose rate :math:`p` is
    below ``threshold`` while the least-squares slope of :math:`\log_{10} p` over the last
    ``window`` updates is not positive triggers a :class:`bayesdrop.ConcreteCollapseWarning`
    (once per layer): the model is becoming a point estimate. What helps (measured on the UCI
    protocol, see the user guide's "When Concrete Dropout degenerates"): stopping earlier, by the
    validation likelihood; fitting the noise scale on validation data.

    Parameters
    ----------
    model : nn.Module
        A model with at least one :class:`bayesdrop.ConcreteDropout` layer.
    threshold : float, default 1e-3
        The rate below which a falling layer counts as collapsed.
    window : int, default 5
        Updates used for the trend.
    warn : bool, default True
        Emit the warning (the report says it either way).

    Examples
    --------
    >>> import warnings
    >>> import torch
    >>> from torch import nn
    >>> import bayesdrop
    >>> from bayesdrop.nn import ConcreteRateMonitor
    >>> layer = bayesdrop.ConcreteDropout(nn.Linear(3, 1))
    >>> monitor = ConcreteRateMonitor(nn.Sequential(layer), window=3)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     for logit in (-6.0, -7.0, -8.0):  # p = 2.5e-3, 9.1e-4, 3.4e-4
    ...         _ = layer.p_logit.data.fill_(logit)
    ...         report = monitor.update()
    >>> report.collapsed, round(report.trend["0"], 3)
    (['0'], -0.434)
    >>> [type(w.message).__name__ for w in caught]
    ['ConcreteCollapseWarning']
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        threshold: float = COLLAPSE_THRESHOLD,
        window: int = 5,
        warn: bool = True,
    ) -> None:
        if not concrete_rates(model):
            fail(
                "model",
                "a model with at least one ConcreteDropout layer",
                "none",
                "Wrap layers in bayesdrop.ConcreteDropout, or use convert(model, to='concrete').",
            )
        self.model = model
        self.threshold = check_positive("threshold", threshold)
        self.window = check_positive_int("window", window)
        self.warn = bool(warn)
        self.history: dict[str, list[tuple[float, float]]] = {}
        self._warned: set[str] = set()
        self._count = 0

    def update(self, step: float | None = None) -> RateReport:
        """Record the current rates (at ``step``, default: the number of updates so far)."""
        step = float(self._count if step is None else step)
        self._count += 1
        for name, p in concrete_rates(self.model).items():
            self.history.setdefault(name, []).append((step, p))
        report = self.report()
        fresh = [n for n in report.collapsed if n not in self._warned]
        if fresh and self.warn:
            names = ", ".join(f"{n} (p = {report.rates[n]:.2g})" for n in fresh)
            warnings.warn(
                f"bayesdrop: the learned Concrete Dropout rates of {names} fell below "
                f"{self.threshold:g} and are not rising: the model is close to a point estimate "
                "and its epistemic uncertainty near zero. Consider stopping earlier (by "
                "validation likelihood) or fitting the noise scale on validation data; see the "
                "user guide, 'When Concrete Dropout degenerates'.",
                ConcreteCollapseWarning,
                stacklevel=2,
            )
        self._warned.update(fresh)
        return report

    def report(self) -> RateReport:
        """The rates at the last update and their trend (no warning)."""
        if not self.history:
            fail("monitor", "updated at least once", "no update", "Call update() first.")
        rates = {n: h[-1][1] for n, h in self.history.items()}
        trend = {n: _slope(h[-self.window :]) for n, h in self.history.items()}
        collapsed = [n for n, p in rates.items() if p < self.threshold and trend[n] <= 0]
        step = next(iter(self.history.values()))[-1][0]
        return RateReport(step, rates, trend, collapsed, self.threshold)
