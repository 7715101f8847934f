"""Loaders for the real public datasets (Hillstrom, iFood, one_click) as wide tables.

Each loader reads its source files as shipped, validates the columns it needs and returns a
:class:`TabularDataset`: one row per client, a 0/1 target, a 0/1 treatment for uplift data,
and the raw categorical columns. :func:`feature_frame` turns it into a numeric feature frame
(optional dataset-specific engineered features, then
:func:`factors.passthrough.prepare_wide`: categoricals one-hot encoded, names sanitised for
LightGBM).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from factors.passthrough import prepare_wide
from tasks.core.config import from_conf
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError

KINDS = ("hillstrom", "ifood", "one_click")


@dataclass
class TabularDataConfig:
    """conf/data/{hillstrom,ifood,one_click}.yaml (which explain each key).

    The keys of one dataset only are None for the others (their YAML leaves them out); its
    loader raises :class:`ConfigError` when its own is missing.
    """

    kind: str                        # hillstrom | ifood | one_click
    name: str
    folder: str                      # folder under paths.shared_data
    target: str                      # hillstrom: visit | conversion; ifood: Response
    feature_engineering: bool        # add the dataset's engineered features
    drop: list[str]                  # columns never used as features
    file: str | None = None          # hillstrom, ifood: the main file inside the folder
    treatment_arm: str | None = None  # hillstrom: the treated segment
    control_arm: str | None = None    # hillstrom: the control segment
    min_active_months: int | None = None  # one_click: keep clients with revenue in every one of these periods
    profit_column: str | None = None      # one_click: profit per client (segmentation, not a feature)
    treatment_shares: dict[Any, float] | None = None  # design shares of the arms, {treated: .., control: ..}


@dataclass
class TabularDataset:
    """A wide dataset: one row per client."""

    name: str
    frame: pd.DataFrame
    id_column: str
    target: str
    treatment: str | None
    categorical: list[str]
    raw_tables: dict[str, pd.DataFrame]
    not_features: list[str] = field(default_factory=list)   # outcomes and extras never used as features
    kind: str = ""


def _read_csv(path: Path, table: str, **kwargs) -> pd.DataFrame:
    if not path.exists():
        raise NotFoundError(f"table '{table}': file {path} does not exist (check paths.shared_data)")
    try:
        return pd.read_csv(path, **kwargs)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataValidationError(table, None, f"cannot parse {path.name}: {exc}") from None


def _require(df: pd.DataFrame, table: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataValidationError(table, missing[0], f"missing column(s) {missing}; the table has {list(df.columns)[:20]}")


def tabular_config(settings: Mapping[str, Any]) -> TabularDataConfig:
    """The config of a real dataset: ``settings`` over conf/data/<kind>.yaml (the composed
    ``data`` node, or only the keys that differ from the shipped file)."""
    kind = settings.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"config 'data', key 'kind': {kind!r} is not a tabular dataset; use one of {list(KINDS)}")
    return from_conf(TabularDataConfig, f"data/{kind}", **settings)


def _needed(cfg: TabularDataConfig, key: str) -> Any:
    """A key the dataset of ``cfg.kind`` needs; ConfigError when it is not set."""
    value = getattr(cfg, key)
    if value is None or value == "":
        raise ConfigError(f"config 'data', key '{key}': required for {cfg.kind} data (see conf/data/{cfg.kind}.yaml)")
    return value


def _binary(df: pd.DataFrame, table: str, column: str) -> None:
    s = df[column]
    bad = s.isna().to_numpy() | ~s.isin([0, 1]).to_numpy()
    if bad.any():
        rows = list(np.flatnonzero(bad)[:5])
        raise DataValidationError(table, column, f"{int(bad.sum())} value(s) that are not 0/1 (or NaN)", rows,
                                  df.iloc[rows][[column]].to_string())


# ---------------------------------------------------------------------------- hillstrom
HILLSTROM_OUTCOMES = ["visit", "conversion", "spend"]


def load_hillstrom(cfg: TabularDataConfig, shared_data: Path) -> TabularDataset:
    """MineThatData e-mail RCT: ``treatment_arm`` vs ``control_arm``, target visit or conversion."""
    path = Path(shared_data) / cfg.folder / _needed(cfg, "file")
    raw = _read_csv(path, "hillstrom")
    needed = ["recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie",
              "channel", "segment"] + HILLSTROM_OUTCOMES
    _require(raw, "hillstrom", needed)
    target = cfg.target
    if target not in ("visit", "conversion"):
        raise ConfigError(f"config 'data', key 'target': hillstrom target must be visit or conversion, got {target!r}")
    arms = set(raw["segment"].unique())
    for key in ("treatment_arm", "control_arm"):
        arm = _needed(cfg, key)
        if arm not in arms:
            raise ConfigError(f"config 'data', key '{key}': segment {arm!r} not in hillstrom; known {sorted(arms)}")
    df = raw[raw["segment"].isin([cfg.treatment_arm, cfg.control_arm])].reset_index(drop=True)
    df.insert(0, "client_id", np.arange(len(df), dtype=np.int64))
    df["treatment"] = (df["segment"] == cfg.treatment_arm).astype(np.int8)
    _binary(df, "hillstrom", target)
    df[target] = df[target].astype(np.int8)
    return TabularDataset(
        name=cfg.name, frame=df, id_column="client_id", target=target, treatment="treatment",
        categorical=["zip_code", "channel"], raw_tables={"hillstrom": raw},
        not_features=["segment", "history_segment", *HILLSTROM_OUTCOMES, *cfg.drop], kind="hillstrom",
    )


def hillstrom_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Engineered Hillstrom features: spend per month of recency, log spend, both lines bought."""
    out = pd.DataFrame(index=frame.index)
    out["history_per_month"] = frame["history"] / frame["recency"].clip(lower=1)
    out["log_history"] = np.log1p(frame["history"])
    out["mens_and_womens"] = (frame["mens"] * frame["womens"]).astype(np.int8)
    return out


