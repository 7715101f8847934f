"""one_click: clients by out-of-fold probability of activity decline x profit (table, text, plot)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.core.report import md_table
from tasks.modelling.config import ModelConfig
from tasks.modelling.reporting import four_decimals, segmentation_plot, segmentation_table
from tasks.modelling.selection import out_of_fold_proba
from tasks.modelling.training import TrainResult

SECTION_TITLE = "Segmentation: probability of decline x profit"


@dataclass
class Segmentation:
    """The four segments as a table, the report section's text and the scatter plot (PNG)."""

    table: pd.DataFrame
    text: str
    png: bytes

    def files(self) -> dict[str, bytes | str]:
        """Extra files of the model version."""
        return {"segmentation.png": self.png, "segmentation.csv": self.table.to_csv(index=False)}


def segment_clients(X: pd.DataFrame, y: np.ndarray, profit: np.ndarray, result: TrainResult,
                    model_cfg: ModelConfig) -> Segmentation:
    """Segments by the chosen model's out-of-fold probability (cut at ``segment_quantile``)
    and profit (cut at the median); every client is scored by a model that never saw it."""
    proba = out_of_fold_proba(X[result.features], y, result.params, model_cfg)
    profit = np.asarray(profit, dtype=float)
    p_cut = float(np.quantile(proba, model_cfg.segment_quantile))
    profit_cut = float(np.median(profit))
    table = segmentation_table(proba, profit, p_cut, profit_cut)
    text = (f"Out-of-fold predicted probability of decline (cut at the {model_cfg.segment_quantile:.0%} quantile, "
            f"{p_cut:.3f}) x profit (cut at the median, {profit_cut:.2f}). Retain first: high risk / high profit.\n\n"
            + md_table(table, four_decimals))
    return Segmentation(table=table, text=text, png=segmentation_plot(proba, profit, p_cut, profit_cut))
