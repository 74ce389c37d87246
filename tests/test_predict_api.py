"""mc_predict and MCPredictor: arguments, errors, seeds, state, streaming."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
import torch.nn.functional as F
from predict_models import MLP, HeadCNN, Heteroscedastic, fitted_batchnorm, inputs
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import bayesdrop

pytestmark = pytest.mark.usefixtures("one_thread")


X = inputs("MLP")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(num_samples=0), "Expected `num_samples` to be a positive integer, but got 0"),
        (dict(num_samples=-3), "Expected `num_samples` to be a positive integer, but got -3"),
        (dict(num_samples="many"), "Expected `num_samples` to be an integer"),
        (dict(task="segmentation"), "Expected `task` to be one of 'classification'"),
        (dict(engine="fast"), "Expected `engine` to be one of 'auto', 'loop', 'batched'"),
        (dict(task="regression"), "Expected `tau` to be the model precision"),
        (dict(tau=1.0), "Expected `tau` to be None unless task='regression'"),
        (dict(target=torch.zeros(6)), "Expected `target` to be None for task='classification'"),
        (dict(chunk_size=0), "Expected `chunk_size` to be a positive integer"),
        (dict(tolerance=-1.0), "Expected `tolerance` to be positive"),
        (dict(seed=-1), "Expected `seed` to be a non-negative integer"),
        (dict(autocast="yes"), "Expected `autocast` to be a bool or a torch.dtype"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        bayesdrop.mc_predict(MLP(), X, **kwargs)


def test_bad_argument_types_are_type_errors():
    with pytest.raises(TypeError, match=r"Expected `x` to be a tensor, a tuple of positional"):
        bayesdrop.mc_predict(MLP(), [[1.0] * 5])
    with pytest.raises(TypeError, match="Expected `num_samples` to be an integer"):
        bayesdrop.mc_predict(MLP(), X, num_samples=2.5)
    with pytest.raises(TypeError, match=r"Expected `model` to be a torch\.nn\.Module"):
        bayesdrop.mc_predict(lambda x: x, X)


def test_input_on_another_device():
    with pytest.raises(ValueError, match=r"Expected `x` to be on the model's device \(cpu\).*meta"):
        bayesdrop.mc_predict(MLP(), torch.empty(6, 5, device="meta"))
    with pytest.raises(ValueError, match="at least one row"):
        bayesdrop.mc_predict(MLP(), torch.empty(0, 5))


def test_model_without_dropout():
    model = nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3))
    with pytest.raises(ValueError, match="no Monte-Carlo uncertainty"):
        bayesdrop.mc_predict(model, X)


class FunctionalOnly(nn.Module):
    """Functional dropout whose switch is not visible on the call (reached by the
    functional-noise mode of sampling())."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        on = self.training
        return self.fc(F.dropout(x, 0.5, training=on))


class Mixed(FunctionalOnly):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        on = self.training
        return self.drop(self.fc(F.dropout(x, 0.5, training=on)))


