"""Does the predictor sample all the noise a model uses in training, and sample it right?"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from bayesdrop._validation import check_positive_int, check_probability, fail
from bayesdrop.nn._noise_calls import functional_noise
from bayesdrop.nn._sampling import drop_rate, is_noise_module, training_lines
from bayesdrop.nn._selection import noise_selection
from bayesdrop.predict._io import OutputSpec, as_inputs, batch_first, select_output

__all__ = ["NoiseCheck", "check_noise", "fork_rng", "training_flag_readers"]

# modules whose `training` flag switches batch statistics, not noise: kept in eval mode
_NORMALIZATION = (_BatchNorm, _InstanceNorm)


@dataclass(frozen=True)
class NoiseCheck:
    r"""The predictor's samples against the model's own training-mode noise (an oracle test).

    :func:`bayesdrop.check_noise` draws :math:`S` samples of the first rows of ``x`` with the
    engine :func:`bayesdrop.mc_predict` would use (``engine="auto"``: the same choice, the same
    batching of samples into passes) and :math:`S` samples in training mode with every
    normalisation layer kept in eval (BatchNorm and InstanceNorm keep their running
    statistics), so that only the noise differs. It compares the two on the :math:`D` entries
    of what the predictor averages (the probabilities for classification, the outputs for
    regression). The means, entry by entry, against the Bonferroni bound
    :math:`c = t_{2S-2}^{-1}(1 - \alpha / 2D)`:

    .. math:: z_d = \frac{\bar e_d - \bar o_d}{\sqrt{(s^2_{e,d} + s^2_{o,d}) / S}} ;

    the spread, the mean variance :math:`v = \sum_i u_i / (S - 1)` with
    :math:`u_i = \frac1D \sum_d (x_{id} - \bar x_d)^2`, whose standard error is that of a mean
    of the :math:`u_i`, against :math:`t_{S-1}^{-1}(1 - \alpha)` (Student's :math:`t`
    quantiles, Cornish-Fisher approximation):

    .. math:: z_v = \frac{v_e - v_o}{\sqrt{\mathrm{se}_e^2 + \mathrm{se}_o^2}} .

    Attributes
    ----------
    engine, engine_reason : str
        The engine that drew the predictor's samples, and why it was chosen.
    sampled_spread, training_spread : float
        The mean over entries of the standard deviation over samples,
        :math:`\frac1D\sum_d s_d`, for the predictor and for training mode.
    ratio : float
        ``sampled_spread / training_spread`` (1 when both are 0).
    mean_z : float
        :math:`\max_d |z_d|`.
    spread_z : float
        :math:`z_v` (negative: the predictor samples less noise than training mode).
    mean_bound, spread_bound : float
        The bounds the two are compared with, for the significance level ``alpha``.
    noise_modules : list of (str, str, float)
        ``(name, type, rate)`` of every module :func:`bayesdrop.sampling` switches.
    unswitched : list of (str, str)
        ``(name, type)`` of modules outside torch whose ``forward`` reads ``self.training``
        (for more than gradient checkpointing) and that :func:`bayesdrop.sampling` does not
        switch.
    training_only : list of str
        Modules that drew random numbers in training mode but not under the predictor: where
        missed noise lives.
    num_samples : int
        Samples drawn in each mode.
    """

    engine: str
    engine_reason: str
    sampled_spread: float
    training_spread: float
    ratio: float
    mean_z: float
    spread_z: float
    mean_bound: float
    spread_bound: float
    noise_modules: list[tuple[str, str, float]]
    unswitched: list[tuple[str, str]]
    training_only: list[str]
    num_samples: int

    @property
    def missed(self) -> bool:
        """The predictor's spread is significantly below training mode's."""
        if self.training_spread > 0.0 and self.sampled_spread == 0.0:
            return True
        return self.spread_z < -self.spread_bound

    @property
    def excess(self) -> bool:
        """The predictor's spread is significantly above training mode's (noise sampled that
        training does not use, such as ``F.dropout(x, training=False)`` written literally)."""
        return self.spread_z > self.spread_bound

    @property
    def shifted(self) -> bool:
        """Some mean differs significantly (shared draws, an input the trace did not see)."""
        return self.mean_z > self.mean_bound

    @property
    def ok(self) -> bool:
        """The predictor agrees with training-mode noise within Monte-Carlo error."""
        return not (self.missed or self.excess or self.shifted)

    @property
    def no_noise(self) -> bool:
        """Neither mode changes the output."""
        return self.training_spread == 0.0 and self.sampled_spread == 0.0

    def describe(self) -> str:
        """A paragraph naming the verdict, what was looked at and what to do."""
        found = ", ".join(f"{n} ({t}, rate {r:g})" for n, t, r in self.noise_modules[:12])
        if len(self.noise_modules) > 12:
            found += f", ... ({len(self.noise_modules)} in all)"
        verdict = "agrees with training-mode noise"
        if not self.ok:
            parts = []
            if self.missed:
                parts.append(f"samples less noise (z = {self.spread_z:.3g})")
            if self.excess:
                parts.append(f"samples more noise (z = {self.spread_z:.3g})")
            if self.shifted:
                parts.append(f"has means that differ (largest |z| = {self.mean_z:.3g})")
            verdict = "differs from training-mode noise: it " + " and ".join(parts)
        text = (
            f"Over {self.num_samples} samples the '{self.engine}' engine ({self.engine_reason}) "
            f"{verdict}. Output spread {self.sampled_spread:.3g} against "
            f"{self.training_spread:.3g} in training mode (normalisation layers kept in "
            f"eval). sampling() switched: {found or 'no module'}."
        )
        if self.missed and self.training_only:
            text += f" Noise drawn only in training mode, in: {', '.join(self.training_only[:12])}."
        if self.unswitched:
            names = ", ".join(f"{n} ({t})" for n, t in self.unswitched[:12])
            text += f" Modules whose forward reads self.training but are not switched: {names}."
        text += (
            " Register a custom noise module type with "
            "bayesdrop.nn.register_stochastic_module(MyType, rate='p', scope='row' | 'call' | "
            "'batch')."
        )
        return text


def training_flag_readers(model: nn.Module) -> list[tuple[str, str]]:
    """``(name, type)`` of modules outside torch and bayesdrop whose ``forward`` source reads
    ``self.training`` (for more than gradient checkpointing) and that :func:`bayesdrop.sampling`
    does not switch."""
    return [
        (name or "(model)", type(module).__name__)
        for name, module in model.named_modules()
        if not is_noise_module(module) and training_lines(type(module))
    ]


def fork_rng(device: torch.device | None):
    """``torch.random.fork_rng`` over the CPU and, for an accelerator, that device's stream."""
    if device is None or device.type in ("cpu", "meta"):
        return torch.random.fork_rng(devices=[])
    index = device.index if device.index is not None else 0
    return torch.random.fork_rng(devices=[index], device_type=device.type)


