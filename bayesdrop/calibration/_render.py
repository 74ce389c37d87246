"""The rendering shared by the reports (private): text, Markdown, strict JSON and HTML from a
report's rows, header, dictionary and figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from bayesdrop._validation import check_choice
from bayesdrop.calibration._html import html_page
from bayesdrop.calibration._json import strict_dumps

__all__ = ["ReportFormat", "ReportRendering"]

ReportFormat = Literal["html", "md", "json", "text"]


class ReportRendering:
    """Mixin of the reports: a subclass supplies ``_TITLE``, ``name``, :meth:`_rows`,
    :meth:`_header`, :meth:`to_dict` and :meth:`figures` (and may add summary lines and an
    HTML introduction); every format is then rendered the same way for every report."""

    _TITLE: ClassVar[str] = "Report"

    def _rows(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def _header(self) -> str:
        raise NotImplementedError

    def _summary_lines(self) -> list[str]:
        """Lines of the text summary after the table."""
        return []

    def _intro(self) -> str:
        """The HTML page's first paragraph."""
        return f"{self._header()}."

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def figures(self) -> dict[str, Any]:
        raise NotImplementedError

    def summary(self) -> str:
        """Plain-text table of the numbers."""
        lines = [f"{self._TITLE}: {self._header()}"]
        lines += [f"  {k:<34}{v}" for k, v in self._rows()]
        return "\n".join(lines + self._summary_lines())

    def to_markdown(self) -> str:
        """A Markdown table of the numbers."""
        lines = [f"## {self._TITLE}: {self.name}", "", self._header(), ""]  # type: ignore[attr-defined]
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in self._rows()]
        return "\n".join(lines) + "\n"

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string (``kwargs`` go to :func:`json.dumps`).

        Strict JSON: a NaN or infinite number is written as ``null``, never as a bare ``NaN``.
        """
        return strict_dumps(self.to_dict(), **kwargs)

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML page (inline CSS, base64 PNGs, no external requests).

        Written to ``path`` when given; the HTML text is returned either way.
        """
        title = f"{self._TITLE}: {self.name}"  # type: ignore[attr-defined]
        return html_page(title, self._intro(), self._rows(), self.figures(), path)

    def render(self, format: ReportFormat = "html") -> str:
        """The report as ``"html"``, ``"md"`` (Markdown), ``"json"`` or ``"text"``."""
        check_choice("format", format, ("html", "md", "json", "text"))
        if format == "html":
            return self.to_html()
        if format == "md":
            return self.to_markdown()
        return self.to_json(indent=2) if format == "json" else self.summary()
