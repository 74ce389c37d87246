"""Shared fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", params=["never", "always"])
def metric_path(request):
    """Run a module's calibration tests on PyTorch's kernels and on the fused one-pass kernel
    (``BAYESDROP_FUSED=always`` forces it even for small inputs; skipped without numba)."""
    if request.param == "always":
        pytest.importorskip("numba")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BAYESDROP_FUSED", request.param)
        yield request.param