class FlagSwitched(nn.Module):
    """``training=self.training`` on the dropout call: sampling() switches this module."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        return self.fc(F.dropout(x, 0.5, training=self.training))


def test_functional_dropout():
    # before: refused as having no noise (FunctionalOnly) or sampled without its functional
    # dropout (Mixed); now every F.dropout call inside the prediction runs as in training
    for cls in (FunctionalOnly, Mixed):
        model = cls().eval()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            pred = bayesdrop.mc_predict(model, X, num_samples=64, seed=0)
        assert bool((pred.mutual_information > 0).all()) and not model.training
        check = bayesdrop.check_noise(model, X)
        assert check.ok, check.describe()
    # the module's own training flag switches its functional dropout: sampled, no warning
    model = FlagSwitched().eval()
    assert bayesdrop.nn.is_noise_module(model)
    pred = bayesdrop.mc_predict(model, X, num_samples=8, seed=0)
    assert bool((pred.mutual_information > 0).all()) and not model.training


def test_output_that_does_not_fit_the_task():
    with pytest.raises(ValueError, match="Expected `model` to be a classifier returning logits"):
        bayesdrop.mc_predict(Heteroscedastic(), torch.randn(4, 2), num_samples=2)
    with pytest.raises(ValueError, match="returning \\(mean, log_variance\\)"):
        bayesdrop.mc_predict(MLP(), X, num_samples=2, task="heteroscedastic")
    with pytest.raises(ValueError, match="Expected `target` to be shaped like one model output"):
        bayesdrop.mc_predict(MLP(), X, task="regression", tau=1.0, target=torch.zeros(6))


@pytest.mark.parametrize("engine", ["loop", "batched", "cached", "auto"])
def test_seed_reproducible_and_global_state_untouched(engine):
    model, x = HeadCNN().eval(), inputs("HeadCNN")
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = bayesdrop.mc_predict(model, x, num_samples=10, seed=7, engine=engine)
    assert torch.equal(torch.rand(3), expected_next)  # the global stream did not move
    b = bayesdrop.mc_predict(model, x, num_samples=10, seed=7, engine=engine)
    c = bayesdrop.mc_predict(model, x, num_samples=10, seed=8, engine=engine)
    assert torch.equal(a.probs, b.probs)
    assert not torch.equal(a.probs, c.probs)


class Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
        self.mc = bayesdrop.MCDropout(0.3)
        self.calls = 0
        # a hook, not code in forward: the cached engine runs a traced graph, which replays
        # module calls (and their hooks) but not Python side effects of forward itself
        self.mc.register_forward_hook(self._count)

    def _count(self, *args):
        self.calls += 1
        if self.calls > 2:
            raise RuntimeError("boom")

    def forward(self, x):
        return self.mc(self.net(x))


@pytest.mark.parametrize("engine", ["loop", "batched", "cached"])
def test_modes_restored_after_an_exception(engine):
    model = Exploding()
    model.train()
    model.net[1].eval()  # a mixed state must come back exactly
    before = {name: m.training for name, m in model.named_modules()}
    with pytest.raises(RuntimeError, match="boom"):
        bayesdrop.mc_predict(model, X, num_samples=50, engine=engine, chunk_size=1)
    assert {name: m.training for name, m in model.named_modules()} == before
    assert model.mc.mc is None


def test_auto_num_samples_meets_the_tolerance_or_the_cap():
    model, x = HeadCNN().eval(), inputs("HeadCNN")
    pred = bayesdrop.mc_predict(model, x, num_samples="auto", tolerance=0.02, seed=0)
    assert pred.num_samples < 1000
    assert pred.probs_std_error.max() <= 0.02
    assert pred.mutual_information_std_error.max() <= 0.02
    capped = bayesdrop.mc_predict(
        model, x, num_samples="auto", tolerance=1e-6, max_samples=70, seed=0
    )
    assert capped.num_samples == 70
    assert capped.probs_std_error.max() > 1e-6
    fixed = bayesdrop.mc_predict(model, x, num_samples=10)
    assert fixed.probs_std_error is None and fixed.mutual_information_std_error is None


def test_regression_tasks_and_log_likelihood():
    model, x = Heteroscedastic().eval(), torch.randn(5, 2)
    y = torch.randn(5, 1)
    kept = bayesdrop.mc_predict(
        model, x, task="heteroscedastic", num_samples=30, seed=0, return_samples=True
    )
    streamed = bayesdrop.mc_predict(
        model, x, task="heteroscedastic", num_samples=30, seed=0, target=y
    )
    torch.testing.assert_close(kept.log_likelihood(y), streamed.log_likelihood(y))
    assert streamed.samples is None
    torch.testing.assert_close(kept.aleatoric_variance, kept.log_variance_samples.mean(0).exp())
    with pytest.raises(ValueError, match="Predict with return_samples=True, or pass target"):
        streamed.log_likelihood(y + 1)
    with pytest.raises(ValueError, match=r"Expected `target` to be shaped like the mean \(5, 1\)"):
        kept.log_likelihood(torch.zeros(5))
    reg = bayesdrop.mc_predict(MLP(), X, task="regression", tau=4.0, num_samples=20, seed=0)
    torch.testing.assert_close(reg.aleatoric_variance, torch.full((6, 4), 0.25))
    auto = bayesdrop.mc_predict(
        MLP(), X, task="regression", tau=4.0, num_samples="auto", max_samples=100
    )
    assert auto.mean_std_error is not None and auto.num_samples >= 32


def test_autocast_bfloat16_on_cpu():
    model, x = HeadCNN().eval(), inputs("HeadCNN")
    ref = bayesdrop.mc_predict(model, x, num_samples=20, seed=0)
    low = bayesdrop.mc_predict(model, x, num_samples=20, seed=0, autocast=torch.bfloat16)
    assert low.probs.dtype == torch.float32
    torch.testing.assert_close(low.probs, ref.probs, atol=0.05, rtol=0)


def _loader(n=22, batch=8, targets=False):
    x = torch.randn(n, 5, generator=torch.Generator().manual_seed(2))
    tensors = (x, torch.randn(n, 4)) if targets else (x,)
    return x, DataLoader(TensorDataset(*tensors), batch_size=batch)


@pytest.mark.parametrize("engine", ["batched", "cached"])
def test_predictor_equals_batchwise_mc_predict_in_one_seeded_stream(engine):
    model = fitted_batchnorm()
    x, loader = _loader()
    predictor = bayesdrop.MCPredictor(model, num_samples=12, seed=3, engine=engine, progress=False)
    pred = predictor.predict(loader)
    batches = [xb for (xb,) in loader]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        parts = [bayesdrop.mc_predict(model, xb, num_samples=12, engine=engine) for xb in batches]
    torch.testing.assert_close(pred.probs, torch.cat([p.probs for p in parts]))
    torch.testing.assert_close(
        pred.mutual_information, torch.cat([p.mutual_information for p in parts])
    )
    assert pred.probs.shape == (22, 3) and pred.engine == parts[0].engine
    # against the concatenated data: equal in distribution (within Monte-Carlo error)
    many = bayesdrop.MCPredictor(model, num_samples=400, seed=0, progress=False).predict(loader)
    whole = bayesdrop.mc_predict(model, x, num_samples=400, seed=1, return_samples=True)
    se = whole.samples.std(0) / 20
    assert bool(((many.probs - whole.probs).abs() <= 5 * 2**0.5 * se + 1e-6).all())


def test_predictor_regression_uses_loader_targets():
    x, loader = _loader(targets=True)
    y = torch.cat([yb for _, yb in loader])
    pred = bayesdrop.MCPredictor(
        MLP(), task="regression", tau=2.0, num_samples=10, seed=0, progress=False
    ).predict(loader)
    assert pred.target_log_likelihood.shape == (22,)
    torch.testing.assert_close(pred.log_likelihood(y), pred.target_log_likelihood)
    one = bayesdrop.MCPredictor(MLP(), num_samples=3, progress=False).predict(x)
    assert one.probs.shape == (22, 4)


def test_predictor_bad_data():
    predictor = bayesdrop.MCPredictor(MLP(), num_samples=2, progress=False)
    with pytest.raises(ValueError, match="Expected `data` to be at least one batch"):
        predictor.predict([])
    with pytest.raises(TypeError, match="Expected `data` to be an iterable of tensors"):
        predictor.predict(["text"])
    keyed = bayesdrop.MCPredictor(MLP(), num_samples=2, progress=False, target_key="y")
    with pytest.raises(
        ValueError, match=r"Expected `target_key` to be a key of the batches \('x'\)"
    ):
        keyed.predict([{"x": X}])
    with pytest.raises(ValueError, match="Expected `engine` to be one of"):
        bayesdrop.MCPredictor(MLP(), engine="gpu")


class _Scaled(nn.Module):
    """Logits times ``scale`` plus ``offset``: NaN or inf logits on demand."""

    def __init__(self, scale: float, regression: bool = False) -> None:
        super().__init__()
        self.fc, self.drop = nn.Linear(X.shape[1], 1 if regression else 3), nn.Dropout(0.2)
        self.scale, self.offset = scale, torch.zeros(1 if regression else 3)

    def forward(self, x):
        return self.drop(self.fc(x)) * self.scale + self.offset


@pytest.mark.parametrize("engine", ["loop", "batched", "cached"])
@pytest.mark.parametrize("scale", [float("nan"), float("inf")])
def test_non_finite_outputs_are_refused(engine, scale):
    with pytest.raises(ValueError, match=r"`model` to be a model whose outputs give finite prob"):
        bayesdrop.mc_predict(_Scaled(scale).eval(), X, num_samples=4, engine=engine)
    with pytest.raises(ValueError, match=r"finite (means|variances)"):
        bayesdrop.mc_predict(
            _Scaled(scale, regression=True).eval(), X, num_samples=4, engine=engine,
            task="regression", tau=1.0,
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"finite prob"):
        bayesdrop.MCPredictor(_Scaled(scale).eval(), num_samples=4, progress=False).predict(X)
    # -inf on some classes is a valid mask: finite probabilities, no error
    masked = _Scaled(1.0).eval()
    masked.offset = torch.tensor([-float("inf"), 0.0, 0.0])
    pred = bayesdrop.mc_predict(masked, X, num_samples=4, engine=engine)
    assert bool((pred.probs[:, 0] == 0).all()) and bool(torch.isfinite(pred.probs).all())


def test_predictor_refuses_a_target_with_other_rows():
    predictor = bayesdrop.MCPredictor(MLP(), num_samples=2, progress=False)
    y = torch.zeros(X.shape[0] - 1, dtype=torch.long)
    with pytest.raises(ValueError, match=r"`data` to be batches whose target has one row per"):
        predictor.predict([(X, y)])
    with pytest.raises(ValueError, match=r"got a target of shape \(\)"):
        predictor.predict([(X, torch.tensor(1))])


def test_samples_on_request_and_result_is_frozen():
    pred = bayesdrop.mc_predict(MLP(), X, num_samples=7, return_samples=True)
    assert pred.samples.shape == (7, 6, 4)
    torch.testing.assert_close(pred.samples.sum(-1), torch.ones(7, 6))
    with pytest.raises(AttributeError):
        pred.probs = None
    assert bayesdrop.mc_predict(MLP(), X, num_samples=7).samples is None


def test_to_dict_gives_every_field_without_copies():
    # frameworks that rebuild returned values (Lightning's apply_to_collection) need a plain dict
    pred = bayesdrop.mc_predict(MLP(), X, num_samples=7, seed=0)
    d = pred.to_dict()
    assert type(d) is dict
    assert list(d) == [f.name for f in dataclasses.fields(pred)]
    assert d["probs"] is pred.probs and d["num_samples"] == 7 and d["samples"] is None
    reg = bayesdrop.mc_predict(MLP(), X, num_samples=7, seed=0, task="regression", tau=2.0)
    assert reg.to_dict()["tau"] == 2.0 and reg.to_dict()["mean"] is reg.mean


def test_predictor_samples_functional_dropout():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predictor = bayesdrop.MCPredictor(FunctionalOnly(), num_samples=8, progress=False)
        pred = predictor.predict(X)
    assert pred.probs.shape == (6, 3) and bool((pred.mutual_information > 0).all())