# ---------------------------------------------------------------------------- ifood
def load_ifood(cfg: TabularDataConfig, shared_data: Path) -> TabularDataset:
    """iFood marketing data; ``ifood_df.csv`` (one-hot) or the raw ml_project1/Kaggle files."""
    fname = _needed(cfg, "file")
    path = Path(shared_data) / cfg.folder / fname
    sep = "\t" if fname == "marketing_campaign.csv" else ","
    raw = _read_csv(path, "ifood", sep=sep)
    target = cfg.target
    _require(raw, "ifood", [target])
    df = raw.copy()
    categorical: list[str] = []
    id_col = "ID" if "ID" in df.columns else "client_id"
    if "ID" not in df.columns:
        df.insert(0, "client_id", np.arange(len(df), dtype=np.int64))
    if "Dt_Customer" in df.columns:
        dayfirst = sep == "\t"
        dates = pd.to_datetime(df["Dt_Customer"], dayfirst=dayfirst, errors="coerce")
        bad = dates.isna().to_numpy()
        if bad.any():
            raise DataValidationError("ifood", "Dt_Customer", f"{int(bad.sum())} unparseable date(s)",
                                      list(np.flatnonzero(bad)[:5]))
        df["Customer_Days"] = (dates.max() - dates).dt.days
        df = df.drop(columns=["Dt_Customer"])
    if "Year_Birth" in df.columns:
        df["Age"] = 2020 - df["Year_Birth"]
        df = df.drop(columns=["Year_Birth"])
    categorical = [c for c in ("Education", "Marital_Status") if c in df.columns]
    _binary(df, "ifood", target)
    df[target] = df[target].astype(np.int8)
    return TabularDataset(
        name=cfg.name, frame=df, id_column=id_col, target=target, treatment=None,
        categorical=categorical, raw_tables={"ifood": raw}, not_features=list(cfg.drop), kind="ifood",
    )


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
ONE_CLICK_TARGET = "Покупательская активность"
ONE_CLICK_DECLINED = "снизилась"
ONE_CLICK_RENAME = {
    "Тип сервиса": "service_type",
    "Разрешить сообщать": "allow_messages",
    "Маркет_актив_6_мес": "marketing_6m",
    "Маркет_актив_тек_мес": "marketing_this_month",
    "Длительность": "tenure_days",
    "Акционные_покупки": "promo_share",
    "Популярная_категория": "top_category",
    "Средний_просмотр_категорий_за_визит": "categories_per_visit",
    "Неоплаченные_продукты_штук_квартал": "unpaid_items_quarter",
    "Ошибка_сервиса": "service_errors",
    "Страниц_за_визит": "pages_per_visit",
}
_PERIODS = {
    "текущий_месяц": "current",
    "предыдущий_месяц": "previous",
    "предыдцщий_месяц": "previous",   # typo in the source file
    "препредыдущий_месяц": "before_previous",
}


def _pivot_periods(df: pd.DataFrame, table: str, value: str, prefix: str) -> pd.DataFrame:
    _require(df, table, ["id", "Период", value])
    periods = df["Период"].map(_PERIODS)
    bad = periods.isna().to_numpy()
    if bad.any():
        raise DataValidationError(table, "Период", f"unknown period value(s) {sorted(df['Период'][bad].unique())[:5]}",
                                  list(np.flatnonzero(bad)[:5]))
    long = pd.DataFrame({"id": df["id"], "period": periods, "value": pd.to_numeric(df[value], errors="coerce")})
    dup = long.duplicated(["id", "period"], keep=False).to_numpy()
    if dup.any():
        raise DataValidationError(table, "id", "duplicate (id, period) rows", list(np.flatnonzero(dup)[:5]))
    wide = long.pivot(index="id", columns="period", values="value")
    wide.columns = [f"{prefix}_{c}" for c in wide.columns]
    return wide.reset_index()


