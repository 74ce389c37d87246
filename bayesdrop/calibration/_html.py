"""Self-contained HTML pages for the reports (private): inline CSS, base64 PNG figures."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

__all__ = ["html_page", "png_base64"]


def png_base64(figure: Any) -> str:
    """A matplotlib figure as a base64-encoded PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def html_page(
    title: str,
    intro: str,
    rows: list[tuple[str, str]],
    figures: dict[str, Any],
    path: str | Path | None = None,
) -> str:
    """The page (escaped text, one table, the figures), written to ``path`` when given."""
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    images = "".join(
        f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{png_base64(f)}">'
        f"<figcaption>{html.escape(t)}</figcaption></figure>"
        for t, f in figures.items()
    )
    page = _PAGE.format(
        title=html.escape(title), intro=html.escape(intro), rows=table, images=images
    )
    if path is not None:
        Path(path).write_text(page, encoding="utf-8")
    return page


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
td {{ border-bottom: 1px solid #ddd; padding: 0.3em 1.2em 0.3em 0; }}
td:last-child {{ font-family: monospace; text-align: right; }}
figure {{ display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }}
figcaption {{ text-align: center; color: #555; }}
</style></head>
<body><h1>{title}</h1>
<p>{intro}</p>
<table>{rows}</table>
{images}
</body></html>
"""
