"""APS/RAPS prediction sets in row chunks without an index sort (bayesdrop.conformal._sets):
bit for bit the sets of a straightforward full stable sort, on random inputs with ties, in
float32 and float64, with and without randomisation, Mondrian, dense inputs, at chunk
boundaries and with one row per chunk."""

from __future__ import annotations

import pytest
import torch

from bayesdrop.conformal import SplitConformalClassifier, _classifier, _sets, conformity_scores

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_scores(probs, u, lam, k_reg):
    """All-class APS/RAPS scores by a full stable sort, written out (the rule before chunks)."""
    ordered, index = probs.sort(dim=-1, descending=True, stable=True)
    cumsum = ordered.cumsum(-1)
    if u is not None:
        cumsum = cumsum - (1 - u)[:, None] * ordered
    if lam > 0:
        rank = torch.arange(1, probs.shape[-1] + 1, dtype=probs.dtype)
        cumsum = cumsum + lam * (rank - k_reg).clamp_min(0)
    return torch.empty_like(cumsum).scatter_(-1, index, cumsum)


def reference_sets(probs, q, u, lam, k_reg):
    scores = reference_scores(probs, u, lam, k_reg)
    return scores <= q.to(scores)


def tied_probs(n, c, gen, dtype, levels):
    """Rows of a few distinct values (many exact ties, zeros included), or continuous ones."""
    if levels:
        raw = torch.randint(0, levels, (n, c), generator=gen).to(dtype)
    else:
        raw = torch.rand(n, c, generator=gen, dtype=dtype) ** 6
    raw[:, 0] += 0.25  # no all-zero row
    return raw / raw.sum(-1, keepdim=True)


CASES = [
    # (score, randomized, mondrian, dtype, levels, chunk_bytes)
    ("aps", True, False, torch.float32, 3, 1),
    ("aps", True, False, torch.float64, 4, 5000),
    ("aps", False, False, torch.float32, 0, 5000),
    ("aps", False, True, torch.float64, 2, 1),
    ("raps", True, False, torch.float64, 3, 3000),
    ("raps", False, False, torch.float32, 5, 1),
    ("raps", True, True, torch.float32, 3, 4000),
    ("aps", True, True, torch.float64, 0, None),
]


@pytest.mark.parametrize(("score", "randomized", "mondrian", "dtype", "levels", "chunk"), CASES)
def test_chunked_sets_equal_a_full_stable_sort(score, randomized, mondrian, dtype, levels, chunk):
    gen = torch.Generator().manual_seed(len(str((score, randomized, mondrian, levels, chunk))))
    c, n, m = 12, 600, 257  # 257 test rows: not a multiple of any chunk here
    probs = tied_probs(n + m, c, gen, dtype, levels)
    target = torch.multinomial(probs.double(), 1, generator=gen)[:, 0]
    options = {"lam": 0.04, "k_reg": 2} if score == "raps" else {}
    if chunk is not None:
        options["chunk_bytes"] = chunk
    cp = SplitConformalClassifier(
        score, alpha=0.3 if mondrian else 0.1, randomized=randomized, mondrian=mondrian, **options
    )
    cp.fit(probs[:n], target[:n], u=torch.rand(n, generator=gen, dtype=dtype))
    u = torch.rand(m, generator=gen, dtype=dtype) if randomized else None
    if u is not None:
        u[:20], u[20:40] = 0.0, 1.0  # the edges of the draw
    lam = 0.04 if score == "raps" else 0.0
    test = probs[n:]
    want = reference_sets(test, cp.quantile_, u, lam, 2)
    assert torch.equal(cp.predict_sets(test, u=u), want)
    assert 0 < want.sum() < want.numel()
    # quantiles equal to test scores themselves: the comparison's edge, s = q
    every = reference_scores(test, u, lam, 2)
    for i, j in ((0, 0), (5, 3), (100, 7), (256, 11)):
        q = every[i, j]
        cp.quantile_ = q.expand(c).clone() if mondrian else q.clone()
        if mondrian:  # a different quantile per class, one of them at a score
            cp.quantile_ += torch.linspace(0.0, 0.3, c, dtype=dtype).roll(j)
        got = cp.predict_sets(test, u=u)
        assert torch.equal(got, reference_sets(test, cp.quantile_, u, lam, 2))
        assert got[i, j]


