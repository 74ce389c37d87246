"""Dense outputs (``class_dim=1``: ``(N, C, H, W)``) are read in their own memory layout (issue
27's speed work): every read-out equals the classes-last computation on a contiguous copy, the
modal class is the first of equal maxima (``argmax``'s choice), and the layout is found from
the strides alone."""

from __future__ import annotations

import pytest
import torch

from bayesdrop.predict import _accumulators as acc


def _both(logits: torch.Tensor):
    dense = acc.ClassificationAccumulator(keep_samples=True, std_errors=True)
    plain = acc.ClassificationAccumulator(keep_samples=True, std_errors=True)
    for chunk in logits.split(8):
        dense.update(chunk)
        plain.update(chunk.contiguous())
    return dense, plain


@pytest.mark.parametrize("num_classes", [2, 4, 21])
def test_dense_read_out_equals_the_classes_last_one(num_classes):
    gen = torch.Generator().manual_seed(num_classes)
    logits = 3 * torch.randn(32, 3, num_classes, 5, 6, generator=gen)
    view = logits.movedim(2, -1)  # what the engines hand over for class_dim=1
    assert acc._class_axis(view) == 2 and acc._class_axis(view.contiguous()) == -1
    dense, plain = _both(view)
    a, b = dense.result("cached", ""), plain.result("cached", "")
    for name in ("probs", "predictive_entropy", "expected_entropy", "mutual_information"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=2e-6)
    assert torch.equal(dense.votes, plain.votes)
    torch.testing.assert_close(a.variation_ratio, b.variation_ratio, rtol=0, atol=0)
    torch.testing.assert_close(a.samples, b.samples, rtol=0, atol=1e-6)
    torch.testing.assert_close(dense.std_error()[1], plain.std_error()[1], rtol=0, atol=2e-6)


def test_ties_go_to_the_first_class_as_argmax():
    # equal logits for classes 1 and 3 (the maximum) in every sample: argmax says 1
    logits = torch.zeros(6, 2, 4, 3, 3)
    logits[:, :, 1] = 2.0
    logits[:, :, 3] = 2.0
    dense, plain = _both(logits.movedim(2, -1))
    assert torch.equal(dense.votes, plain.votes)
    assert dense.votes[..., 1].eq(6).all() and dense.votes[..., 3].eq(0).all()


def test_a_strided_layout_that_is_no_model_layout_takes_the_plain_path():
    x = torch.randn(4, 2, 5, 3)[..., ::2]  # a sliced last dimension: strided, not movable
    assert acc._class_axis(x) == -1
    a = acc.ClassificationAccumulator(keep_samples=False, std_errors=False)
    a.update(x)
    b = acc.ClassificationAccumulator(keep_samples=False, std_errors=False)
    b.update(x.contiguous())
    torch.testing.assert_close(a.moments.mean, b.moments.mean)


def test_more_classes_than_int16_holds():
    # the class weights C, ..., 1 of the modal class overflow int16 from C = 2**15
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 2**15 + 3, 2, generator=gen)
    logits[:, :, 0] += 20.0
    logits[:, :, -1] = logits[:, :, 0]  # a tie of the first and the last class: argmax says 0
    dense, plain = _both(logits.movedim(2, -1))
    assert torch.equal(dense.votes, plain.votes)
    assert dense.votes[..., 0].eq(2).all() and dense.votes[..., -1].eq(0).all()
