"""The one input layer of the calibration metrics: predictions flattened to validated points.

Every metric, streaming update, display and report of :mod:`bayesdrop.calibration` (and the CLI)
reads its predictions through :func:`as_points`, with the same keywords everywhere:

* ``probs (N, C)``: probabilities, one row per point;
* ``layout="probs"``: dense probabilities ``(N, ..., C)`` with the class dimension last
  (``(N, H, W, C)`` per pixel, ``(N, T, C)`` per token), flattened to points;
* ``layout="samples"``: Monte-Carlo samples ``(S, N, ..., C)``, averaged over ``S``;
* a prediction result (``mc_predict``'s :class:`~bayesdrop.ClassificationPrediction`, or any
  object with ``probs`` and optionally ``samples`` and ``mutual_information``);
* ``ignore_index``: the points of that label are dropped.

Nothing is guessed: an array with more than two dimensions is either MC samples or dense
probabilities, so it needs its ``layout`` declared, and logits passed as probabilities are an
error, not a hidden softmax. A bad input fails loudly with a message naming the argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from bayesdrop._validation import as_tensor, check_choice, check_finite, fail

__all__ = [
    "LAYOUTS",
    "PROBS_SUM_ATOL",
    "Layout",
    "Points",
    "as_float_tensor",
    "as_points",
    "at_least_float32",
    "check_classification",
    "check_probs",
    "check_probs_shape",
    "check_probs_values",
    "check_scores",
    "check_target",
    "probs_sum_atol",
    "top_label",
    "true_class_probability",
]

#: Absolute tolerance on ``|sum_c probs[n, c] - 1|`` for every row of float32 or float64 input
#: (half precision gets a wider one, see :func:`probs_sum_atol`).
PROBS_SUM_ATOL = 1e-3

_HALF = (torch.float16, torch.bfloat16)


def probs_sum_atol(dtype: torch.dtype) -> float:
    """The row-sum tolerance for probabilities of ``dtype``: ``max(PROBS_SUM_ATOL, 2 eps)``.

    Rounding every entry of an exact distribution to ``dtype`` moves its sum by at most
    ``eps / 2``; twice ``eps`` leaves room for a softmax or an MC mean computed in that dtype.
    That is 1e-3 for float32 and float64, 1.95e-3 for float16 and 1.56e-2 for bfloat16.

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration._inputs import probs_sum_atol
    >>> probs_sum_atol(torch.float32), probs_sum_atol(torch.bfloat16)
    (0.001, 0.015625)
    """
    return max(PROBS_SUM_ATOL, 2 * torch.finfo(dtype).eps)


def at_least_float32(values: Tensor) -> Tensor:
    """``values`` in float32 when they are float16 or bfloat16 (every sum is then accumulated
    in float32 or float64), else unchanged."""
    return values.float() if values.dtype in _HALF else values


def as_float_tensor(
    name: str, value: Any, *, check_values: bool = True, allow_empty: bool = False
) -> Tensor:
    """A floating tensor from a tensor or NumPy array, non-empty unless ``allow_empty``, finite
    if ``check_values``."""
    value = as_tensor(name, value)
    if not value.is_floating_point():
        fail(name, "a floating-point tensor", f"dtype {value.dtype}", type_error=True)
    if value.numel() == 0 and not allow_empty:
        fail(name, "non-empty", f"shape {tuple(value.shape)}")
    return check_finite(name, value) if check_values else value


def check_probs_shape(probs: Any, name: str = "probs") -> Tensor:
    """A floating ``(N, C)`` tensor, ``C >= 2``, or a prediction result's ``probs``; the values
    are not checked (see :func:`check_probs_values`). MC samples must be averaged by the caller
    (or passed through :func:`as_points` with ``layout="samples"``)."""
    if not isinstance(probs, (Tensor, np.ndarray)) and hasattr(probs, "probs"):
        probs, name = probs.probs, f"{name}.probs"
    probs = as_float_tensor(name, probs, check_values=False)
    if probs.ndim != 2:
        fail(
            name,
            "of shape (N, C)",
            f"shape {tuple(probs.shape)}",
            "Pass MC samples (S, N, C) as a prediction result or their mean over S.",
        )
    if probs.shape[-1] < 2:
        fail(name, "a distribution over at least 2 classes", f"shape {tuple(probs.shape)}")
    return probs


def check_probs(probs: Any, name: str = "probs") -> Tensor:
    """Probabilities ``(N, C)`` (or a prediction result's ``probs``).

    Every entry must lie in ``[0, 1]`` and every row sum to one within
    :func:`probs_sum_atol` of the dtype. Half-precision input comes back as float32.
    """
    return at_least_float32(check_probs_values(check_probs_shape(probs, name), name))


def check_probs_values(probs: Tensor, name: str = "probs") -> Tensor:
    """Raise unless every entry of ``probs (N, C)`` is in ``[0, 1]`` and every row sums to 1."""
    # one pass: NaN propagates through min / max, so finite data is checked on the way
    lo, hi = (v.item() for v in torch.aminmax(probs))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        check_finite(name, probs)
    if lo < 0.0 or hi > 1.0:
        fail(
            name,
            "probabilities (entries in [0, 1], rows summing to 1)",
            f"values in [{lo:.4g}, {hi:.4g}]",
            "If these are logits, pass logits.softmax(-1).",
        )
    wide = at_least_float32(probs)  # a half-precision sum would round to the dtype's resolution
    row_sums = wide @ torch.ones(probs.shape[-1], dtype=wide.dtype, device=probs.device)
    err = max(abs(v.item() - 1.0) for v in torch.aminmax(row_sums))
    atol = probs_sum_atol(probs.dtype)
    if err > atol:
        fail(
            name,
            f"probabilities whose rows sum to 1 (within {atol:g} for {probs.dtype})",
            f"a row sum off by {err:.4g}",
            "Normalise the rows, e.g. probs / probs.sum(-1, keepdim=True).",
        )
    return probs


def check_target(
    target: Any, num_data: int, num_classes: int | None, name: str = "target"
) -> Tensor:
    """Integer class labels ``(N,)`` in ``[0, num_classes)``."""
    target = as_tensor(name, target)  # uint16/32/64 and big-endian arrays as int64
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        fail(name, "integer class labels", f"dtype {target.dtype}", type_error=True)
    if target.shape != (num_data,):
        fail(
            name, f"of shape ({num_data},) to match the predictions", f"shape {tuple(target.shape)}"
        )
    if num_classes is not None and num_data > 0:
        lo, hi = (v.item() for v in torch.aminmax(target))
        if lo < 0 or hi >= num_classes:
            fail(name, f"labels in [0, {num_classes - 1}]", f"labels in [{lo}, {hi}]")
    return target.long()


def check_scores(scores: Any, name: str, num_data: int | None = None) -> Tensor:
    """A finite 1-D score per data point (half precision comes back as float32)."""
    scores = as_float_tensor(name, scores)
    if scores.ndim != 1 or (num_data is not None and scores.shape[0] != num_data):
        want = "a 1-D tensor" if num_data is None else f"of shape ({num_data},)"
        fail(name, want, f"shape {tuple(scores.shape)}")
    return at_least_float32(scores)


def check_classification(
    probs: Any, target: Any, *, layout: Layout | None = None, ignore_index: int | None = None
) -> tuple[Tensor, Tensor]:
    """Validated ``probs (M, C)`` and ``target (M,)`` on the same device, from any input
    :func:`as_points` takes."""
    points = as_points(probs, target, layout=layout, ignore_index=ignore_index)
    assert points.target is not None
    return points.probs, points.target


def top_label(probs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Top-label confidence ``max_c p_c`` and the boolean ``argmax_c p_c == target``.

    A row with a tie for the maximum predicts its first maximal class (as ``argmax``).
    """
    confidence, predicted = probs.max(-1)
    return confidence, predicted == target


def true_class_probability(probs: Tensor, target: Tensor) -> Tensor:
    """``probs[n, target[n]]`` for every ``n``."""
    return probs.gather(-1, target[:, None]).squeeze(-1)


Layout = Literal["probs", "samples"]
#: The declared layouts of an array of predictions with more than two dimensions.
LAYOUTS = ("probs", "samples")


@dataclass(frozen=True)
class Points:
    """Predictions flattened to points, ignored points dropped (see :func:`as_points`).

    Attributes
    ----------
    probs : Tensor, shape ``(M, C)``
        Probabilities of the ``M`` points kept (MC samples averaged).
    target : Tensor, shape ``(M,)``, or None
        Their integer labels (int64, on the device of ``probs``), None without a target.
    samples : Tensor, shape ``(S, M, C)``, or None
        The MC samples of the points, where the input had them.
    mutual_information : Tensor, shape ``(M,)``, or None
        A prediction result's mutual information of the points.
    data_shape : tuple of int
        The shape of the predictions without the class dimension, ``(N,)`` or ``(N, ...)``,
        before ignored points are dropped.
    num_ignored : int
        The number of points whose label was ``ignore_index``.
    keep : Tensor or None
        The boolean mask of the flattened points kept (None when none was dropped).
    """

    probs: Tensor
    target: Tensor | None
    samples: Tensor | None
    mutual_information: Tensor | None
    data_shape: tuple[int, ...]
    num_ignored: int = 0
    keep: Tensor | None = None

    @property
    def labels(self) -> Tensor:
        """``target``, for points read with one (raises without)."""
        if self.target is None:
            fail("target", "given", "None")
        return self.target

    @property
    def num_classes(self) -> int:
        """The class count ``C``."""
        return self.probs.shape[-1]

    def select(self, name: str, values: Any) -> Tensor:
        """A per-point quantity of shape ``data_shape`` (or already flat), flattened with the
        ignored points dropped, as the points are."""
        values = as_tensor(name, values)
        if values.shape != self.data_shape and values.shape != (math.prod(self.data_shape),):
            fail(name, f"of shape {self.data_shape} to match the predictions", _shape(values))
        values = values.reshape(-1)
        return values if self.keep is None else values[self.keep.to(values.device)]


def _shape(value: Tensor) -> str:
    return f"shape {tuple(value.shape)}"


def _unpack(predictions: Any, layout: Layout | None, name: str) -> tuple[Tensor, Any, Any, str]:
    """(probs (N, ..., C), samples (S, N, ..., C) or None, MI (N, ...) or None, name of probs)."""
    if layout is not None:
        check_choice("layout", layout, LAYOUTS)
    if isinstance(predictions, (Tensor, np.ndarray)):
        array = as_float_tensor(name, predictions, check_values=False, allow_empty=True)
        if array.ndim < 2:
            fail(name, "of shape (N, C), (N, ..., C) or (S, N, ..., C)", _shape(array))
        if layout is None and array.ndim > 2:
            fail(
                "layout",
                f"declared for a {array.ndim}-D array of predictions",
                f"None for shape {tuple(array.shape)}",
                'It is either MC samples (S, N, ..., C): pass layout="samples", or probabilities '
                'with the class dimension last (N, ..., C), e.g. per token: pass layout="probs".',
            )
        if layout == "samples":
            if array.ndim < 3:
                fail(name, 'of shape (S, N, ..., C) for layout="samples"', _shape(array))
            if array.shape[0] == 0:
                fail(name, "at least one MC sample", _shape(array))
            # NaN and inf survive the mean and are caught by the value checks
            return array.mean(0), array, None, name
        return array, None, None, name
    if not hasattr(predictions, "probs"):
        hint = None
        if hasattr(predictions, "mean") and hasattr(predictions, "total_variance"):
            hint = "This is a regression prediction; use the regression metrics and reports."
        fail(
            name,
            "a tensor, an array, or a classification prediction (an object with `probs`)",
            type(predictions).__name__,
            hint or "",
            type_error=True,
        )
    if layout is not None:
        fail(
            "layout",
            "None for a prediction result (its `probs` and `samples` say what they are)",
            repr(layout),
        )
    probs = as_float_tensor(
        f"{name}.probs", predictions.probs, check_values=False, allow_empty=True
    )
    return (
        probs,
        getattr(predictions, "samples", None),
        getattr(predictions, "mutual_information", None),
        f"{name}.probs",
    )


def as_points(
    predictions: Any,
    target: Any = None,
    *,
    layout: Layout | None = None,
    ignore_index: int | None = None,
    name: str = "probs",
    check_values: bool = True,
    allow_empty: bool = False,
) -> Points:
    r"""Predictions and labels as validated points: the input layer of every calibration metric.

    Dense predictions ``(N, ..., C)`` and their target ``(N, ...)`` are flattened to
    :math:`M = N \cdot \ldots` points, MC samples ``(S, N, ..., C)`` are averaged over ``S``
    (probabilities are averaged, never logits), and the points labelled ``ignore_index`` are
    dropped.

    Parameters
    ----------
    predictions : Tensor, ndarray or prediction result
        Probabilities ``(N, C)``; dense probabilities ``(N, ..., C)`` with ``layout="probs"``;
        MC samples ``(S, N, ..., C)`` with ``layout="samples"``; or a prediction result with
        ``probs (N, ..., C)`` and optionally ``samples (S, N, ..., C)`` and
        ``mutual_information (N, ...)`` (such as ``mc_predict``'s).
    target : Tensor or ndarray, shape ``(N, ...)``, optional
        Integer labels in ``[0, C)`` (or ``ignore_index``); unsigned and big-endian arrays are
        read as int64.
    layout : {"probs", "samples"}, optional
        What an array with more than two dimensions holds: required for one (a ``(A, B, C)``
        array is either MC samples or per-position probabilities), optional for a 2-D array,
        not allowed for a prediction result (it says what it holds).
    ignore_index : int, optional
        Points whose label is this value (e.g. -100 or 255) are dropped.
    name : str, default "probs"
        The argument's name in error messages.
    check_values : bool, default True
        Check that every entry is in ``[0, 1]`` and every row sums to 1 (half precision then
        comes back as float32); False leaves that to the caller (a fused kernel checks on the
        way).
    allow_empty : bool, default False
        Accept predictions of no point.

    Returns
    -------
    Points

    Examples
    --------
    >>> import torch
    >>> from bayesdrop.calibration import as_points
    >>> probs = torch.full((2, 5, 3), 1 / 3)  # two sequences of five tokens, three classes
    >>> target = torch.tensor([[0, 1, 2, -100, -100], [2, 2, 1, 0, -100]])
    >>> points = as_points(probs, target, layout="probs", ignore_index=-100)
    >>> points.probs.shape, points.num_ignored
    (torch.Size([7, 3]), 3)
    >>> as_points(probs, target)  # a 3-D array needs its layout
    Traceback (most recent call last):
    ...
    bayesdrop.exceptions.BayesdropValueError: Expected `layout` to be declared for a 3-D array ...
    """
    probs, samples, mi, probs_name = _unpack(predictions, layout, name)
    if probs.ndim < 2:
        fail(probs_name, "of shape (N, C) or (N, ..., C)", _shape(probs))
    if probs.shape[-1] < 2:
        fail(probs_name, "a distribution over at least 2 classes", _shape(probs))
    data_shape = tuple(probs.shape[:-1])
    num_classes = probs.shape[-1]
    if math.prod(data_shape) == 0 and not allow_empty:
        fail(probs_name, "non-empty", _shape(probs))
    probs = probs.reshape(-1, num_classes)
    if samples is not None:
        samples = as_float_tensor(f"{name}.samples", samples, check_values=False, allow_empty=True)
        if tuple(samples.shape[1:]) != (*data_shape, num_classes):
            want = f"of shape (S, {', '.join(map(str, (*data_shape, num_classes)))})"
            fail(f"{name}.samples", want, _shape(samples))
        samples = samples.reshape(samples.shape[0], -1, num_classes)
    if mi is not None:
        mi = as_float_tensor(f"{name}.mutual_information", mi, allow_empty=allow_empty)
        if tuple(mi.shape) != data_shape:
            fail(f"{name}.mutual_information", f"of shape {data_shape}", _shape(mi))
        mi = mi.reshape(-1)
    keep, num_ignored = None, 0
    if ignore_index is not None:
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            fail("ignore_index", "an integer label", repr(ignore_index), type_error=True)
        if target is None:
            fail("target", "given with ignore_index", "None")
    if target is not None:
        target = as_tensor("target", target)  # uint16/32/64 and big-endian arrays as int64
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            fail("target", "integer class labels", f"dtype {target.dtype}", type_error=True)
        if tuple(target.shape) != data_shape:
            fail("target", f"of shape {data_shape} to match the predictions", _shape(target))
        target = target.reshape(-1).to(probs.device)
        if ignore_index is not None:
            keep = target != ignore_index
            num_ignored = int((~keep).sum())
            if num_ignored == 0:
                keep = None
            else:
                if num_ignored == len(target) and not allow_empty:
                    fail("target", f"a label other than ignore_index={ignore_index}", "only that")
                probs, target = probs[keep], target[keep]
                samples = None if samples is None else samples[:, keep.to(samples.device)]
                mi = None if mi is None else mi[keep.to(mi.device)]
        target = check_target(target, probs.shape[0], num_classes)
    if check_values and probs.shape[0] > 0:
        probs = at_least_float32(check_probs_values(probs, probs_name))
    return Points(probs, target, samples, mi, data_shape, num_ignored, keep)
