"""The document model of a report: blocks that both renderers (Markdown, HTML) read, so the two agree."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Doc", "bold", "code", "italic"]


@dataclass
class Doc:
    """A tiny document: a list of blocks, rendered by :mod:`.markdown` and :mod:`.html_page`.

    A block is a tuple whose first item names its kind: ``("h", level, text, anchor)``,
    ``("p", runs)``, ``("table", header, rows, links)``, ``("ul", items)``,
    ``("img", path, alt, caption, links)`` or ``("code", text)``. A *run* is plain text or a styled
    pair from :func:`bold`, :func:`italic`, :func:`code`.
    """

    blocks: list = field(default_factory=list)

    def h(self, level: int, text: str, anchor: str | None = None):
        """A heading of ``level`` (1–6), optionally with an anchor id to link to."""
        self.blocks.append(("h", level, text, anchor))

    def p(self, *runs):
        """A paragraph of runs."""
        self.blocks.append(("p", runs))

    def table(self, header: list[str], rows: list[list], links: dict | None = None):
        """A table; a first cell found in ``links`` links to the anchor it maps to."""
        self.blocks.append(("table", header, rows, links or {}))

    def bullets(self, items: list[tuple]):
        """A bullet list; each item a sequence of runs."""
        self.blocks.append(("ul", items))

    def image(self, path: str, alt: str, caption: str, links: tuple = ()):
        """A figure: the PNG at ``path`` (relative to the report) with its caption, and ``links``
        ``(name, path)`` to other files of it (its vector copies)."""
        self.blocks.append(("img", path, alt, caption, tuple(links)))

    def code(self, text: str):
        """A preformatted block."""
        self.blocks.append(("code", text))


def bold(text: str) -> tuple:
    """A bold run."""
    return ("b", text)


def italic(text: str) -> tuple:
    """An italic run."""
    return ("i", text)


def code(text: str) -> tuple:
    """An inline-code run."""
    return ("c", text)
