"""Does :func:`bayesdrop.sampling` reach all the noise a model uses in training?"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from bayesdrop._validation import check_module, check_positive_int
from bayesdrop.nn.sampling import drop_rate, forward_source, is_noise_module, sampling
from bayesdrop.predict.io import OutputSpec, as_inputs, batch_first, select_output

__all__ = ["NoiseCheck", "check_noise", "fork_rng", "training_flag_readers"]

# modules whose `training` flag switches batch statistics, not noise: kept in eval mode
_NORMALIZATION = (_BatchNorm, _InstanceNorm)


@dataclass(frozen=True)
class NoiseCheck:
    r"""The output spread under :func:`bayesdrop.sampling` and under training-mode noise.

    The spread is the mean over output entries of the standard deviation over samples,

    .. math:: \sigma = \frac{1}{|D|}\sum_{d\in D}\operatorname{std}_s\, f_s(x)_d ,

    measured once with only the noise modules sampling (:math:`\sigma_{\text{sampling}}`) and
    once with the whole model in training mode except its normalisation layers, which keep their
    running statistics (:math:`\sigma_{\text{train}}`).

    Attributes
    ----------
    sampled_spread, training_spread : float
        :math:`\sigma_{\text{sampling}}` and :math:`\sigma_{\text{train}}`.
    ratio : float
        :math:`\sigma_{\text{sampling}} / \sigma_{\text{train}}` (1 when both are 0).
    noise_modules : list of (str, str, float)
        ``(name, type, rate)`` of every module :func:`bayesdrop.sampling` switches.
    unswitched : list of (str, str)
        ``(name, type)`` of modules outside torch whose ``forward`` reads ``self.training``
        but that :func:`bayesdrop.sampling` does not switch: where missed noise comes from.
    num_samples : int
        Samples drawn in each mode.
    """

    sampled_spread: float
    training_spread: float
    ratio: float
    noise_modules: list[tuple[str, str, float]]
    unswitched: list[tuple[str, str]]
    num_samples: int

    @property
    def missed(self) -> bool:
        """Training mode has noise and ``sampling()`` reaches less than half of its spread."""
        return self.training_spread > 0.0 and self.ratio < 0.5

    @property
    def no_noise(self) -> bool:
        """Neither mode changes the output."""
        return self.training_spread == 0.0 and self.sampled_spread == 0.0

    def describe(self) -> str:
        """A paragraph naming what was looked at and what to do."""
        found = ", ".join(f"{n} ({t}, rate {r:g})" for n, t, r in self.noise_modules[:12])
        if len(self.noise_modules) > 12:
            found += f", ... ({len(self.noise_modules)} in all)"
        text = (
            f"Over {self.num_samples} samples the output spread is {self.sampled_spread:.3g} "
            f"under sampling() and {self.training_spread:.3g} in training mode (normalisation "
            f"layers kept in eval). sampling() switched: {found or 'no module'}."
        )
        if self.unswitched:
            names = ", ".join(f"{n} ({t})" for n, t in self.unswitched[:12])
            text += f" Modules whose forward reads self.training but are not switched: {names}."
        text += (
            " Register a custom noise module type with "
            "bayesdrop.nn.register_stochastic_module(MyType, rate='p')."
        )
        return text


def training_flag_readers(model: nn.Module) -> list[tuple[str, str]]:
    """``(name, type)`` of modules outside torch and bayesdrop whose ``forward`` source reads
    ``self.training`` and that :func:`bayesdrop.sampling` does not switch."""
    return [
        (name or "(model)", type(module).__name__)
        for name, module in model.named_modules()
        if not is_noise_module(module) and "self.training" in forward_source(type(module))
    ]


def fork_rng(device: torch.device | None):
    """``torch.random.fork_rng`` over the CPU and, for an accelerator, that device's stream."""
    if device is None or device.type in ("cpu", "meta"):
        return torch.random.fork_rng(devices=[])
    index = device.index if device.index is not None else 0
    return torch.random.fork_rng(devices=[index], device_type=device.type)


def _spread(outputs: list[Tensor]) -> float:
    stacked = torch.stack([o.detach().double() for o in outputs])
    return float(stacked.std(0).mean())


def _draw(model, inputs, output, task, batch_dim, num_samples) -> list[Tensor]:
    outs = []
    for _ in range(num_samples):
        value = batch_first(select_output(inputs.call(model), output, task), batch_dim)
        outs.append(value[0] if isinstance(value, tuple) else value)
    return outs


def check_noise(
    model: nn.Module,
    x: object,
    *,
    num_samples: int = 16,
    max_rows: int = 8,
    output: OutputSpec = None,
    task: str = "classification",
    batch_dim: int = 0,
    seed: int = 0,
) -> NoiseCheck:
    """Compare the noise :func:`bayesdrop.sampling` reaches with the model's training noise.

    Draws ``num_samples`` outputs of the first ``max_rows`` rows of ``x`` with only the noise
    modules sampling, then as many in training mode with every normalisation layer (BatchNorm,
    InstanceNorm) kept in eval mode, so that only noise differs between passes. A ratio of
    spreads well below 1 means some noise the model uses in training is not sampled (dropout
    inside a fused kernel switched by a module's own ``training`` flag, say): register that
    module type with :func:`bayesdrop.nn.register_stochastic_module`. Every mode is restored
    afterwards, also when the model raises; the global random state is not moved.

    Parameters
    ----------
    model : nn.Module
    x : Tensor, tuple or mapping
        Model inputs as for :func:`bayesdrop.mc_predict`.
    num_samples, max_rows : int
        Passes per mode and rows of ``x`` used.
    output, task, batch_dim
        As in :func:`bayesdrop.mc_predict` (which output holds the prediction).
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
    >>> check.missed, check.no_noise, check.noise_modules
    (False, False, [('1', 'Dropout', 0.5)])
    """
    check_module("model", model)
    num_samples = check_positive_int("num_samples", num_samples)
    inputs = as_inputs(x, batch_dim=batch_dim).rows(check_positive_int("max_rows", max_rows))
    modes = [(m, m.training) for m in model.modules()]
    noise = [
        (name or "(model)", type(m).__name__, float(drop_rate(m) or 0.0))
        for name, m in model.named_modules()
        if is_noise_module(m)
    ]
    try:
        with fork_rng(inputs.tensors()[0].device), torch.no_grad():
            torch.manual_seed(seed)
            model.eval()
            with sampling(model):
                sampled = _spread(_draw(model, inputs, output, task, batch_dim, num_samples))
            model.train()
            for m in model.modules():
                if isinstance(m, _NORMALIZATION):
                    m.eval()
            trained = _spread(_draw(model, inputs, output, task, batch_dim, num_samples))
    finally:
        for m, mode in modes:
            m.training = mode
    ratio = 1.0 if trained == 0.0 and sampled == 0.0 else sampled / max(trained, 1e-300)
    return NoiseCheck(
        sampled_spread=sampled,
        training_spread=trained,
        ratio=ratio,
        noise_modules=noise,
        unswitched=training_flag_readers(model),
        num_samples=num_samples,
    )
