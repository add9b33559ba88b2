"""The HTML rendering of a report document (``report.html``): one self-contained page, PNGs inlined.

The page reads on a phone as on a desktop: a viewport meta tag (no zoomed-out desktop layout),
every table in a ``<div class="table-scroll">`` that scrolls sideways on a narrow screen rather than
pushing the page wider, figures scaled to the width.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from udl.app.report.document import Doc

__all__ = ["CSS", "to_html"]

#: The page's only style sheet (inline: the page loads nothing from outside).
CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;line-height:1.45;color:#222}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #bbb;margin-top:2em}h3{margin-top:1.6em}
.table-scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:0.6em 0;max-width:100%}
table{border-collapse:collapse;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}tr:nth-child(even) td{background:#fafafa}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:0.88em;color:#444;font-style:italic}
code,pre{font-family:Menlo,Consolas,monospace;font-size:0.88em;background:#f5f5f5}
pre{padding:0.6em;overflow-x:auto}
p,li,figcaption{overflow-wrap:break-word}
@media (max-width:600px){body{margin:1em auto;padding:0 0.6em;font-size:15px}
table{font-size:0.82em}th,td{padding:2px 5px}}
.PASS{color:#176b1e;font-weight:bold}.FAIL{color:#a31515;font-weight:bold}
.INCONCLUSIVE{color:#9a6700;font-weight:bold}.ERROR{color:#7a1fa2;font-weight:bold}
""".strip()

_OUTCOME_WORDS = ("PASS", "FAIL", "INCONCLUSIVE", "ERROR")


def _text(text: str) -> str:
    out = html.escape(str(text), quote=True)
    for word in _OUTCOME_WORDS:   # colour verdict words where they stand alone
        if out == word:
            return f'<span class="{word}">{word}</span>'
    return out


def _runs(runs) -> str:
    out = []
    for run in runs:
        if isinstance(run, tuple):
            style, text = run
            tag = {"b": "strong", "i": "em", "c": "code"}[style]
            out.append(f"<{tag}>{_text(text)}</{tag}>")
        else:
            out.append(_text(run))
    return "".join(out)


def to_html(doc: Doc, base: Path, title: str) -> str:
    """The document as one HTML page; image paths are read relative to ``base`` and inlined as base64."""
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>"]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            _, level, text, anchor = block
            ident = f' id="{html.escape(anchor)}"' if anchor else ""
            parts.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")
        elif kind == "p":
            parts.append(f"<p>{_runs(block[1])}</p>")
        elif kind == "table":
            _, header, rows, links = block
            parts.append('<div class="table-scroll"><table><thead><tr>'
                         + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>")
            for row in rows:
                cells = []
                for j, cell in enumerate(row):
                    text = _runs(cell if isinstance(cell, list) else [cell])
                    if j == 0 and str(row[0]) in links:
                        text = f'<a href="#{html.escape(links[str(row[0])])}">{text}</a>'
                    cells.append(f"<td>{text}</td>")
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody></table></div>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{_runs(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "img":
            _, path, alt, caption, _ = block   # no links to the vector files: the page is self-contained
            data = base64.b64encode((base / path).read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        elif kind == "code":
            parts.append(f"<pre>{html.escape(block[1])}</pre>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"
