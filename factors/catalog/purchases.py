"""Purchase factors: recency, frequency, monetary, basket and price, trends, shares."""
from __future__ import annotations

from factors.base import Factor
from factors.registry import register_all
from tasks.core.contracts import CATEGORIES

NO_EVENT_DAYS = 9999.0
"""Default of every "days since ..." factor for a client who never had the event."""

CENTS = "CAST(round(amount * 100) AS BIGINT)"
"""Amounts are summed as whole cents: an integer sum does not depend on the order in which
DuckDB's threads add rows, so a factor table is identical from run to run."""

WINDOWS = (30, 90, 180, 365)
SHARE_WINDOW = 365


def _agg(name: str, description: str, sql: str, columns: tuple[str, ...], window: int | None,
         dtype: str = "float64", default: float | int = 0.0, theme: str = "frequency_monetary") -> Factor:
    return Factor(name, description, "aggregate", sql, table="purchases", columns=columns,
                  window=window, dtype=dtype, default=default, theme=theme)


def _derived(name: str, description: str, sql: str, inputs: tuple[str, ...],
             dtype: str = "float64", default: float | int = 0.0, theme: str = "trend") -> Factor:
    return Factor(name, description, "derived", sql, inputs=inputs, dtype=dtype, default=default, theme=theme)


FACTORS: list[Factor] = [
    _agg("days_since_last_purchase",
         f"Days from the last purchase to the as-of date (fractional); {NO_EVENT_DAYS:g} when none.",
         "date_diff('second', max(timestamp), {as_of}) / 86400.0", ("timestamp",), None,
         default=NO_EVENT_DAYS, theme="recency"),
    _agg("days_since_first_purchase",
         f"Days from the first purchase to the as-of date (fractional); {NO_EVENT_DAYS:g} when none.",
         "date_diff('second', min(timestamp), {as_of}) / 86400.0", ("timestamp",), None,
         default=NO_EVENT_DAYS, theme="recency"),
    _agg("purchase_count_total", "Number of purchases in all history.", "count(*)", (), None,
         dtype="int64", default=0),
    _agg("purchase_amount_total", "Amount spent in all history.", f"sum({CENTS}) / 100.0", ("amount",), None),
]

for w in (*WINDOWS, 60):
    FACTORS.append(_agg(f"purchase_count_{w}d", f"Number of purchases in the last {w} days.",
                        "count(*)", (), w, dtype="int64", default=0))
    FACTORS.append(_agg(f"purchase_amount_{w}d", f"Amount spent in the last {w} days.",
                        f"sum({CENTS}) / 100.0", ("amount",), w))
for w in WINDOWS:
    FACTORS += [
        _agg(f"avg_basket_{w}d", f"Average purchase amount in the last {w} days; 0 when none.",
             f"sum({CENTS}) / 100.0 / count(*)", ("amount",), w),
        _agg(f"max_basket_{w}d", f"Largest purchase amount in the last {w} days; 0 when none.",
             "max(amount)", ("amount",), w),
        _agg(f"avg_item_price_{w}d", f"Amount per item (amount / quantity) in the last {w} days; 0 when none.",
             f"sum({CENTS}) / 100.0 / NULLIF(sum(quantity), 0)", ("amount", "quantity"), w),
        _agg(f"item_quantity_{w}d", f"Number of items bought in the last {w} days.",
             "sum(quantity)", ("quantity",), w, dtype="int64", default=0),
    ]

FACTORS += [
    _derived("purchase_count_diff_30d",
             "Purchases in the last 30 days minus purchases in the 30 days before them.",
             "2 * purchase_count_30d - purchase_count_60d", ("purchase_count_30d", "purchase_count_60d"),
             dtype="int64", default=0),
    _derived("purchase_amount_diff_30d",
             "Amount spent in the last 30 days minus the amount in the 30 days before them.",
             "2 * purchase_amount_30d - purchase_amount_60d", ("purchase_amount_30d", "purchase_amount_60d")),
    _derived("purchase_count_trend_30d",
             "Share of the last 60 days' purchases made in the last 30 (0.5 = steady; 0.5 when none).",
             "purchase_count_30d / NULLIF(purchase_count_60d, 0)", ("purchase_count_30d", "purchase_count_60d"),
             default=0.5),
    _derived("purchase_amount_trend_30d",
             "Share of the last 60 days' amount spent in the last 30 (0.5 = steady; 0.5 when none).",
             "purchase_amount_30d / NULLIF(purchase_amount_60d, 0)", ("purchase_amount_30d", "purchase_amount_60d"),
             default=0.5),
]

for cat in CATEGORIES:
    FACTORS.append(_agg(
        f"category_{cat}_share_{SHARE_WINDOW}d",
        f"Share of the amount of the last {SHARE_WINDOW} days spent on {cat} baskets; 0 when none.",
        f"sum({CENTS}) FILTER (WHERE category = '{cat}') / NULLIF(sum({CENTS}), 0)",
        ("amount", "category"), SHARE_WINDOW, theme="shares"))
FACTORS += [
    _agg(f"distinct_categories_{SHARE_WINDOW}d",
         f"Number of different basket categories bought in the last {SHARE_WINDOW} days.",
         "count(DISTINCT category)", ("category",), SHARE_WINDOW, dtype="int64", default=0, theme="shares"),
    _agg(f"online_share_{SHARE_WINDOW}d",
         f"Share of the purchases of the last {SHARE_WINDOW} days made online; 0 when none.",
         "avg(CASE WHEN channel = 'online' THEN 1.0 ELSE 0.0 END)", ("channel",), SHARE_WINDOW, theme="shares"),
    _agg(f"promo_share_{SHARE_WINDOW}d",
         f"Share of the purchases of the last {SHARE_WINDOW} days that used a discount or promo "
         "(discount affinity); 0 when none.",
         "avg(CASE WHEN promo THEN 1.0 ELSE 0.0 END)", ("promo",), SHARE_WINDOW, theme="shares"),
]

