"""Helpers every report shares: number formatting, Markdown tables, PNG rendering, and
reports as ordered blocks rendered to Markdown or to one self-contained HTML page.

A :class:`Report` is a list of :class:`Block` (headings, text, lists, tables, images and
check lines) and its PNG images; :func:`render_markdown` and :func:`render_html` render it,
so the Markdown file and the HTML page of a report always say the same thing.
"""
from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd


def fmt_value(v: Any, digits: int = 4, missing: str = "") -> str:
    """A value for a report cell: booleans as yes/no, integers whole, floats to ``digits``
    significant digits (scientific only for very large or very small magnitudes), missing
    values as ``missing``."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return missing
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if float(v).is_integer() and abs(v) < 1e12:
            return str(int(v))
        if abs(v) >= 1e6 or abs(v) < 1e-3:
            return f"{v:.{max(digits - 1, 1)}e}"
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:.1f}"
    if v is None or (not isinstance(v, (str, dict, list, tuple)) and pd.isna(v)):
        return missing
    return str(v)


def fmt_number(v: Any, decimals: int = 2, missing: str = "n/a") -> str:
    """A number for people: thousands separators, ``decimals`` decimals for non-integers
    (whole numbers without), ``missing`` for None / NaN; never scientific notation unless the
    magnitude is below 0.01 and not zero (then 3 significant digits)."""
    if v is None or isinstance(v, str):
        return missing if v is None else v
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    x = float(v)
    if math.isnan(x):
        return missing
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if isinstance(v, (int, np.integer)) or (x.is_integer() and abs(x) >= 100):
        return f"{int(round(x)):,}"
    if 0 < abs(x) < 0.01:
        return f"{x:.3g}"
    return f"{x:,.{decimals}f}"


def fmt_ci(value: float, low: float, high: float, digits: int = 4) -> str:
    """``value [low, high]`` with fixed decimals."""
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def md_table(df: pd.DataFrame, fmt: Callable[[Any], str] = fmt_value) -> str:
    """A Markdown table of ``df`` (index dropped; pipes and newlines in cells escaped)."""
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(esc(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(esc(fmt(v)) for v in row) + " |")
    return "\n".join(lines)


def png_bytes(fig: Any, dpi: int = 90, tight: bool = True) -> bytes:
    """PNG bytes of a matplotlib figure; the figure is released afterwards.

    Works for figures made with ``matplotlib.figure.Figure`` (no pyplot state) and with
    ``pyplot`` alike.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if fig.canvas is None or not hasattr(fig.canvas, "print_figure"):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    try:
        import matplotlib.pyplot as plt

        if plt.fignum_exists(getattr(fig, "number", -1)):
            plt.close(fig)
    except Exception:  # pragma: no cover - pyplot unavailable: nothing to release
        pass
    return buf.getvalue()


@dataclass
class Block:
    """One piece of a report: ``heading`` (with ``level``), ``text``, ``list``, ``table``,
    ``image`` or ``check`` (a verdict line: ``status`` pass / fail / not_applicable)."""

    kind: str
    text: str = ""
    level: int = 2
    items: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    image: str | None = None
    status: str = ""


@dataclass
class Report:
    """A rendered-independent report: ordered blocks, PNG images by file name, key findings."""

    title: str
    blocks: list[Block]
    images: dict[str, bytes]
    findings: dict[str, Any]




_CHECK_MARK = {"pass": "PASS", "fail": "**FAIL**", "not_applicable": "not applicable"}


def render_markdown(report: Report, image_dir: str = "plots") -> str:
    """The report as Markdown; images are linked as ``<image_dir>/<name>`` (``image_dir=""``:
    beside the report)."""
    out: list[str] = []
    for b in report.blocks:
        if b.kind == "heading":
            out.append("#" * b.level + " " + b.text)
        elif b.kind == "text":
            out.append(b.text)
        elif b.kind == "list":
            out.append("\n".join(f"- {i}" for i in b.items))
        elif b.kind == "table" and b.table is not None:
            out.append(md_table(b.table))
        elif b.kind == "image":
            out.append(f"![{b.text}]({image_dir}/{b.image})" if image_dir else f"![{b.text}]({b.image})")
        elif b.kind == "check":
            out.append(f"- {_CHECK_MARK.get(b.status, b.status)}: {b.text}")
    return "\n\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    """Escape text and turn the two Markdown marks the report uses (`code`, **bold**) into HTML."""
    parts = html.escape(text).split("`")
    s = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    bold = s.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(bold))


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:13px}
th,td{border:1px solid #ccc;padding:2px 8px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
code{background:#f4f4f4;padding:0 3px}img{max-width:100%}h2{border-bottom:1px solid #ddd;margin-top:2em}
.check{margin:.3em 0;padding:.3em .6em;border-left:6px solid #999;background:#f6f6f6}
.check.pass{border-color:#2e7d32;background:#e8f5e9}.check.fail{border-color:#c62828;background:#ffebee}
.check b.mark{display:inline-block;min-width:7em}
"""


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page: PNG images embedded as base64 data URIs."""
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(report.title)}</title>"
           f"<style>{_CSS}</style></head><body>"]
    sections = [b.text for b in report.blocks if b.kind == "heading" and b.level == 2]
    section = 0
    for b in report.blocks:
        if b.kind == "heading" and b.level == 2:
            section += 1
            out.append(f"<h2 id='s{section}'>{_inline_html(b.text)}</h2>")
        elif b.kind == "heading":
            out.append(f"<h{b.level}>{_inline_html(b.text)}</h{b.level}>")
            if b.level == 1 and sections:
                links = "".join(f"<li><a href='#s{i}'>{_inline_html(t)}</a></li>" for i, t in enumerate(sections, 1))
                out.append(f"<nav><ul>{links}</ul></nav>")
        elif b.kind == "text":
            out.append(f"<p>{_inline_html(b.text)}</p>")
        elif b.kind == "list":
            out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "table" and b.table is not None:
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in b.table.columns)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(fmt_value(v))}</td>" for v in row) + "</tr>"
                for row in b.table.itertuples(index=False)
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif b.kind == "check":
            mark = {"pass": "PASS", "fail": "FAIL"}.get(b.status, "not applicable")
            out.append(f"<div class='check {html.escape(b.status)}'><b class='mark'>{mark}</b> {_inline_html(b.text)}</div>")
        elif b.kind == "image" and b.image in report.images:
            data = base64.b64encode(report.images[b.image]).decode("ascii")
            out.append(f"<figure><img alt='{html.escape(b.text)}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{html.escape(b.text)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
