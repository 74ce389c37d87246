"""Shared fixtures."""

from __future__ import annotations

import sys
import types

import pytest

# PyPI's torchvision wheels are CUDA builds: beside the CPU torch pinned in the Makefile, importing
# torchvision fails while it registers meta/autograd kernels for its C++ operators
# ("operator torchvision::nms does not exist"). The model-zoo tests use only the models, never
# those operators, so the two registration modules are replaced by empty ones before the first
# import. This is test set-up only: the library never imports torchvision.
for _name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
    sys.modules.setdefault(_name, types.ModuleType(_name))


#: The tests that take the longest (over ~7 s each on two workers in ``pytest --durations``:
#: the fresh-interpreter docstring run, the model zoo, torch.distributed jobs of several
#: processes, the tutorials, the console command as a subprocess). They are marked ``slow``
#: here, in one place, so that ``pytest -m "not slow"`` is the quick local lane
#: (CONTRIBUTING.md); ``make test`` and CI run everything.
SLOW = (
    "test_docstring_examples.py::test_docstring_examples_pass_in_a_fresh_interpreter",
    "test_predict_zoo.py::",
    "test_convert_zoo.py::",
    "test_predict_distributed.py::",
    "test_calibration_streaming.py::test_two_processes",
    "test_calibration_streaming.py::test_sync_with",
    "test_conformal.py::test_sharded",
    "test_tutorials.py::",
    "test_cli.py::test_the_console_command_as_a_subprocess",
    "test_uci_benchmark.py::",
    "test_pyro.py::test_mean_field_fits_and_predicts",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(part in item.nodeid for part in SLOW):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state (the docstring examples seed themselves)."""
    import torch

    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """One intra-op thread for the test (the machine is shared: no oversubscription stalls),
    restored afterwards. Modules opt in with ``pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["never", "always"])
def metric_path(request):
    """Run a module's calibration tests on PyTorch's kernels and on the fused one-pass kernel
    (``BAYESDROP_FUSED=always`` forces it even for small inputs; skipped without numba)."""
    if request.param == "always":
        pytest.importorskip("numba")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BAYESDROP_FUSED", request.param)
        yield request.param


# TorchCP 1.2 (a peer of tests/test_conformal_peers.py) imports torchsort at import time, whose
# wheels are CUDA builds; TorchCP's split predictors and scores never call it. Only when torchsort
# is missing, a stub module stands in (its functions raise if anything calls them).
try:
    import torchsort  # noqa: F401
except ImportError:

    def _torchsort_stub(*args, **kwargs):
        raise RuntimeError("torchsort is a test stub here (tests/conftest.py)")

    _torchsort = types.ModuleType("torchsort")
    _torchsort.soft_rank = _torchsort_stub
    _torchsort.soft_sort = _torchsort_stub
    sys.modules["torchsort"] = _torchsort
