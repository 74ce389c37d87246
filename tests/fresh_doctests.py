"""Run every docstring example of bayesdrop as a user pasting it would: a fresh interpreter.

``python tests/fresh_doctests.py [MODULE ...]`` prints each failure (module, object, example,
expected and actual output) and exits 1 if any; ``tests/test_docstring_examples.py`` runs it.

What "fresh" means here, docstring by docstring (each docstring is one example session):

- its own namespace: only what the example imports (no names injected by a ``conftest.py``);
- its own random state: a non-deterministic seed, as a new interpreter has, so an example whose
  printed output depends on randomness passes only if it seeds itself;
- only the modules ``import bayesdrop`` loads: the docstrings are found in a child process, and
  every docstring runs in a child forked from a process that imported nothing but ``torch`` and
  ``bayesdrop`` (so ``bayesdrop.pyro.X`` without ``import bayesdrop.pyro`` fails, as it would);
- an empty working directory and an empty ``BAYESDROP_DATA`` folder (no files users do not have);
- exact output: ``NORMALIZE_WHITESPACE`` and ``ELLIPSIS`` only (no ``NUMBER``); warnings are
  errors (the third-party ignores of ``pyproject.toml``), and anything written to stderr fails.

Forking (one ``import torch`` for all of them) instead of one interpreter per docstring keeps
the run to seconds; the state a child inherits is that of ``import torch, bayesdrop``, which is
what a user's session has after the example's own first line. Needs ``os.fork`` (Linux, macOS).
"""

from __future__ import annotations

import doctest
import io
import os
import pickle
import pkgutil
import re
import select
import sys
import tempfile
import time
import warnings

PACKAGE = "bayesdrop"
OPTIONFLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
TIMEOUT_S = 120.0
# The third-party deprecations pyproject.toml ignores (warnings are otherwise errors).
IGNORED_WARNINGS = [
    ("ignore", DeprecationWarning, r"pyro\..*|pyro$"),
    ("ignore", DeprecationWarning, r"netcal\..*"),
    ("ignore", DeprecationWarning, r"gpytorch\..*"),
    ("ignore", DeprecationWarning, r"linear_operator\..*"),
    ("ignore", FutureWarning, r"netcal\..*"),
]


def _fork_call(func, *args, timeout: float = TIMEOUT_S):
    """``func(*args)`` in a forked child; returns its pickled result, or an error string."""
    read_fd, write_fd = os.pipe()
    err_read, err_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        os.close(err_read)
        os.dup2(err_write, 2)
        code = 0
        try:
            payload = pickle.dumps(("ok", func(*args)))
        except BaseException as error:  # reported to the parent
            payload = pickle.dumps(("error", f"{type(error).__name__}: {error}"))
            code = 1
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(payload)
        os._exit(code)
    os.close(write_fd)
    os.close(err_write)
    chunks: dict[int, list[bytes]] = {read_fd: [], err_read: []}
    open_fds = [read_fd, err_read]
    deadline = time.monotonic() + timeout
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, 9)
            break
        ready, _, _ = select.select(open_fds, [], [], left)
        for fd in ready:
            data = os.read(fd, 1 << 16)
            if data:
                chunks[fd].append(data)
            else:
                open_fds.remove(fd)
    for fd in (read_fd, err_read):
        os.close(fd)
    os.waitpid(pid, 0)
    stderr = b"".join(chunks[err_read]).decode(errors="replace")
    if open_fds:
        return ("error", f"timed out after {timeout:.0f} s"), stderr
    raw = b"".join(chunks[read_fd])
    if not raw:
        return ("error", "the child process died without a result"), stderr
    return pickle.loads(raw), stderr


def _module_names() -> list[str]:
    import bayesdrop

    names = [PACKAGE]
    names += [info.name for info in pkgutil.walk_packages(bayesdrop.__path__, PACKAGE + ".")]
    return sorted(names)


def _find(module_name: str) -> list[tuple]:
    """The docstrings with examples of the objects defined in ``module_name``."""
    import importlib

    module = importlib.import_module(module_name)
    found = doctest.DocTestFinder(exclude_empty=True).find(module)
    return [
        (module_name, test.name, test.filename, test.lineno, test.examples)
        for test in sorted(found, key=lambda t: t.name)
        if test.examples
    ]


def _fresh_state(workdir: str) -> None:
    import random

    import numpy as np
    import torch

    os.chdir(workdir)
    seed = int.from_bytes(os.urandom(4), "little")
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the global state an example would use
    torch.seed()
    warnings.resetwarnings()
    warnings.simplefilter("error")
    for action, category, module in IGNORED_WARNINGS:
        warnings.filterwarnings(action, category=category, module=module)


def _run(test: tuple, workdir: str) -> str:
    """Run one docstring; the doctest report of its failures ('' when it passes)."""
    _, name, filename, lineno, examples = test
    _fresh_state(workdir)
    globs = {"__name__": "__main__"}
    doc_test = doctest.DocTest(examples, globs, name, filename, lineno, None)
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS, verbose=False)
    runner.run(doc_test, out=report.write, clear_globs=True)
    if "matplotlib.pyplot" in sys.modules:  # an example's figures
        sys.modules["matplotlib.pyplot"].close("all")
    return report.getvalue()


def run(module_names: list[str] | None = None, verbose: bool = False) -> tuple[int, list[str]]:
    """Every example of the given modules (default: all of bayesdrop), each docstring fresh.

    Returns the number of docstrings run and one message per failure.
    """
    # loaded once, the children inherit them; numpy.random is lazy and seeded in every child
    import numpy.random  # noqa: F401
    import torch  # noqa: F401

    import bayesdrop  # noqa: F401

    names = module_names or _module_names()
    failures: list[str] = []
    count = 0
    with tempfile.TemporaryDirectory() as root:
        data = os.path.join(root, "data")
        os.makedirs(data)
        os.environ["BAYESDROP_DATA"] = data
        os.environ.setdefault("MPLBACKEND", "Agg")
        for module_name in names:
            (status, tests), stderr = _fork_call(_find, module_name)
            if status != "ok":
                failures.append(f"{module_name}: could not be imported: {tests}\n{stderr}")
                continue
            for test in tests:
                count += 1
                workdir = tempfile.mkdtemp(dir=root)
                began = time.perf_counter()
                (status, report), stderr = _fork_call(_run, test, workdir)
                if verbose:
                    print(f"{time.perf_counter() - began:6.2f} s  {test[1]}", flush=True)
                line = "" if test[3] is None else f":{test[3] + 1}"
                where = f"{test[1]} ({os.path.relpath(test[2])}{line})"
                if status != "ok":
                    failures.append(f"{where}: {report}\n{stderr}")
                elif report:
                    failures.append(f"{where}:\n{report}")
                elif stderr.strip():
                    failures.append(f"{where}: wrote to stderr:\n{stderr}")
    return count, failures


def main(argv: list[str]) -> int:
    start = time.perf_counter()
    verbose = "-v" in argv
    count, failures = run([a for a in argv if a != "-v"] or None, verbose=verbose)
    for failure in failures:
        print(re.sub(r"\n{3,}", "\n\n", failure.rstrip()), end="\n\n" + "=" * 70 + "\n")
    elapsed = time.perf_counter() - start
    print(f"{count} docstrings run in fresh processes, {len(failures)} failed ({elapsed:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    # run as a script, the first path entry is tests/: not something a user's session has
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)
    sys.exit(main(sys.argv[1:]))
