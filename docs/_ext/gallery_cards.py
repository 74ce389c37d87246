"""Each tutorial card of the gallery shows its data sets and the run time of this build.

sphinx-gallery writes the gallery's index pages when the builder starts; this extension runs
right after it (``builder-inited``, a later priority) and adds one line under each card's title:
the tutorial's tags (its data sets, declared in the tutorial as ``# sphinx_gallery_tags = [...]``,
which sphinx-gallery also shows on the page and offers as a filter) and the run time that
sphinx-gallery recorded on the tutorial's page ("Total running time of the script"). The run
time is read from the build's own output, never typed: a tutorial reused from an earlier build
keeps the time of the run that made its page, and one the build did not run says so. A tutorial
without a ``sphinx_gallery_tags`` line is a build error, so that no card lacks its data.

The tutorials' pages also have no right sidebar: their code and output get its width.
"""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

from sphinx.errors import ExtensionError

_TAGS = re.compile(r"^# sphinx_gallery_tags = (\[.*\])\s*$", re.MULTILINE)
_TIME = re.compile(r"\*\*Total running time of the script:\*\* \((\d+) minutes ([\d.]+) seconds\)")
_CARD = re.compile(
    r"(:doc:`/(?P<doc>auto_tutorials/[\w/]+)`\n\n\.\. raw:: html\n\n"
    r"\s*<div class=\"sphx-glr-thumbnail-title\">.*?</div>)"
)


def tags_of(source: Path) -> list[str]:
    """The ``sphinx_gallery_tags`` list of a tutorial's source (error when it has none)."""
    found = _TAGS.search(source.read_text(encoding="utf-8"))
    if found is None:
        raise ExtensionError(
            f"{source}: every tutorial names its data sets in a line "
            '`# sphinx_gallery_tags = ["..."]` (shown on its gallery card)'
        )
    return [str(tag) for tag in ast.literal_eval(found.group(1))]


def run_time_of(page: Path) -> str:
    """The run time sphinx-gallery wrote on a tutorial's page, as text for the card."""
    found = _TIME.search(page.read_text(encoding="utf-8")) if page.is_file() else None
    if found is None:
        return "not run in this build"
    seconds = 60 * int(found.group(1)) + float(found.group(2))
    return f"ran in {seconds:.0f} s" if seconds < 120 else f"ran in {seconds / 60:.1f} min"


def card_line(docs: Path, sources: Path, doc: str) -> str:
    relative = Path(doc).relative_to("auto_tutorials")
    tags = tags_of(sources / relative.with_suffix(".py"))
    text = f"Data: {', '.join(tags)} · {run_time_of(docs / (doc + '.rst'))}"
    return f'\n      <div class="bd-card-meta">{html.escape(text)}</div>'


def add_card_lines(app) -> None:
    docs = Path(app.srcdir)
    gallery = docs / "auto_tutorials"
    sources = (docs / app.config.sphinx_gallery_conf["examples_dirs"][0]).resolve()
    for index in gallery.rglob("index.rst"):
        text = index.read_text(encoding="utf-8")
        if "bd-card-meta" in text:  # written by an earlier pass of this build
            continue
        new = _CARD.sub(lambda m: m.group(1) + card_line(docs, sources, m.group("doc")), text)
        if new != text:
            index.write_text(new, encoding="utf-8")


def no_right_sidebar_on_tutorials(app, pagename, templatename, context, doctree) -> None:
    """A tutorial's code and output get the width of the right sidebar (its page contents)."""
    if pagename.startswith("auto_tutorials/"):
        context["theme_secondary_sidebar_items"] = []


def setup(app) -> dict[str, object]:
    app.connect("builder-inited", add_card_lines, priority=900)
    # before the theme's own handler (priority 500), which reads the items
    app.connect("html-page-context", no_right_sidebar_on_tutorials, priority=400)
    app.add_css_file("css/bayesdrop.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