def _training_samples(model, inputs, settings, num_samples) -> Tensor:
    """``num_samples`` passes in training mode (normalisation in eval), as the predictor's
    accumulator sees them: probabilities with the classes last, or the (mean) outputs."""
    from bayesdrop.predict._io import classes_last

    outs = []
    for _ in range(num_samples):
        raw = inputs.call(model)
        value = batch_first(select_output(raw, settings.output, settings.task), settings.batch_dim)
        value = value[0] if isinstance(value, tuple) else value
        if settings.task == "classification":
            value = classes_last(value, settings.class_dim, settings.batch_dim).float().softmax(-1)
        outs.append(value.detach())
    return torch.stack(outs)


def t_bound(tail: float, dof: int) -> float:
    """The upper ``tail`` quantile of Student's t with ``dof`` degrees of freedom (the normal
    quantile with the Cornish-Fisher terms of order 1/dof and 1/dof^2)."""
    z = float(torch.special.ndtri(torch.tensor(1.0 - tail, dtype=torch.float64)))
    nu = max(dof, 1)
    return z + (z**3 + z) / (4 * nu) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * nu**2)


def _spread_stats(samples: Tensor) -> tuple[float, float, float]:
    r"""Mean standard deviation over entries, mean variance and the variance's standard error.

    The mean variance is :math:`v = \sum_i u_i / (S - 1)` with
    :math:`u_i = \frac1D \sum_d (x_{id} - \bar x_d)^2` the squared deviation of sample
    :math:`i`; its standard error is that of a mean of the :math:`u_i` (delta method).
    """
    flat = samples.flatten(1).double()
    count = flat.shape[0]
    if count < 2:
        return 0.0, 0.0, 0.0
    u = (flat - flat.mean(0)).square().mean(1)
    var = float(u.sum() / (count - 1))
    se = float(u.std() * count**0.5 / (count - 1))
    return float(flat.std(0).mean()), var, se


def _mean_z(a: Tensor, b: Tensor) -> float:
    a, b = a.flatten(1).double(), b.flatten(1).double()
    num = (a.mean(0) - b.mean(0)).abs()
    den = ((a.var(0) + b.var(0)) / a.shape[0]).sqrt()
    z = torch.where(den > 0, num / den.clamp_min(1e-300), torch.where(num > 0, math.inf, 0.0))
    return float(z.max())


def _drawing_modules(draws) -> set[str]:
    return {d.module for d in draws}


