"""Names available to every doctest."""

import pytest
import torch
from torch import nn

import bayesdrop


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace.update(torch=torch, nn=nn, bayesdrop=bayesdrop)
    torch.manual_seed(0)
