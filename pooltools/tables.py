"""Small HTML tables for notebook outputs: readable on GitHub, nbviewer and the static site, where
a wide text table wraps and loses its columns."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

__all__ = ["html_table"]


def _cell(value: Any, tag: str) -> str:
    text = html.escape(str(value)).replace("\n", "<br>")
    align = "left" if tag == "th" or not _numeric(value) else "right"
    return f'<{tag} style="text-align:{align}">{text}</{tag}>'


def _numeric(value: Any) -> bool:
    text = str(value).strip().replace(",", "").replace("%", "").replace("±", "").split(" ")[0]
    try:
        float(text.lstrip("+−-"))
    except ValueError:
        return False
    return True


def html_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    caption: str | None = None,
    notes: str | None = None,
) -> str:
    """An HTML ``<table>``: one header row of ``columns``, then ``rows`` (already formatted
    values; numbers right-aligned), a caption above and a small note below."""
    width = len(columns)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"row {i} has {len(row)} cells, but there are {width} columns")
    parts = ["<table>"]
    if caption:
        parts.append(f'<caption style="caption-side:top">{html.escape(caption)}</caption>')
    parts.append("<thead><tr>" + "".join(_cell(c, "th") for c in columns) + "</tr></thead>")
    parts.append("<tbody>")
    parts += ["<tr>" + "".join(_cell(v, "td") for v in row) + "</tr>" for row in rows]
    parts.append("</tbody></table>")
    if notes:
        parts.append(f'<p style="font-size:90%">{html.escape(notes)}</p>')
    return "\n".join(parts)