def test_many_classes_and_the_default_chunk():
    """C = 300 with ties in float32: several rows per chunk, sets from a few classes to many."""
    gen = torch.Generator().manual_seed(3)
    levels = torch.randint(0, 30, (900, 300), generator=gen).float()
    probs = (levels / 29) ** (
        1 + 80 * torch.rand(900, 1, generator=gen)
    )  # ties kept, sharp or flat
    probs = probs / probs.sum(-1, keepdim=True)
    target = torch.multinomial(probs, 1, generator=gen)[:, 0]
    for score in ("aps", "raps"):
        cp = SplitConformalClassifier(score, generator=torch.Generator().manual_seed(1))
        cp.fit(probs[:500], target[:500])
        u = torch.rand(400, generator=gen)
        sets = cp.predict_sets(probs[500:], u=u)
        lam = 0.01 if score == "raps" else 0.0
        assert torch.equal(sets, reference_sets(probs[500:], cp.quantile_, u, lam, 5))
        sizes = sets.sum(-1)
        assert sizes.min() < 15 and sizes.max() > 50
        # without u: one draw per test point from the generator, after the calibration's
        drawn = cp.predict_sets(probs[500:])
        stream = torch.Generator().manual_seed(1)
        torch.rand(500, generator=stream)
        u = torch.rand(400, generator=stream)
        assert torch.equal(drawn, reference_sets(probs[500:], cp.quantile_, u, lam, 5))


def test_dense_inputs_with_ignore_index_in_chunks():
    gen = torch.Generator().manual_seed(4)
    probs = tied_probs(5 * 6 * 7, 9, gen, torch.float64, 3)
    target = torch.multinomial(probs, 1, generator=gen)[:, 0]
    dense, labels = probs.reshape(5, 6, 7, 9), target.reshape(5, 6, 7).clone()
    labels[0, :, :2] = -100
    test = dense.transpose(1, 2)  # (5, 7, 6, 9), not contiguous
    for chunk in (1, 700, None):
        options = {} if chunk is None else {"chunk_bytes": chunk}
        cp = SplitConformalClassifier(
            "raps", alpha=0.2, ignore_index=-100, lam=0.1, k_reg=1, **options
        )
        cp.fit(dense, labels)
        u = torch.rand(5, 7, 6, generator=gen, dtype=torch.float64)
        sets = cp.predict_sets(test, target=labels.transpose(1, 2), u=u)
        flat = test.reshape(-1, 9)
        want = reference_sets(flat, cp.quantile_, u.reshape(-1), 0.1, 1)
        want &= (labels.transpose(1, 2).reshape(-1) != -100)[:, None]
        assert sets.shape == (5, 7, 6, 9)
        assert torch.equal(sets.reshape(-1, 9), want)


