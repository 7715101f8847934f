"""Plots of the data profile: histogram grids and correlation heatmaps as PNG bytes.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state), so plotting is safe
from worker threads.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from tasks.core.report import png_bytes

# Small thumbnails: a profile holds dozens of histograms.
DPI = 72


def histogram_grid_png(df: pd.DataFrame, columns: Sequence[str], bins: int = 30, title: str = "") -> bytes | None:
    """One PNG with a small histogram per numeric column (four per row); None without columns."""
    from matplotlib.figure import Figure

    cols = [c for c in columns if c in df.columns]
    if not cols:
        return None
    ncols = min(4, len(cols))
    nrows = math.ceil(len(cols) / ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.3 * nrows))
    for i, col in enumerate(cols):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        x = df[col].astype("float64").dropna().to_numpy()
        x = x[np.isfinite(x)]
        if len(x):
            # One filled step artist per axis draws far faster than a bar patch per bin.
            counts, edges = np.histogram(x, bins=bins if x.min() < x.max() else 1)
            ax.stairs(counts, edges, fill=True, color="#4477aa")
        ax.set_title(str(col)[:40], fontsize=8)
        ax.tick_params(labelsize=6)
        ax.locator_params(nbins=4)
    if title:
        fig.suptitle(title, fontsize=10)
    # Fixed margins: automatic layout costs seconds on grids of dozens of axes.
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.04, top=1 - 0.5 / fig.get_figheight(), hspace=0.55, wspace=0.3)
    return png_bytes(fig, dpi=DPI, tight=False)


def heatmap_png(corr: pd.DataFrame, title: str = "") -> bytes | None:
    """A PNG heatmap of a correlation matrix (red positive, blue negative); None when empty."""
    from matplotlib.figure import Figure

    if corr.shape[0] < 2:
        return None
    k = corr.shape[0]
    side = max(4.0, 0.28 * k + 2)
    fig = Figure(figsize=(side + 1, side))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(corr.to_numpy(dtype="float64"), cmap="RdBu_r", vmin=-1, vmax=1)
    labels = [str(c)[:30] for c in corr.columns]
    ax.set_xticks(range(k), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(k), labels, fontsize=6)
    fig.colorbar(im, ax=ax, shrink=0.8)
    if title:
        ax.set_title(title, fontsize=10)
    return png_bytes(fig, dpi=DPI, tight=True)
