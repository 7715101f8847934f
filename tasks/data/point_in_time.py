"""The point-in-time join: factors of each row's client as of that row's own date.

Past campaigns happened on different dates; a row of the campaign history must see only what
was known before its campaign. This is the one place that does that join, for training, for
retraining and for the data profile.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from factors import compute_factors
from tasks.core.errors import ConfigError, DataValidationError


def factors_as_of_rows(
    data_dir: str | Path, rows: pd.DataFrame, factor_names: Sequence[str], date_column: str = "campaign_date"
) -> pd.DataFrame:
    """One row of factors per row of ``rows`` (same order, fresh index), each computed as of
    that row's ``date_column`` from events strictly before it; factor columns only."""
    for col in ("client_id", date_column):
        if col not in rows.columns:
            raise DataValidationError("campaign_history", col, f"missing column {col!r}")
    if not factor_names:
        raise ConfigError("config 'factors': the factor set is empty; name the factors to use")
    dates = pd.to_datetime(rows[date_column])
    ids = rows["client_id"].to_numpy()
    parts = []
    for date in sorted(dates.unique()):
        pos = np.flatnonzero((dates == date).to_numpy())
        f = compute_factors(Path(data_dir), pd.Timestamp(date), list(factor_names), pd.Series(ids[pos]))
        parts.append(f.drop(columns=["client_id"]).set_axis(pos, axis=0))
    return pd.concat(parts).sort_index().reset_index(drop=True)
