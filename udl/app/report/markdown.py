"""The Markdown rendering of a report document (``report.md``)."""

from __future__ import annotations

import re

from udl.app.report.document import Doc

__all__ = ["escape", "to_markdown"]


#: What else Markdown may read as syntax in a heading (which holds user text: claim titles, an
#: audited encoder's name such as ``my_mod:make[x]*``): code, emphasis, links.
_HEADING_SPECIAL = re.compile(r"([`_\[\]])")


def escape(text: str, *, table: bool = False, heading: bool = False) -> str:
    """Escape what Markdown would misread in prose: backslashes, ``*`` (g*, z*), HTML-tag starts;
    in a ``heading`` also backticks, underscores and brackets."""
    text = str(text).replace("\\", "\\\\").replace("*", "\\*")
    if heading:
        text = _HEADING_SPECIAL.sub(r"\\\1", text)
    text = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)
    if table:
        text = text.replace("|", "\\|").replace("\n", " ")
    return text


def _runs(runs, *, table: bool = False) -> str:
    out = []
    for run in runs:
        if isinstance(run, tuple):
            style, text = run
            core = str(text).strip()
            lead, trail = str(text)[:len(str(text)) - len(str(text).lstrip())], \
                str(text)[len(str(text).rstrip()):]
            if style == "c":
                out.append(f"{lead}`{core}`{trail}")
            elif style == "b":
                out.append(f"{lead}**{escape(core, table=table)}**{trail}")
            else:
                out.append(f"{lead}*{escape(core, table=table)}*{trail}")
        else:
            out.append(escape(run, table=table))
    return "".join(out)


def to_markdown(doc: Doc) -> str:
    """The document as Markdown text (blocks separated by blank lines, one final newline)."""
    lines: list[str] = []
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            _, level, text, anchor = block
            if anchor:
                lines.append(f'<a id="{anchor}"></a>')
                lines.append("")
            lines.append("#" * level + " " + escape(text, heading=True))
        elif kind == "p":
            lines.append(_runs(block[1]))
        elif kind == "table":
            _, header, rows, links = block
            lines.append("| " + " | ".join(escape(h, table=True) for h in header) + " |")
            lines.append("|" + "|".join("---" for _ in header) + "|")
            for row in rows:
                cells = []
                for j, cell in enumerate(row):
                    text = _runs(cell if isinstance(cell, list) else [cell], table=True)
                    if j == 0 and str(row[0]) in links:
                        text = f"[{text}](#{links[str(row[0])]})"
                    cells.append(text)
                lines.append("| " + " | ".join(cells) + " |")
        elif kind == "ul":
            for item in block[1]:
                lines.append("- " + _runs(item))
        elif kind == "img":
            _, path, alt, caption, links = block
            lines.append(f"![{escape(alt)}]({path})")
            lines.append("")
            lines.append("*" + escape(caption) + "*"
                         + (" Vector: " + " · ".join(f"[{name}]({target})" for name, target in links) + "."
                            if links else ""))
        elif kind == "code":
            lines.append("```")
            lines.extend(block[1].rstrip("\n").splitlines())
            lines.append("```")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
