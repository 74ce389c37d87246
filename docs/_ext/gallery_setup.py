"""Set-up run before each tutorial of the gallery, in the process that runs it.

sphinx-gallery runs two tutorials at a time in worker processes (``parallel`` in docs/conf.py),
which do not share the stub that docs/conf.py puts in ``sys.modules`` (with this function):
PyPI's torchvision wheel (which the Makefile pins) is a CUDA build whose operator registrations
do not load beside the CPU torch, and transformers and timm import torchvision. As in
tests/conftest.py, the two registration modules are stubbed (the tutorials use no torchvision
operator). Build set-up only: neither the library nor the tutorials' code carries it (the
troubleshooting page gives users the real fix, torch and torchvision from the same index).
"""

from __future__ import annotations

import sys
import types

REGISTRATIONS = ("torchvision._meta_registrations", "torchvision._autograd_registrations")


def stub_torchvision(gallery_conf, fname) -> None:
    """A ``reset_modules`` callable: stub torchvision's operator registrations."""
    for name in REGISTRATIONS:
        sys.modules.setdefault(name, types.ModuleType(name))
