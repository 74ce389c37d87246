"""Split conformal classification at scale: bayesdrop vs MAPIE vs TorchCP, side by side.

One job is calibration plus prediction: fit the quantile on N calibration points, then predict
the boolean sets of N test points (``(N, C)``), for the threshold score (LAC) and randomised
APS, on the same float32 probabilities. bayesdrop validates its input (finite, in [0, 1], rows
summing to 1); MAPIE runs through a scikit-learn classifier that returns the given
probabilities (``prefit=True``; it works in float64, as it does); TorchCP through
``SplitPredictor.calculate_threshold`` / ``predict_with_logits`` with the identity transform.
Timings are the best of ``--repeat`` interleaved rounds in one process, one torch thread. The
memory column is the peak resident memory a job adds on top of what the process held before it
(Linux: ``VmHWM`` reset through ``/proc/self/clear_refs``), the inputs excluded; the output sets
(``N x C`` booleans) are included.

    python benchmarks/conformal.py           # N = 10^6, C = 10 and N = 10^5, C = 1000
    python benchmarks/conformal.py --quick   # N = 10^5, C = 10 and N = 10^4, C = 1000
"""

from __future__ import annotations

import argparse
import sys
import time
import types
import warnings

import numpy as np
import torch

from bayesdrop.conformal import SplitConformalClassifier

ALPHA = 0.1


def _stub_torchsort() -> None:
    """TorchCP imports torchsort (CUDA wheels) at import time and never calls it here; as in
    tests/conftest.py, a stub stands in when it is missing. TorchCP 1.2 also imports
    transformers (its LLM part), which imports torchvision: PyPI's torchvision wheels fail to
    register their C++ operators' kernels beside a CPU torch ("operator torchvision::nms does
    not exist"), so, as in tests/conftest.py, the two registration modules are empty ones
    (nothing here calls those operators)."""
    for name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
        sys.modules.setdefault(name, types.ModuleType(name))
    try:
        import torchsort  # noqa: F401
    except ImportError:
        stub = types.ModuleType("torchsort")
        stub.soft_rank = stub.soft_sort = None  # type: ignore[attr-defined]
        sys.modules["torchsort"] = stub


def make_data(n: int, c: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(2 * n, c, generator=gen)
    probs = logits.softmax(-1)
    cdf = (logits / 1.5).softmax(-1).cumsum(-1)
    target = (cdf < torch.rand(2 * n, 1, generator=gen)).sum(-1).clamp_max(c - 1)
    return probs[:n], target[:n], probs[n:]


def _status_kb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float("nan")


def _reset_peak() -> float:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status_kb("VmRSS")


def run_bayesdrop(score, cal, target, test):
    cp = SplitConformalClassifier(score, alpha=ALPHA, generator=torch.Generator().manual_seed(0))
    return cp.fit(cal, target).predict_sets(test)


def run_mapie(score, cal, target, test):
    from mapie.classification import SplitConformalClassifier as MapieClassifier
    from sklearn.base import BaseEstimator, ClassifierMixin

    class FixedProbs(ClassifierMixin, BaseEstimator):
        def __init__(self, cal=None, test=None):
            self.cal, self.test = cal, test

        def fit(self, X, y):
            self.classes_ = np.arange(self.cal.shape[1])
            return self

        def predict_proba(self, X):
            return self.cal if X.shape[1] == 1 else self.test

        def predict(self, X):
            return self.predict_proba(X).argmax(1)

    cal_np, test_np, y = cal.numpy(), test.numpy(), target.numpy()
    est = FixedProbs(cal_np, test_np).fit(None, y)
    clf = MapieClassifier(
        est, confidence_level=1 - ALPHA, conformity_score=score, prefit=True, random_state=0
    )
    # the features only say which array to return: one column for calibration, two for test
    clf.conformalize(np.zeros((len(y), 1), np.float32), y)
    params = {"include_last_label": "randomized"} if score == "aps" else None
    _, sets = clf.predict_set(np.zeros((len(test_np), 2), np.float32), params)
    return sets[:, :, 0]


def run_torchcp(score, cal, target, test):
    from torchcp.classification.predictor import SplitPredictor
    from torchcp.classification.score import APS, LAC

    fn = LAC(score_type="identity") if score == "lac" else APS(score_type="identity")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        predictor = SplitPredictor(fn, model=None, alpha=ALPHA)
    predictor.calculate_threshold(cal, target, ALPHA)
    return predictor.predict_with_logits(test)


RUNNERS = {"bayesdrop": run_bayesdrop, "MAPIE": run_mapie, "TorchCP": run_torchcp}


def bench(n: int, c: int, repeat: int) -> list[tuple]:
    cal, target, test = make_data(n, c, seed=0)
    best: dict[tuple[str, str], float] = {}
    memory: dict[tuple[str, str], float] = {}
    sizes: dict[tuple[str, str], float] = {}
    for _ in range(repeat):
        for score in ("lac", "aps"):
            for name, fn in RUNNERS.items():
                base = _reset_peak()
                t0 = time.perf_counter()
                sets = fn(score, cal, target, test)
                seconds = time.perf_counter() - t0
                key = (score, name)
                best[key] = min(best.get(key, float("inf")), seconds)
                memory[key] = max(memory.get(key, 0.0), (_status_kb("VmHWM") - base) / 1024)
                sizes[key] = float(torch.as_tensor(np.asarray(sets)).sum(-1).double().mean())
                del sets
    rows = []
    for score in ("lac", "aps"):
        ours = best[(score, "bayesdrop")]
        for name in RUNNERS:
            key = (score, name)
            rows.append((n, c, score, name, best[key], best[key] / ours, memory[key], sizes[key]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N / 10 in both settings")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    _stub_torchsort()
    scale = 10 if args.quick else 1
    settings = [(10**6 // scale, 10), (10**5 // scale, 1000)]
    print(f"one thread, best of {args.repeat} interleaved rounds, alpha = {ALPHA}")
    print("| N | C | score | library | seconds | x bayesdrop | peak MB added | mean set size |")
    print("|---:|---:|---|---|---:|---:|---:|---:|")
    for n, c in settings:
        for n_, c_, score, name, sec, ratio, mb, size in bench(n, c, args.repeat):
            print(
                f"| {n_:,} | {c_} | {score} | {name} | {sec:.3f} | {ratio:.2f} | {mb:.0f} "
                f"| {size:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