def check_noise(
    model: nn.Module,
    x: object,
    *,
    num_samples: int = 64,
    max_rows: int = 8,
    engine: str = "auto",
    output: OutputSpec = None,
    task: str = "classification",
    class_dim: int | None = None,
    batch_dim: int = 0,
    tau: float | None = None,
    alpha: float = 1e-3,
    seed: int = 0,
    noise: str | None = None,
) -> NoiseCheck:
    """Test the predictor's sampling against the model's own training-mode noise.

    Draws ``num_samples`` samples of the first ``max_rows`` rows of ``x`` with the engine
    :func:`bayesdrop.mc_predict` uses (``engine``; ``"auto"`` makes the same choice and
    batches the samples into passes the same way), then as many in training mode with every
    normalisation layer (BatchNorm, InstanceNorm) kept in eval, so that only noise differs.
    The verdict (:attr:`bayesdrop.predict.NoiseCheck.ok`, ``missed``, ``excess``,
    ``shifted``) comes from the Monte-Carlo standard errors of the two (see
    :class:`bayesdrop.predict.NoiseCheck`), at significance level
    ``alpha``. When noise is missed, the modules that drew random numbers only in training mode
    are named. Every mode is restored afterwards, also when the model raises; the global random
    state is not moved. ``mc_predict(..., verify=True)`` runs this first and raises when the
    check fails.

    Parameters
    ----------
    model : nn.Module
    x : Tensor, tuple or mapping
        Model inputs as for :func:`bayesdrop.mc_predict`.
    num_samples, max_rows : int
        Samples per mode and rows of ``x`` used.
    engine : {"auto", "loop", "batched", "cached", "hooked"}
        The engine to test.
    output, task, class_dim, batch_dim, tau, noise
        As in :func:`bayesdrop.mc_predict`. With ``noise``, both modes sample only the noise
        it selects (in training mode the other noise modules are switched off too).
    alpha : float
        The significance level of the verdict (a correct engine fails it with about this
        probability).
    seed : int
        Seed of the private random stream.

    Returns
    -------
    NoiseCheck

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from bayesdrop.predict import check_noise
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    >>> check = check_noise(model, torch.randn(4, 4))
    >>> check.ok, check.missed, check.noise_modules
    (True, False, [('1', 'Dropout', 0.5)])
    """
    from bayesdrop.predict._checks import check_model, eager_model
    from bayesdrop.predict._engines import plan_source
    from bayesdrop.predict._runner import make_settings, predict_batch

    model, note = eager_model(model)
    num_samples = check_positive_int("num_samples", num_samples)
    if num_samples < 2:
        fail("num_samples", "at least 2 (a spread needs two samples)", num_samples)
    alpha = check_probability("alpha", alpha)
    if alpha == 0.0:
        fail("alpha", "a significance level in (0, 1)", alpha)
    settings = make_settings(
        num_samples=num_samples,
        task=task,
        tau=(1.0 if tau is None else tau) if task == "regression" else tau,
        engine=engine,
        chunk_size=None,
        max_memory=None,
        return_samples=True,
        tolerance=1e-2,
        max_samples=num_samples,
        autocast=False,
        output=output,
        class_dim=class_dim,
        batch_dim=batch_dim,
        noise=noise,
    )
    inputs = as_inputs(x, batch_dim=batch_dim).rows(check_positive_int("max_rows", max_rows))
    plans = plan_source(model, settings.noise)
    if not plans.checked:
        check_model(model)
        plans.checked = True
    modes = [(m, m.training) for m in model.modules()]
    found = [
        (name or "(model)", type(m).__name__, float(drop_rate(m) or 0.0))
        for name, m in model.named_modules()
        if is_noise_module(m)
    ]
    try:
        with fork_rng(inputs.tensors()[0].device), torch.no_grad():
            torch.manual_seed(seed)
            with functional_noise(record=True, model=model, force=False) as rec_engine:
                pred = predict_batch(model, inputs, settings, plans, diagnose=False)
            sampled: Tensor = pred.samples  # type: ignore[assignment]
            model.train()
            for m in model.modules():
                if isinstance(m, _NORMALIZATION):
                    m.eval()
            with (
                noise_selection(model, noise),
                functional_noise(record=True, model=model, force=False) as rec_train,
            ):
                trained = _training_samples(model, inputs, settings, num_samples)
    finally:
        for m, mode in modes:
            m.training = mode
    s_std, s_var, s_se = _spread_stats(sampled)
    t_std, t_var, t_se = _spread_stats(trained)
    den = math.sqrt(s_se**2 + t_se**2)
    diff = s_var - t_var
    spread_z = diff / den if den > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    entries = max(1, sampled[0].numel())
    only = sorted(_drawing_modules(rec_train.draws) - _drawing_modules(rec_engine.draws))
    reason = pred.engine_reason + (f"; {note}" if note else "")
    return NoiseCheck(
        engine=str(pred.engine),
        engine_reason=reason,
        sampled_spread=s_std,
        training_spread=t_std,
        ratio=1.0 if t_std == 0.0 and s_std == 0.0 else s_std / max(t_std, 1e-300),
        mean_z=_mean_z(sampled, trained),
        spread_z=spread_z,
        mean_bound=t_bound(alpha / (2 * entries), 2 * num_samples - 2),
        spread_bound=t_bound(alpha, num_samples - 1),
        noise_modules=found,
        unswitched=training_flag_readers(model),
        training_only=[m or "(model)" for m in only],
        num_samples=num_samples,
    )