def load_one_click(cfg: TabularDataConfig, shared_data: Path) -> TabularDataset:
    """'V odin klik' shop: activity decline target, joined from its four files.

    money.csv uses ``;`` as separator and ``,`` as decimal mark. Clients without revenue in
    each of the last ``min_active_months`` periods are dropped (the brief's activity filter).
    """
    folder = Path(shared_data) / cfg.folder
    profit_column, min_active_months = _needed(cfg, "profit_column"), _needed(cfg, "min_active_months")
    market = _read_csv(folder / "market_file.csv", "market_file")
    money_by_period = _read_csv(folder / "market_money.csv", "market_money")
    minutes = _read_csv(folder / "market_time.csv", "market_time")
    profit = _read_csv(folder / "money.csv", "money", sep=";", decimal=",")
    raw = {"market_file": market, "market_money": money_by_period, "market_time": minutes, "money": profit}
    _require(market, "market_file", ["id", ONE_CLICK_TARGET, *ONE_CLICK_RENAME])
    _require(profit, "money", ["id", "Прибыль"])
    df = market.rename(columns=ONE_CLICK_RENAME)
    for col in ("service_type", "allow_messages", "top_category"):
        df[col] = df[col].astype(str).str.strip().str.lower()
    df["service_type"] = df["service_type"].replace({"стандартт": "стандарт"})
    target_text = df[ONE_CLICK_TARGET].astype(str).str.strip().str.lower()
    known = target_text.isin([ONE_CLICK_DECLINED, "прежний уровень"]).to_numpy()
    if not known.all():
        raise DataValidationError("market_file", ONE_CLICK_TARGET, "values other than 'Снизилась'/'Прежний уровень'",
                                  list(np.flatnonzero(~known)[:5]))
    df["activity_declined"] = (target_text == ONE_CLICK_DECLINED).astype(np.int8)
    df = df.drop(columns=[ONE_CLICK_TARGET])
    df["allow_messages"] = (df["allow_messages"] == "да").astype(np.int8)
    revenue = _pivot_periods(money_by_period, "market_money", "Выручка", "revenue")
    mins = _pivot_periods(minutes, "market_time", "минут", "minutes")
    prof = profit.rename(columns={"Прибыль": profit_column})[["id", profit_column]]
    out = df.merge(revenue, on="id", how="left").merge(mins, on="id", how="left").merge(prof, on="id", how="left")
    for col in [c for c in out.columns if c.startswith(("revenue_", "minutes_"))] + [profit_column]:
        miss = out[col].isna().to_numpy()
        if miss.any():
            raise DataValidationError("one_click", col, f"{int(miss.sum())} client(s) without a value after the join",
                                      list(out["id"][miss][:5]))
    if out["id"].duplicated().any():
        raise DataValidationError("market_file", "id", "duplicate client ids", list(np.flatnonzero(out["id"].duplicated())[:5]))
    rev_cols = [c for c in ("revenue_before_previous", "revenue_previous", "revenue_current") if c in out.columns]
    if min_active_months > 0:
        active = (out[rev_cols[-min_active_months:]] > 0).all(axis=1)
        out = out[active].reset_index(drop=True)
    if out.empty:
        raise DataValidationError("one_click", None, "no client left after the activity filter")
    return TabularDataset(
        name=cfg.name, frame=out, id_column="id", target="activity_declined", treatment=None,
        categorical=["service_type", "top_category"], raw_tables=raw,
        not_features=[profit_column, *cfg.drop], kind="one_click",
    )


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


# ---------------------------------------------------------------------------- public API
_LOADERS = {"hillstrom": load_hillstrom, "ifood": load_ifood, "one_click": load_one_click}


def load_tabular_dataset(cfg: TabularDataConfig, shared_data: Path) -> TabularDataset:
    """Load the real dataset named by ``cfg.kind`` from ``shared_data``."""
    if cfg.kind not in _LOADERS:
        raise ConfigError(f"config 'data', key 'kind': {cfg.kind!r} is not a tabular dataset; use one of {list(KINDS)}")
    if not Path(shared_data).is_dir():
        raise NotFoundError(f"real datasets folder {shared_data} does not exist (set paths.shared_data)")
    return _LOADERS[cfg.kind](cfg, Path(shared_data))


def feature_frame(ds: TabularDataset, engineer: bool = True) -> pd.DataFrame:
    """Numeric feature frame of ``ds`` (same row order): no id, target, treatment or outcomes."""
    exclude = {ds.id_column, ds.target, *(ds.not_features or [])}
    if ds.treatment:
        exclude.add(ds.treatment)
    base = ds.frame[[c for c in ds.frame.columns if c not in exclude]]
    if engineer and ds.kind == "hillstrom":
        base = pd.concat([base, hillstrom_features(ds.frame)], axis=1)
    if engineer and ds.kind == "ifood":
        base = pd.concat([base, ifood_features(ds.frame)], axis=1)
    if engineer and ds.kind == "one_click":
        base = pd.concat([base, one_click_features(ds.frame)], axis=1)
    X = prepare_wide(base, categorical=[c for c in ds.categorical if c in base.columns])
    return X.reset_index(drop=True)
