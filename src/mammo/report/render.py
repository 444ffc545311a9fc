"""The report page: sections of escaped HTML with images inlined as base64 PNG; nothing is fetched when it opens.

A plain template string and `html.escape` (no template engine needed for one page); the Content-Security-Policy
forbids every network request, so the page shows the same offline as online.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1100px;padding:0 16px 40px;
color:#1d2330;background:#fff}
header{border-bottom:3px solid #3b5b92;margin-bottom:8px}h1{margin:18px 0 4px;font-size:26px}
h2{margin-top:34px;border-bottom:1px solid #ccd3e0;padding-bottom:4px;color:#2b4470}h3{margin:18px 0 6px}
nav a{margin-right:12px;color:#3b5b92;text-decoration:none;font-size:14px}
table{border-collapse:collapse;margin:8px 0;font-size:14px}td,th{border:1px solid #ccd3e0;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#eef2f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.figs{display:flex;flex-wrap:wrap;gap:12px}.figs figure{margin:0}figcaption{font-size:15px;color:#333;margin-top:4px}
img{max-width:100%;border:1px solid #e1e6ef}.warn{background:#fff4d6;border-left:4px solid #e0a800;padding:6px 10px}
.big{font-size:20px;font-weight:600}.muted{color:#666;font-size:13px}
.banner{font-size:17px;font-weight:600;background:#fde2e1;border-left-color:#c62828}
.gallery figure{width:520px}.gallery img{width:520px}.outside figure{width:520px}.outside img{width:520px}
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<header><h1>{title}</h1><p class="muted">{subtitle}</p><nav>{nav}</nav></header>
{sections}
<footer class="muted"><p>{footer}</p></footer>
</body>
</html>
"""


@dataclass
class Section:
    """One part of the page: its anchor id, heading and (already escaped) HTML body."""

    id: str
    title: str
    body: str


def esc(value: object) -> str:
    """Any value as escaped HTML text."""
    return html.escape(str(value), quote=True)


def img_tag(png: bytes, alt: str, caption: str = "") -> str:
    """A <figure> with the PNG inlined as a data: URI."""
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt)}">{cap}</figure>'


def figures(tags: Sequence[str], css_class: str = "figs") -> str:
    """Figures side by side, wrapping."""
    return f'<div class="{css_class}">{"".join(tags)}</div>'


def table(df: pd.DataFrame, numeric: Sequence[str] = ()) -> str:
    """A DataFrame as an HTML table (cells escaped; `numeric` columns right-aligned)."""
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    body = []
    for _, row in df.iterrows():
        cells = "".join(
            f'<td class="num">{esc(row[c])}</td>' if c in numeric else f"<td>{esc(row[c])}</td>"
            for c in df.columns
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def paragraph(text: str, css_class: str = "") -> str:
    """Escaped text in a <p>."""
    cls = f' class="{css_class}"' if css_class else ""
    return f"<p{cls}>{esc(text)}</p>"


def page(title: str, subtitle: str, sections: Sequence[Section], footer: str) -> str:
    """The whole HTML document."""
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(
        f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>\n{s.body}\n</section>' for s in sections
    )
    return PAGE.format(
        title=esc(title), subtitle=esc(subtitle), nav=nav, css=CSS, sections=body, footer=esc(footer)
    )