def test_the_chunks_follow_the_byte_budget(monkeypatch):
    """Rows per chunk: max(1, chunk_bytes // (C (3 b + 1))); every chunk that long, the last
    one shorter."""
    seen = []
    original = _classifier.sets_of

    def spy(probs, *args):
        seen.append(probs.shape[0])
        return original(probs, *args)

    monkeypatch.setattr(_classifier, "sets_of", spy)
    gen = torch.Generator().manual_seed(5)
    probs = tied_probs(300, 10, gen, torch.float32, 0)
    target = torch.multinomial(probs, 1, generator=gen)[:, 0]
    per_row = 10 * (3 * 4 + 1)
    for chunk, rows in ((1, 1), (per_row * 7, 7), (per_row * 8 - 1, 7), (2**30, 2**30 // per_row)):
        seen.clear()
        cp = SplitConformalClassifier("aps", chunk_bytes=chunk).fit(probs[:200], target[:200])
        cp.predict_sets(probs[200:])
        assert _sets.rows_per_chunk(10, 4, chunk) == rows
        rows = min(rows, 100)
        assert seen == [rows] * (100 // rows) + ([100 % rows] if 100 % rows else [])
    # Mondrian quantiles: C (4 b + 26) bytes per row (the stable order of the prefix)
    seen.clear()
    cp = SplitConformalClassifier("aps", alpha=0.3, mondrian=True, chunk_bytes=10 * 42 * 30)
    cp.fit(probs[:200], target[:200]).predict_sets(probs[200:])
    assert seen == [30, 30, 30, 10]
    with pytest.raises(ValueError, match="chunk_bytes"):
        SplitConformalClassifier("aps", chunk_bytes=0)


@pytest.mark.parametrize("score", ["mi", "spread"])
def test_other_scores_in_chunks_equal_one_pass(score):
    import bayesdrop

    gen = torch.Generator().manual_seed(6)
    samples = torch.rand(8, 130, 6, generator=gen, dtype=torch.float64) ** 3
    pred = bayesdrop.ClassificationPrediction.from_samples(samples / samples.sum(-1, True))
    target = torch.randint(0, 6, (130,), generator=gen)
    sets = {}
    for chunk in (1, 500, None):
        options = {} if chunk is None else {"chunk_bytes": chunk}
        cp = SplitConformalClassifier(score, alpha=0.2, **options).fit(pred, target)
        sets[chunk] = cp.predict_sets(pred)
    want = conformity_scores(pred, score=score) <= cp.quantile_
    assert all(torch.equal(s, want) for s in sets.values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ranked_scores_never_decrease_along_the_ranking(dtype):
    """The premise of the prefix rule, in floating point: ties, zeros, u at 0 and 1, RAPS."""
    gen = torch.Generator().manual_seed(7)
    for levels in (0, 2, 5):
        probs = tied_probs(2000, 40, gen, dtype, levels)
        ordered = _sets.sorted_values(probs)
        assert torch.equal(ordered, probs.sort(dim=-1, descending=True).values)
        u = torch.rand(2000, generator=gen, dtype=dtype)
        u[:100], u[100:200] = 0.0, 1.0
        for draw, lam in ((None, 0.0), (u, 0.0), (u, 0.02), (None, 0.3)):
            scores = _sets.ranked_scores(ordered.clone(), draw, lam, 3)
            assert (scores.diff(dim=-1) >= 0).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_chunked_sets_on_cuda_equal_the_cpu():
    gen = torch.Generator().manual_seed(8)
    probs = tied_probs(3000, 50, gen, torch.float32, 4)
    target = torch.multinomial(probs, 1, generator=gen)[:, 0]
    u = torch.rand(2000, generator=gen)
    for mondrian in (False, True):
        cp = SplitConformalClassifier("raps", alpha=0.3, mondrian=mondrian, chunk_bytes=10**5)
        cp.fit(probs[:1000], target[:1000])
        on_cpu = cp.predict_sets(probs[1000:], u=u)
        assert torch.equal(on_cpu, reference_sets(probs[1000:], cp.quantile_, u, 0.01, 5))
        cp.quantile_ = cp.quantile_.cuda()
        on_gpu = cp.predict_sets(probs[1000:].cuda(), u=u.cuda())
        assert torch.equal(on_gpu.cpu(), on_cpu)


def reference_true_class_scores(probs, target, u, lam, k_reg):
    """The calibration scores in one pass over all rows, written out (the rule before chunks)."""
    p_y = probs.gather(-1, target[:, None])[:, 0]
    cols = torch.arange(probs.shape[-1])
    above = (probs > p_y[:, None]) | ((probs == p_y[:, None]) & (cols < target[:, None]))
    out = torch.where(above, probs, 0).sum(-1) + (p_y if u is None else u * p_y)
    if lam > 0:
        rank = above.sum(-1).to(probs.dtype) + 1
        out = out + lam * (rank - k_reg).clamp_min(0)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("score", ["aps", "raps"])
def test_calibration_scores_in_chunks_equal_one_pass(dtype, score):
    gen = torch.Generator().manual_seed(9)
    for c, levels in ((7, 3), (300, 0), (300, 5)):
        probs = tied_probs(401, c, gen, dtype, levels)
        target = torch.randint(0, c, (401,), generator=gen)
        u = torch.rand(401, generator=gen, dtype=dtype)
        lam = 0.02 if score == "raps" else 0.0
        for randomized in (True, False):
            want = reference_true_class_scores(probs, target, u if randomized else None, lam, 3)
            for chunk in (1, c * 13 * 10 + 5, None):
                options = {} if chunk is None else {"chunk_bytes": chunk}
                cp = SplitConformalClassifier(
                    score, lam=0.02, k_reg=3, randomized=randomized, **options
                )
                cp.fit(probs, target, u=u)
                assert torch.equal(cp.calibration_scores_, want)
