"""Numbers quoted across pages, produced by the tutorial that computes them, never typed.

A tutorial that computes a number another page quotes writes it, in a block hidden from its
rendered page (between ``# sphinx_gallery_start_ignore`` and ``# sphinx_gallery_end_ignore``),
into ``<name>.json`` in the folder that the environment variable ``BAYESDROP_NUMBERS`` names::

    {"tutorial": "tutorials/classification/plot_00_own_model_digits.py",
     "mode": "full",
     "numbers": {"auroc_entropy": 0.975, "mc_accuracy": 0.9805}}

When the variable is unset (a user running the script) nothing is written. In a docs build the
variable names ``auto_tutorials/_numbers`` (the config value ``generated_numbers_dir``; this
extension sets the variable when docs/conf.py has not), beside sphinx-gallery's outputs: when
the gallery reuses an unchanged example without running it, the numbers of its last run are
still there.

A page quotes a number with the ``number`` role, the file's name and the key, optionally a
format specification after a colon (Python's :func:`format`)::

    AUROC :number:`digits.auroc_entropy` (as stored), :number:`digits.mc_accuracy:.3f`

A missing file or key is a build error (``-W`` fails) that names the key and the tutorial to
run. The page depends on the file, so a re-run that changes a number re-reads the page.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from docutils import nodes

from bayesdrop.datasets import smoke_mode

ENV = "BAYESDROP_NUMBERS"
# "digits.auroc_entropy" or "digits.auroc_entropy:.3f"
_TARGET = re.compile(r"^(?P<file>[A-Za-z0-9_-]+)\.(?P<key>[A-Za-z0-9_.-]+)(?::(?P<spec>.*))?$")


class NumberError(LookupError):
    """A quoted number that the build did not produce (its message says what to run)."""


def current_mode() -> str:
    """``"smoke"`` when :func:`bayesdrop.datasets.smoke_mode` is on, else ``"full"``."""
    return "smoke" if smoke_mode() else "full"


def producer(name: str, sources: list[Path]) -> str | None:
    """The tutorial that writes ``<name>.json``: the first source file that names it."""
    needle = f'"{name}.json"'
    for folder in sources:
        for path in sorted(folder.rglob("*.py")) if folder.is_dir() else ():
            try:
                if needle in path.read_text(encoding="utf-8"):
                    return str(path.relative_to(folder.parent))
            except (OSError, UnicodeDecodeError, ValueError):
                continue
    return None


def _hint(name: str, sources: list[Path], folder: Path) -> str:
    tutorial = producer(name, sources)
    if tutorial is None:
        return f"no tutorial writes {name}.json"
    return (
        f"run {tutorial} with {ENV}={folder}, or let the docs build run it (sphinx-gallery "
        f"skips an unchanged tutorial: delete its .py.md5 under auto_tutorials/); it writes "
        f"{name}.json"
    )


def load(folder: Path, name: str) -> dict[str, Any]:
    """The parsed ``<name>.json`` of ``folder`` (raises :class:`FileNotFoundError`)."""
    with open(folder / f"{name}.json", encoding="utf-8") as handle:
        return json.load(handle)


def resolve(target: str, folder: Path, sources: list[Path]) -> tuple[str, Path, str | None]:
    """The text for ``:number:`target```, the file it came from, and a warning or None.

    Raises :class:`NumberError` (naming the key and the tutorial to run) for a malformed target,
    a missing file, a missing key, or a value the format specification does not fit.
    """
    match = _TARGET.match(target.strip())
    if match is None:
        raise NumberError(f"number {target!r}: expected 'file.key' or 'file.key:format'")
    name, key, spec = match["file"], match["key"], match["spec"]
    path = folder / f"{name}.json"
    try:
        data = load(folder, name)
    except FileNotFoundError:
        raise NumberError(
            f"number {name}.{key}: {path} does not exist; {_hint(name, sources, folder)}"
        ) from None
    except (OSError, ValueError) as error:
        raise NumberError(f"number {name}.{key}: cannot read {path} ({error})") from None
    numbers = data.get("numbers", {})
    if key not in numbers:
        raise NumberError(
            f"number {name}.{key}: no key {key!r} in {path} (it has {sorted(numbers)}); "
            f"{_hint(name, sources, folder)}"
        )
    value = numbers[key]
    try:
        text = str(value) if spec is None else format(value, spec)
    except (TypeError, ValueError) as error:
        raise NumberError(f"number {name}.{key}: format {spec!r} of {value!r}: {error}") from None
    warning = None
    mode = data.get("mode")
    if mode is not None and mode != current_mode():
        warning = (
            f"number {name}.{key} comes from a {mode}-mode run of "
            f"{data.get('tutorial', name)}, this is a {current_mode()}-mode build; rerun it"
        )
    return text, path, warning


def _folder(config) -> Path:
    return Path(config.generated_numbers_dir)


def _sources(app) -> list[Path]:
    dirs = app.config.generated_numbers_sources
    if not dirs:
        gallery = getattr(app.config, "sphinx_gallery_conf", None) or {}
        dirs = gallery.get("examples_dirs", [])
        dirs = [dirs] if isinstance(dirs, str) else list(dirs)
    return [(Path(app.confdir) / d).resolve() for d in dirs]


def number_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``:number:`file.key``` or ``:number:`file.key:spec```: a number a tutorial wrote."""
    env = inliner.document.settings.env
    app = env.app
    folder = _folder(app.config)
    try:
        value, path, warning = resolve(text, folder, _sources(app))
    except NumberError as error:
        env.note_dependency(str(folder / f"{text.split('.', 1)[0]}.json"))
        message = inliner.reporter.error(str(error), line=lineno)
        problem = inliner.problematic(rawtext, rawtext, message)
        return [problem], [message]
    env.note_dependency(str(path))
    messages = [] if warning is None else [inliner.reporter.warning(warning, line=lineno)]
    return [nodes.inline(rawtext, value, classes=["generated-number"])], messages


def _config_inited(app, config) -> None:
    """Resolve the folder against the configuration directory and export it to the tutorials
    (sphinx-gallery runs them after this event, in this process or in worker processes, which
    inherit the environment)."""
    folder = config.generated_numbers_dir or os.environ.get(ENV) or "auto_tutorials/_numbers"
    folder = (Path(app.confdir) / folder).resolve()
    config.generated_numbers_dir = str(folder)
    os.environ[ENV] = str(folder)


def setup(app):
    app.add_config_value("generated_numbers_dir", "", "env", types=[str])
    app.add_config_value("generated_numbers_sources", [], "env", types=[list])
    app.add_role("number", number_role)
    app.connect("config-inited", _config_inited)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
