"""The fused CPU step kernels of the LSTM recurrence (numba) and the PyTorch path beside them."""

from __future__ import annotations

import sys

import pytest
import torch

import bayesdrop
from bayesdrop.functional import _lstm_kernel, lstm_recurrence

pytest.importorskip("numba")

T, N, H = 7, 3, 5
MASKS = ["untied", "tied", "none"]
LAYOUTS = ["contiguous", "gate-major", "gate-inner"]


@pytest.fixture
def float64_kernel(monkeypatch):
    monkeypatch.setattr(_lstm_kernel, "FLOAT64", True)


@pytest.fixture
def kernel_calls(monkeypatch):
    """Whether each call of ``kernels`` returned the kernels (True) or sent to PyTorch (False)."""
    calls: list[bool] = []
    real = _lstm_kernel.kernels

    def spy(*args):
        found = real(*args)
        calls.append(found is not None)
        return found

    monkeypatch.setattr(_lstm_kernel, "kernels", spy)
    return calls


def inputs(masks, layout, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    kw = {"dtype": dtype, "generator": gen}
    gx = 2 * torch.randn(T, 4, N, H, **kw)
    if layout == "gate-major":  # the untied projection's layout: (G, T, N, H) in memory
        gx = gx.transpose(0, 1).contiguous().transpose(0, 1)
    elif layout == "gate-inner":  # the tied projection's layout: (T, N, G, H) in memory
        gx = gx.permute(0, 2, 1, 3).contiguous().permute(0, 2, 1, 3)
    h0, c0 = torch.randn(N, H, **kw), torch.randn(N, H, **kw)
    w = torch.randn(4 * H, H, **kw) / H**0.5
    m = {"untied": 4, "tied": 1, "none": 0}[masks]
    mask = (
        None
        if m == 0
        else torch.bernoulli(torch.full((m, N, H), 0.6, dtype=dtype), generator=gen) / 0.6
    )
    leaves = [t.requires_grad_(True) for t in (gx, h0, c0, w)]
    return leaves, mask


def run(leaves, mask, backend, dtype, seed=1):
    """Outputs and the gradients of all four inputs under a loss that reads all three outputs."""
    for t in leaves:
        t.grad = None
    out, hn, cn = lstm_recurrence(*leaves, mask, backend=backend)
    gen = torch.Generator().manual_seed(seed)
    loss = sum((v * torch.randn(v.shape, dtype=dtype, generator=gen)).sum() for v in (out, hn, cn))
    loss.backward()
    return [out.detach(), hn.detach(), cn.detach(), *[t.grad.clone() for t in leaves]]


def assert_all_close(got, want, dtype):
    tol = {"rtol": 1e-4, "atol": 2e-5} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    names = ["output", "h_n", "c_n", "d_gates_x", "d_h0", "d_c0", "d_weight_hh"]
    for name, a, b in zip(names, got, want, strict=True):
        torch.testing.assert_close(a, b, **tol, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("masks", MASKS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_equals_autograd_reference(masks, layout, dtype, float64_kernel, kernel_calls):
    leaves, mask = inputs(masks, layout, dtype)
    reference = run(leaves, mask, "autograd", dtype)
    fused = run(leaves, mask, "manual", dtype)
    assert kernel_calls == [True]  # the kernels ran
    assert leaves[0].grad.stride() == leaves[0].stride()  # d_gates in the layout of gates_x
    assert_all_close(fused, reference, dtype)


@pytest.mark.parametrize("masks", MASKS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pytorch_path_equals_autograd_reference(masks, dtype, monkeypatch):
    monkeypatch.setattr(_lstm_kernel, "kernels", lambda *args: None)  # as without numba
    leaves, mask = inputs(masks, "gate-major", dtype)
    assert_all_close(
        run(leaves, mask, "manual", dtype), run(leaves, mask, "autograd", dtype), dtype
    )


def test_float64_takes_the_pytorch_path_by_default(kernel_calls):
    leaves, mask = inputs("untied", "contiguous", torch.float64)
    run(leaves, mask, "manual", torch.float64)
    assert kernel_calls == [False]
    leaves, mask = inputs("untied", "contiguous", torch.float32)
    run(leaves, mask, "manual", torch.float32)
    assert kernel_calls == [False, True]


@pytest.mark.parametrize("masks", MASKS)
def test_kernel_gradcheck(masks, float64_kernel, kernel_calls):
    leaves, mask = inputs(masks, "gate-major", torch.float64)
    leaves = [t.detach()[..., :3].clone().requires_grad_(True) for t in leaves[:3]] + [
        torch.randn(12, 3, dtype=torch.float64, requires_grad=True)
    ]
    mask = None if mask is None else mask[..., :3].contiguous()
    assert torch.autograd.gradcheck(lambda *a: lstm_recurrence(*a, mask), leaves)
    assert kernel_calls and all(kernel_calls)


def test_mask_that_only_broadcasts_takes_the_pytorch_path(kernel_calls):
    leaves, _ = inputs("none", "contiguous", torch.float32)
    mask = torch.rand(4, 1, H)  # the same mask for every row: the kernels would read past it
    assert_all_close(
        run(leaves, mask, "manual", torch.float32),
        run(leaves, mask, "autograd", torch.float32),
        torch.float32,
    )
    assert kernel_calls == []


def test_nan_propagates_through_the_kernel(kernel_calls):
    leaves, mask = inputs("untied", "contiguous", torch.float32)
    with torch.no_grad():
        leaves[0][2, 1, 0, 3] = float("nan")  # a forget gate at step 2
    out, _, cn = lstm_recurrence(*leaves, mask)
    ref, _, ref_cn = lstm_recurrence(*leaves, mask, backend="autograd")
    assert kernel_calls == [True]
    assert out[:2].isfinite().all() and out[2:, 0, 3].isnan().all() and cn[0, 3].isnan()
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=2e-5, equal_nan=True)
    torch.testing.assert_close(cn, ref_cn, rtol=1e-4, atol=2e-5, equal_nan=True)


def test_float32_tanh_approximation():
    numba = pytest.importorskip("numba")
    np = pytest.importorskip("numpy")
    tanh32 = _lstm_kernel._make_tanh32(numba, np.float32)

    @numba.njit(error_model="numpy")
    def apply(x, out):
        for j in range(x.size):
            out[j] = tanh32(x[j])

    x = np.concatenate([np.linspace(-30, 30, 400001), [np.inf, -np.inf, np.nan, 0.0]])
    x = x.astype(np.float32)
    got = np.empty_like(x)
    apply(x, got)
    assert got.dtype == np.float32
    err = np.abs(got[:-4].astype(np.float64) - np.tanh(x[:-4].astype(np.float64)))
    assert err.max() < 4e-7
    assert np.abs(got[:-3]).max() <= 1.0 and got[-4:-2].tolist() == [1.0, -1.0]
    assert np.isnan(got[-2]) and got[-1] == 0.0


@pytest.mark.parametrize("masks", ["untied", "tied"])
def test_module_float32_kernel_and_pytorch_path_agree(masks, monkeypatch, kernel_calls):
    torch.manual_seed(0)
    lstm = bayesdrop.VariationalLSTM(4, 6, 2, masks=masks, input_p=0.5, hidden_p=0.3,
                                     output_p=0.5).train()  # fmt: skip
    drawn = lstm.sample_masks(3)
    x = torch.randn(8, 3, 4, requires_grad=True)
    results = []
    for path in ("kernel", "pytorch", "autograd"):
        if path == "pytorch":
            monkeypatch.setattr(_lstm_kernel, "kernels", lambda *args: None)
        lstm.backend = "autograd" if path == "autograd" else "manual"
        out, (h, c) = lstm(x, masks=drawn)
        (out.sum() + h.pow(2).sum() + c.sum()).backward()
        results.append([out.detach(), x.grad.clone(), *[p.grad.clone() for p in lstm.parameters()]])
        x.grad = None
        lstm.zero_grad(set_to_none=True)
    assert kernel_calls == [True, True]  # two layers on the kernel path
    for a, b, c in zip(*results, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=2e-5)
        torch.testing.assert_close(b, c, rtol=1e-5, atol=1e-6)


def test_without_numba_the_pytorch_path_runs(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    _lstm_kernel._compiled.cache_clear()
    try:
        leaves, mask = inputs("untied", "gate-major", torch.float32)
        assert _lstm_kernel.kernels(*leaves, mask) is None
        assert_all_close(
            run(leaves, mask, "manual", torch.float32),
            run(leaves, mask, "autograd", torch.float32),
            torch.float32,
        )
    finally:
        monkeypatch.undo()
        _lstm_kernel._compiled.cache_clear()
    assert _lstm_kernel.kernels(*leaves, mask) is not None