FACTORS += [
    _agg("days_since_last_promo_purchase",
         f"Days from the last purchase that used a discount or promo to the as-of date; {NO_EVENT_DAYS:g} when none.",
         "date_diff('second', max(timestamp) FILTER (WHERE promo), {as_of}) / 86400.0", ("timestamp", "promo"),
         None, default=NO_EVENT_DAYS, theme="recency"),
    _agg("promo_share_90d",
         "Share of the purchases of the last 90 days that used a discount or promo; 0 when none.",
         "avg(CASE WHEN promo THEN 1.0 ELSE 0.0 END)", ("promo",), 90, theme="shares"),
    _agg("promo_purchase_count_total", "Number of purchases that used a discount or promo, all history.",
         "count(*) FILTER (WHERE promo)", ("promo",), None, dtype="int64", default=0, theme="shares"),
    _derived("promo_share_total",
             "Share of all purchases that used a discount or promo (discount affinity over the "
             "whole history, steadier than a window); 0 when none.",
             "promo_purchase_count_total / NULLIF(purchase_count_total, 0)",
             ("promo_purchase_count_total", "purchase_count_total"), theme="shares"),
    _derived("promo_share_smoothed",
             "Promo share with add-one smoothing, (promo purchases + 1) / (purchases + 2): 0.5 "
             "for a client without purchases, nearing the raw share as purchases accumulate, so a "
             "client with 1 of 1 promo purchases does not look like one with 20 of 20.",
             "(promo_purchase_count_total + 1.0) / (purchase_count_total + 2.0)",
             ("promo_purchase_count_total", "purchase_count_total"), default=0.5, theme="shares"),
    _derived("avg_days_between_purchases",
             f"Average days between consecutive purchases (first to last over count - 1); "
             f"{NO_EVENT_DAYS:g} with fewer than two purchases.",
             "CASE WHEN purchase_count_total >= 2 THEN (days_since_first_purchase - days_since_last_purchase)"
             " / (purchase_count_total - 1) END",
             ("days_since_first_purchase", "days_since_last_purchase", "purchase_count_total"),
             default=NO_EVENT_DAYS, theme="recency"),
    _derived("amount_per_tenure_day",
             "Amount spent in all history per day since registration; 0 when none.",
             "purchase_amount_total / NULLIF(tenure_days, 0)", ("purchase_amount_total", "tenure_days"),
             theme="frequency_monetary"),
]

# Fixed-window stand-ins for the all-history factors above: history starts on a fixed date,
# so all-history counts and first-purchase ages grow with the calendar and a model's factors
# drift between its training dates and a later campaign for no change in behaviour.
FACTORS += [
    _agg(f"days_since_first_purchase_{SHARE_WINDOW}d",
         f"Days from the first purchase of the last {SHARE_WINDOW} days to the as-of date; "
         f"{NO_EVENT_DAYS:g} when none.",
         "date_diff('second', min(timestamp), {as_of}) / 86400.0", ("timestamp",), SHARE_WINDOW,
         default=NO_EVENT_DAYS, theme="recency"),
    _agg(f"promo_purchase_count_{SHARE_WINDOW}d",
         f"Number of purchases of the last {SHARE_WINDOW} days that used a discount or promo.",
         "count(*) FILTER (WHERE promo)", ("promo",), SHARE_WINDOW, dtype="int64", default=0, theme="shares"),
    _derived(f"promo_share_smoothed_{SHARE_WINDOW}d",
             f"Promo share of the last {SHARE_WINDOW} days with add-one smoothing, "
             "(promo purchases + 1) / (purchases + 2); 0.5 without purchases.",
             f"(promo_purchase_count_{SHARE_WINDOW}d + 1.0) / (purchase_count_{SHARE_WINDOW}d + 2.0)",
             (f"promo_purchase_count_{SHARE_WINDOW}d", f"purchase_count_{SHARE_WINDOW}d"), default=0.5,
             theme="shares"),
    _derived(f"avg_days_between_purchases_{SHARE_WINDOW}d",
             f"Average days between consecutive purchases of the last {SHARE_WINDOW} days; "
             f"{NO_EVENT_DAYS:g} with fewer than two.",
             f"CASE WHEN purchase_count_{SHARE_WINDOW}d >= 2 THEN (days_since_first_purchase_{SHARE_WINDOW}d"
             f" - days_since_last_purchase) / (purchase_count_{SHARE_WINDOW}d - 1) END",
             (f"days_since_first_purchase_{SHARE_WINDOW}d", "days_since_last_purchase", f"purchase_count_{SHARE_WINDOW}d"),
             default=NO_EVENT_DAYS, theme="recency"),
    _derived(f"amount_per_tenure_day_{SHARE_WINDOW}d",
             f"Amount of the last {SHARE_WINDOW} days per day of tenure within them (tenure capped at "
             f"{SHARE_WINDOW}); 0 when none.",
             f"purchase_amount_{SHARE_WINDOW}d / NULLIF(tenure_days_365, 0)",
             (f"purchase_amount_{SHARE_WINDOW}d", "tenure_days_365"), theme="frequency_monetary"),
]

register_all(FACTORS)
