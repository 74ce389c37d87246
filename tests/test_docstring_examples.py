"""Every docstring example runs when pasted into a fresh interpreter (tests/fresh_doctests.py).

pytest's own doctest run (``--doctest-modules``) executes each example with its module's globals,
so an example that forgets ``import torch`` still passes there; this run does not.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import fresh_doctests

import bayesdrop

SCRIPT = Path(__file__).with_name("fresh_doctests.py")


def public_objects():
    """(qualified name, object) of every name in ``__all__`` of bayesdrop and its subpackages."""
    seen, stack = set(), [bayesdrop]
    while stack:
        module = stack.pop()
        if module.__name__ in seen:
            continue
        seen.add(module.__name__)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                stack.append(obj)
            else:
                yield f"{module.__name__}.{name}", obj


def test_every_public_object_is_in_a_module_the_run_covers():
    modules = set(fresh_doctests._module_names())
    outside = [
        name
        for name, obj in public_objects()
        if getattr(obj, "__module__", "").startswith("bayesdrop") and obj.__module__ not in modules
    ]
    assert not outside


def test_docstring_examples_pass_in_a_fresh_interpreter(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    assert " 0 failed" in result.stdout
