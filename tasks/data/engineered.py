"""Engineered feature sets of the real datasets, chosen by name (``data.features``).

A set has two steps:

* ``prepare(frame, table)``: runs when the table is loaded, before anything else looks at
  it: turns columns no model can read into numbers (iFood's customer date into days of
  tenure, its birth year into an age);
* ``derive(frame)``: the extra feature columns (ratios, trends) added to the feature frame.

``hillstrom``: spend per month of recency, log spend, both lines bought. ``ifood``: basket
size, deal and catalog shares, product mix, spend to income. ``one_click``: revenue and
minutes trends.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from tasks.core.errors import ConfigError, DataValidationError


def _unchanged(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    return frame


@dataclass(frozen=True)
class FeatureSet:
    """One engineered feature set: the load-time preparation and the derived columns."""

    prepare: Callable[[pd.DataFrame, str], pd.DataFrame]
    derive: Callable[[pd.DataFrame], pd.DataFrame]


# ---------------------------------------------------------------------------- hillstrom
def hillstrom_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Engineered Hillstrom features: spend per month of recency, log spend, both lines bought."""
    out = pd.DataFrame(index=frame.index)
    out["history_per_month"] = frame["history"] / frame["recency"].clip(lower=1)
    out["log_history"] = np.log1p(frame["history"])
    out["mens_and_womens"] = (frame["mens"] * frame["womens"]).astype(np.int8)
    return out


# ---------------------------------------------------------------------------- ifood
def ifood_prepare(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """The raw iFood forms: ``Dt_Customer`` becomes ``Customer_Days`` (days before the latest
    customer date; dd-mm-yyyy or ISO dates) and ``Year_Birth`` becomes ``Age`` (in 2020), as in
    the cleaned ``ifood_df.csv``."""
    df = frame
    if "Dt_Customer" in df.columns:
        text = df["Dt_Customer"].astype(str)
        iso = text.str.match(r"^\d{4}-").all()
        dates = pd.to_datetime(text, dayfirst=not iso, errors="coerce")
        bad = dates.isna().to_numpy()
        if bad.any():
            raise DataValidationError(table, "Dt_Customer", f"{int(bad.sum())} unparseable date(s)",
                                      list(np.flatnonzero(bad)[:5]))
        df = df.copy()
        df["Customer_Days"] = (dates.max() - dates).dt.days
        df = df.drop(columns=["Dt_Customer"])
    if "Year_Birth" in df.columns:
        df = df.copy()
        df["Age"] = 2020 - df["Year_Birth"]
        df = df.drop(columns=["Year_Birth"])
    return df


def ifood_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Engineered iFood ratios: basket size, deal/catalog shares, product mix, spend to income.

    Ratios, not sums: a plain total of other columns would be caught (and dropped) by the
    sum-of-others check.
    """
    mnt = [c for c in ("MntWines", "MntFruits", "MntMeatProducts", "MntFishProducts", "MntSweetProducts",
                       "MntGoldProds") if c in frame.columns]
    num = [c for c in ("NumWebPurchases", "NumCatalogPurchases", "NumStorePurchases") if c in frame.columns]
    if len(mnt) < 6 or len(num) < 3:
        return pd.DataFrame(index=frame.index)
    spend = frame[mnt].sum(axis=1).clip(lower=1)
    purchases = frame[num].sum(axis=1).clip(lower=1)
    out = pd.DataFrame(index=frame.index)
    out["spend_per_purchase"] = spend / purchases
    out["deals_share"] = frame["NumDealsPurchases"] / purchases
    out["catalog_share"] = frame["NumCatalogPurchases"] / purchases
    out["wine_share"] = frame["MntWines"] / spend
    out["meat_share"] = frame["MntMeatProducts"] / spend
    out["gold_share"] = frame["MntGoldProds"] / spend
    out["spend_to_income"] = spend / frame["Income"].clip(lower=1)
    out["web_visits_per_purchase"] = frame["NumWebVisitsMonth"] / frame["NumWebPurchases"].clip(lower=1)
    out["recency_per_tenure"] = frame["Recency"] / frame["Customer_Days"].clip(lower=1)
    return out


# ---------------------------------------------------------------------------- one_click
def one_click_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Engineered one_click features: revenue and minutes trends across periods.

    Trends are ratios: a difference would be an exact combination of its two columns, and
    the sum-of-others check would drop one of them.
    """
    out = pd.DataFrame(index=frame.index)
    out["revenue_trend"] = frame["revenue_current"] / frame["revenue_previous"].clip(lower=1)
    out["minutes_trend"] = frame["minutes_current"] / frame["minutes_previous"].clip(lower=1)
    out["revenue_per_minute"] = frame["revenue_current"] / frame["minutes_current"].clip(lower=1)
    return out


FEATURE_SETS: dict[str, FeatureSet] = {
    "hillstrom": FeatureSet(_unchanged, hillstrom_features),
    "ifood": FeatureSet(ifood_prepare, ifood_features),
    "one_click": FeatureSet(_unchanged, one_click_features),
}


def feature_set(name: str | None) -> FeatureSet | None:
    """The engineered set ``name`` (None for none); ConfigError naming the known sets."""
    if name is None or name == "":
        return None
    if name not in FEATURE_SETS:
        raise ConfigError(f"config 'data', key 'features': unknown engineered feature set {name!r}; use one of "
                          f"{sorted(FEATURE_SETS)} or null (no engineered features)")
    return FEATURE_SETS[name]


def derived_features(name: str | None, frame: pd.DataFrame) -> pd.DataFrame:
    """The derived columns of set ``name`` on ``frame``; a set whose columns are missing is a
    DataValidationError naming the column and the set."""
    fs = feature_set(name)
    if fs is None:
        return pd.DataFrame(index=frame.index)
    try:
        return fs.derive(frame)
    except KeyError as exc:
        raise DataValidationError("table", str(exc.args[0]), f"the engineered feature set {name!r} needs this "
                                  "column; drop data.features (data.features=null) for another table") from None
