"""`make demo`: train a Concrete Dropout network end to end on scikit-learn's digits.

Runs in well under a minute on a 2-core CPU and needs no download: the 8x8 digits ship with
scikit-learn. It prints the learned drop rates and test metrics of the MC-dropout predictive,
then writes a calibration report of the MC predictions (``--report``, default
``demo_report.html``) and prints its summary.
"""

from __future__ import annotations

import argparse
import time

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import bayesdrop


def build_model(num_features: int, num_classes: int, hidden: int = 128) -> nn.Sequential:
    """An MLP with Concrete Dropout before every dense layer."""
    return nn.Sequential(
        bayesdrop.ConcreteDropout(nn.Linear(num_features, hidden)),
        nn.ReLU(),
        bayesdrop.ConcreteDropout(nn.Linear(hidden, hidden)),
        nn.ReLU(),
        bayesdrop.ConcreteDropout(nn.Linear(hidden, num_classes)),
    )


def load_data(seed: int = 0):
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    idx_train, idx_test = train_test_split(
        torch.arange(len(y)).numpy(), test_size=0.25, random_state=seed, stratify=y.numpy()
    )
    return x[idx_train], y[idx_train], x[idx_test], y[idx_test]


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, seed: int = 0):
    """Minimise the negative ELBO with Adam (drop rates have their own, decay-free group)."""
    gen = torch.Generator().manual_seed(seed)
    elbo = bayesdrop.ELBO(num_data=len(x), likelihood="categorical")
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            terms = elbo(model(x[idx]), y[idx], model)
            opt.zero_grad()
            terms.loss.backward()
            opt.step()
    model.eval()
    return terms


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", default="demo_report.html", help="calibration report (HTML)")
    args = parser.parse_args(argv)

    # A model this small runs as fast on one thread, and one thread cannot be slowed down by
    # oversubscription when the machine is busy.
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    x_tr, y_tr, x_te, y_te = load_data(args.seed)
    model = build_model(x_tr.shape[1], 10)
    print(
        f"bayesdrop {bayesdrop.__version__} demo: Concrete Dropout MLP on scikit-learn digits "
        f"({len(x_tr)} train / {len(x_te)} test points)"
    )
    terms = train(model, x_tr, y_tr, epochs=args.epochs, seed=args.seed)
    print(
        f"trained {args.epochs} epochs: final minibatch nll {terms.nll.item():.4f}, "
        f"KL/N {terms.kl.item() / len(x_tr):.4f}"
    )
    print("learned drop rates:")
    for name, module in model.named_modules():
        if isinstance(module, bayesdrop.ConcreteDropout):
            print(f"  layer {name} ({module.num_inputs:>3} inputs): p = {module.p.item():.3f}")

    with torch.no_grad():
        det = model(x_te).softmax(-1)
    # One line for MC dropout: the engine, the samples and the uncertainty measures.
    prediction = bayesdrop.mc_predict(model, x_te, num_samples=args.samples, seed=args.seed)
    assert isinstance(prediction, bayesdrop.ClassificationPrediction)
    mc = prediction.probs
    for label, probs in (("deterministic", det), (f"MC ({args.samples} samples)", mc)):
        acc = (probs.argmax(-1) == y_te).float().mean().item()
        nll = -probs.gather(1, y_te[:, None]).clamp_min(1e-12).log().mean().item()
        print(f"{label:>18}: test accuracy {acc:.4f}, test NLL {nll:.4f}")
    wrong = mc.argmax(-1) != y_te
    mi = prediction.mutual_information
    print(
        f"mutual information (epistemic), mean: {mi[~wrong].mean():.4f} on correct, "
        f"{mi[wrong].mean():.4f} on misclassified test points [engine: {prediction.engine}]"
    )
    write_report(prediction, y_te, args.report)
    print(f"done in {time.perf_counter() - start:.1f} s")


def write_report(
    prediction: bayesdrop.ClassificationPrediction, target: torch.Tensor, path: str
) -> None:
    """Calibration report of the MC predictive: summary on stdout, HTML at ``path``."""
    report = bayesdrop.CalibrationReport.from_predictions(
        prediction, target, name="demo MLP (MC dropout)"
    )
    print(report.summary())
    report.to_html(path)
    print(f"calibration report written to {path}")


if __name__ == "__main__":
    main()
