"""The 'V odin klik' shop (../shared/data/yandex_one_click): the one real dataset with a loader
of its own.

The generic table loader (:mod:`tasks.data.datasets`) reads one wide table. This shop ships
four files that must be joined: the client file, revenue and minutes on the site as long
tables (one row per client and period, pivoted to one column per period), and profit
(``;``-separated with ``,`` as decimal mark); the target is a Russian text column, and
clients are kept only with revenue in each of the last ``min_active_months`` periods. None of
that is a setting of a wide table, so it stays code.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.errors import ConfigError, DataValidationError, NotFoundError

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


def _needed(value, key: str):
    if value is None or value == "":
        raise ConfigError(f"config 'data', key '{key}': required for one_click data (see conf/data/one_click.yaml)")
    return value


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


ONE_CLICK_ID = "id"
ONE_CLICK_LABEL = "activity_declined"
ONE_CLICK_CATEGORICAL = ["service_type", "top_category"]


def load_one_click(folder: Path, profit_column: str | None,
                   min_active_months: int | None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """'V odin klik' shop joined from its four files: ``(frame, raw tables)``; the frame has one
    row per client (``id``), the 0/1 target ``activity_declined`` and ``profit_column``.

    money.csv uses ``;`` as separator and ``,`` as decimal mark. Clients without revenue in
    each of the last ``min_active_months`` periods are dropped (the brief's activity filter).
    """
    folder = Path(folder)
    profit_column = _needed(profit_column, "profit_column")
    min_active_months = _needed(min_active_months, "min_active_months")
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
    df[ONE_CLICK_LABEL] = (target_text == ONE_CLICK_DECLINED).astype(np.int8)
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
    return out, raw


