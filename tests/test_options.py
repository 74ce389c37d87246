"""The prediction options are declared once (issue 25): every front door's signature matches
:class:`PredictOptions`, and the task/likelihood vocabulary has one mapping."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest

import bayesdrop
from bayesdrop import _vocabulary as vocab
from bayesdrop.exceptions import BayesdropValueError
from bayesdrop.predict._options import OPTION_NAMES, PredictOptions

FRONT_DOORS = {
    "mc_predict": bayesdrop.mc_predict,
    "MCPredictor": bayesdrop.MCPredictor.__init__,
}


@pytest.mark.parametrize("door", list(FRONT_DOORS))
def test_every_front_door_spells_the_options_as_declared(door):
    params = inspect.signature(FRONT_DOORS[door]).parameters
    hints = typing.get_type_hints(FRONT_DOORS[door])
    declared = typing.get_type_hints(PredictOptions)
    for field in dataclasses.fields(PredictOptions):
        assert field.name in params, f"{door} lacks option {field.name}"
        param = params[field.name]
        assert param.kind is inspect.Parameter.KEYWORD_ONLY
        assert param.default == field.default, (door, field.name)
        assert hints[field.name] == declared[field.name], (door, field.name)
    # the same seed parameter on both
    assert params["seed"].default is None


def test_the_option_names_are_the_fields():
    assert OPTION_NAMES == tuple(f.name for f in dataclasses.fields(PredictOptions))


def test_the_front_doors_pass_every_option_on(monkeypatch):
    seen = []
    original = PredictOptions.settings

    def spy(self):
        seen.append(self)
        return original(self)

    monkeypatch.setattr(PredictOptions, "settings", spy)
    import torch
    from torch import nn

    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    chosen = {"num_samples": 7, "engine": "loop", "tolerance": 0.5, "max_samples": 9}
    bayesdrop.mc_predict(model, torch.randn(2, 3), **chosen)
    bayesdrop.MCPredictor(model, progress=False, **chosen)
    for options in seen:
        assert {k: getattr(options, k) for k in chosen} == chosen


def test_one_vocabulary_with_one_mapping():
    assert vocab.LIKELIHOOD_OF_TASK == {
        "classification": "categorical",
        "regression": "gaussian",
        "heteroscedastic": "heteroscedastic",
    }
    with pytest.raises(BayesdropValueError, match=r"task='classification' is likelihood='cat"):
        bayesdrop.ELBO(num_data=10, likelihood="classification")
    with pytest.raises(BayesdropValueError, match=r"likelihood='gaussian' is task='regression'"):
        PredictOptions(task="gaussian").settings()
    # every likelihood is accepted wherever a likelihood is taken (regularizer_constants took
    # only two of the three)
    for likelihood in vocab.LIKELIHOODS:
        bayesdrop.ELBO(num_data=10, likelihood=likelihood)
        bayesdrop.functional.regularizer_constants(1e-2, 100, likelihood=likelihood)
    hetero = bayesdrop.functional.regularizer_constants(1e-2, 100, likelihood="heteroscedastic")
    assert hetero == bayesdrop.functional.regularizer_constants(1e-2, 100, tau=1.0)
    with pytest.raises(BayesdropValueError, match=r"`tau`.*1 for likelihood='heteroscedastic'"):
        bayesdrop.functional.regularizer_constants(1e-2, 100, tau=2.0, likelihood="heteroscedastic")
