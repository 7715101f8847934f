"""Helpers every report shares: number formatting, Markdown tables and PNG rendering."""
from __future__ import annotations

import io
import math
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
