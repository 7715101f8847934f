"""Every registered factor against hand-computed values on a tiny hand-made world, the
registry-wide point-in-time test, and bad input to compute_factors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factors import all_factors, compute_factors, factor_set
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError

AS_OF = pd.Timestamp("2026-01-01")
NONE = 9999.0  # "days since" default


def _ago(days: float) -> pd.Timestamp:
    return AS_OF - pd.Timedelta(days=days)


def make_world(root: Path, purchases: list | None = None, messages: list | None = None,
               clients: pd.DataFrame | None = None) -> Path:
    """Write the hand-made world (or the given replacement rows) as Parquet under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    if clients is None:
        clients = base_clients()
    purchases = base_purchases() if purchases is None else purchases
    messages = base_messages() if messages is None else messages
    clients.to_parquet(root / "clients.parquet", index=False)
    p = pd.DataFrame(purchases, columns=["client_id", "timestamp", "amount", "quantity", "category",
                                         "channel", "promo"])
    p.insert(2, "transaction_id", np.arange(1, len(p) + 1, dtype="int64"))
    p = p.astype({"client_id": "int64", "timestamp": "datetime64[us]", "amount": "float64",
                  "quantity": "int64", "promo": "bool"})
    p.to_parquet(root / "purchases.parquet", index=False)
    m = pd.DataFrame(messages, columns=["client_id", "timestamp", "channel", "event"])
    m["campaign_id"] = "mail1"
    m = m.astype({"client_id": "int64", "timestamp": "datetime64[us]"})
    m.to_parquet(root / "messages.parquet", index=False)
    return root


def base_clients() -> pd.DataFrame:
    return pd.DataFrame({
        "client_id": np.array([1, 2, 3, 4, 5], dtype="int64"),
        "registration_date": pd.to_datetime(["2024-01-01", "2025-12-01", "2025-06-01",
                                             "2026-01-01", "2026-02-01"]),
        "age": np.array([35, 52, 22, 40, 30], dtype="int64"),
        "gender": ["F", "M", "F", "M", "F"],
        "region": ["north", "south", "north", "east", "west"],
        "email_opt_out": [False, False, True, False, False],
        "sms_opt_out": [True, False, False, False, False],
        "push_opt_out": [False, False, True, False, False],
        "marketing_opt_out": [False, True, False, False, False],
    })


def base_purchases() -> list:
    # client, timestamp, amount, quantity, category, channel, promo
    return [
        (1, _ago(10), 100.0, 2, "grocery", "online", True),
        (1, _ago(20), 50.0, 1, "beauty", "offline", False),
        (1, _ago(45), 60.0, 3, "grocery", "offline", True),
        (1, _ago(100), 30.0, 3, "electronics", "online", False),
        (1, _ago(200), 40.0, 4, "kids", "offline", False),
        (1, _ago(400), 80.0, 2, "clothing", "online", True),
        (2, _ago(0.5), 25.0, 5, "household", "online", True),
        (2, _ago(30), 10.0, 2, "grocery", "online", False),   # exactly on the 30-day edge: inside
        (2, _ago(50), 15.0, 1, "household", "offline", False),
        # on or after the as-of date: never seen
        (1, AS_OF, 999.0, 9, "kids", "online", True),
        (2, _ago(-3), 500.0, 1, "clothing", "offline", True),
        (3, _ago(-1), 70.0, 2, "beauty", "online", False),
    ]


def base_messages() -> list:
    # client, timestamp, channel, event
    return [
        (1, _ago(5), "email", "send"), (1, _ago(4.5), "email", "open"), (1, _ago(4), "email", "click"),
        (1, _ago(40), "email", "send"), (1, _ago(39), "email", "open"),
        (1, _ago(100), "sms", "send"), (1, _ago(100), "sms", "bounce"),
        (1, _ago(2), "mobile_push", "send"), (1, _ago(95), "mobile_push", "send"),
        (1, _ago(1), "mobile_push", "unsubscribe"),
        (1, _ago(3.5), "email", "purchase"),
        (2, _ago(10), "email", "send"), (2, _ago(10), "email", "bounce"),
        (2, _ago(20), "sms", "send"), (2, _ago(19), "sms", "open"), (2, _ago(19), "sms", "click"),
        (2, _ago(15), "sms", "unsubscribe"),
        # on or after the as-of date: never seen
        (1, AS_OF, "email", "open"), (3, _ago(-2), "email", "send"), (3, _ago(-1), "email", "unsubscribe"),
    ]


# Hand-computed values for clients 1, 2, 3 as of 2026-01-01 (client 3 has no history).
# Client 1 purchases (days ago: amount x quantity): 10: 100x2, 20: 50x1, 45: 60x3, 100: 30x3,
# 200: 40x4, 400: 80x2. Client 2: 0.5: 25x5, 30: 10x2, 50: 15x1.
EXPECTED: dict[str, tuple] = {
    # profile
    "age": (35, 52, 22),
    "is_female": (1, 0, 1),
    "tenure_days": (731.0, 31.0, 214.0),
    "tenure_days_365": (365.0, 31.0, 214.0),
    "tenure_days_1095": (731.0, 31.0, 214.0),
    "email_opt_out": (0, 0, 1),
    "sms_opt_out": (1, 0, 0),
    "push_opt_out": (0, 0, 1),
    "marketing_opt_out": (0, 1, 0),
    "region_capital": (0, 0, 0),
    "region_north": (1, 0, 1),
    "region_south": (0, 1, 0),
    "region_east": (0, 0, 0),
    "region_west": (0, 0, 0),
    "region_central": (0, 0, 0),
    # purchase recency and totals
    "days_since_last_purchase": (10.0, 0.5, NONE),
    "days_since_first_purchase": (400.0, 50.0, NONE),
    "purchase_count_total": (6, 3, 0),
    "purchase_amount_total": (360.0, 50.0, 0.0),
    # windows
    "purchase_count_30d": (2, 2, 0),
    "purchase_amount_30d": (150.0, 35.0, 0.0),
    "avg_basket_30d": (75.0, 17.5, 0.0),
    "max_basket_30d": (100.0, 25.0, 0.0),
    "avg_item_price_30d": (50.0, 5.0, 0.0),
    "item_quantity_30d": (3, 7, 0),
    "purchase_count_60d": (3, 3, 0),
    "purchase_amount_60d": (210.0, 50.0, 0.0),
    "purchase_count_90d": (3, 3, 0),
    "purchase_amount_90d": (210.0, 50.0, 0.0),
    "avg_basket_90d": (70.0, 50.0 / 3, 0.0),
    "max_basket_90d": (100.0, 25.0, 0.0),
    "avg_item_price_90d": (35.0, 6.25, 0.0),
    "item_quantity_90d": (6, 8, 0),
    "purchase_count_180d": (4, 3, 0),
    "purchase_amount_180d": (240.0, 50.0, 0.0),
    "avg_basket_180d": (60.0, 50.0 / 3, 0.0),
    "max_basket_180d": (100.0, 25.0, 0.0),
    "avg_item_price_180d": (240.0 / 9, 6.25, 0.0),
    "item_quantity_180d": (9, 8, 0),
    "purchase_count_365d": (5, 3, 0),
    "purchase_amount_365d": (280.0, 50.0, 0.0),
    "avg_basket_365d": (56.0, 50.0 / 3, 0.0),
    "max_basket_365d": (100.0, 25.0, 0.0),
    "avg_item_price_365d": (280.0 / 13, 6.25, 0.0),
    "item_quantity_365d": (13, 8, 0),
    # trends: last 30 days vs the 30 before (client 1: 2 vs 1 purchases, 150 vs 60; client 2: 2 vs 1, 35 vs 15)
    "purchase_count_diff_30d": (1, 1, 0),
    "purchase_amount_diff_30d": (90.0, 20.0, 0.0),
    "purchase_count_trend_30d": (2 / 3, 2 / 3, 0.5),
    "purchase_amount_trend_30d": (150.0 / 210, 0.7, 0.5),
    # client 1: last promo 10 days ago, 90 days: 2 promo of 3; client 2: 0.5 days, 1 of 3
    "days_since_last_promo_purchase": (10.0, 0.5, NONE),
    "promo_share_90d": (2 / 3, 1 / 3, 0.0),
    # first-to-last span over count - 1: (400 - 10) / 5, (50 - 0.5) / 2
    "avg_days_between_purchases": (78.0, 24.75, NONE),
    # all-history amount per day of tenure: 360 / 731, 50 / 31
    "amount_per_tenure_day": (360.0 / 731, 50.0 / 31, 0.0),
    # shares over 365 days (client 1 amount 280: grocery 160, beauty 50, electronics 30, kids 40)
    "category_grocery_share_365d": (160.0 / 280, 0.2, 0.0),
    "category_household_share_365d": (0.0, 0.8, 0.0),
    "category_beauty_share_365d": (50.0 / 280, 0.0, 0.0),
    "category_electronics_share_365d": (30.0 / 280, 0.0, 0.0),
    "category_clothing_share_365d": (0.0, 0.0, 0.0),
    "category_kids_share_365d": (40.0 / 280, 0.0, 0.0),
    "distinct_categories_365d": (4, 2, 0),
    "online_share_365d": (0.4, 2 / 3, 0.0),
    "promo_share_365d": (0.4, 1 / 3, 0.0),
    # all history: client 1 promo at 10, 45 and 400 days of 6 purchases; client 2 1 of 3
    "promo_purchase_count_total": (3, 1, 0),
    "promo_share_total": (0.5, 1 / 3, 0.0),
    "promo_share_smoothed": (4 / 8, 2 / 5, 1 / 2),
    # fixed 365-day windows in place of all history: client 1's purchases at 10, 20, 45, 100, 200
    # days (promo at 10 and 45), client 2's at 0.5, 30, 50 (promo at 0.5)
    "days_since_first_purchase_365d": (200.0, 50.0, NONE),
    "promo_purchase_count_365d": (2, 1, 0),
    "promo_share_smoothed_365d": (3 / 7, 2 / 5, 1 / 2),
    "avg_days_between_purchases_365d": ((200.0 - 10.0) / 4, 24.75, NONE),
    "amount_per_tenure_day_365d": (280.0 / 365, 50.0 / 31, 0.0),
    # whole-week message counts: client 1 sends at 2, 5, 40, 95, 100 days, opens at 4.5, 39,
    # a click at 4; client 2 sends at 10, 20, an open and a click at 19
    "message_send_count_28d": (2, 2, 0),
    "message_send_count_84d": (3, 2, 0),
    "message_open_count_28d": (1, 1, 0),
    "message_open_count_84d": (2, 1, 0),
    "message_click_count_28d": (1, 1, 0),
    "message_click_count_84d": (1, 1, 0),
    # messages: recency
    "days_since_last_message": (2.0, 10.0, NONE),
    "days_since_last_open": (4.5, 19.0, NONE),
    "days_since_last_click": (4.0, 19.0, NONE),
    # messages: totals and rates (client 1: 5 sends, 2 opens, 1 click; client 2: 2, 1, 1)
    "message_send_count": (5, 2, 0),
    "message_open_count": (2, 1, 0),
    "message_click_count": (1, 1, 0),
    "message_send_count_90d": (3, 2, 0),
    "message_send_count_30d": (2, 2, 0),
    "message_purchase_count": (1, 0, 0),
    "click_to_open_rate": (0.5, 1.0, 0.0),
    "open_rate": (0.4, 0.5, 0.0),
    "click_rate": (0.2, 0.5, 0.0),
    "ever_unsubscribed": (1, 1, 0),
    "ever_bounced": (1, 1, 0),
    # per channel
    "channel_email_count": (2, 1, 0),
    "email_open_count": (2, 0, 0),
    "email_click_count": (1, 0, 0),
    "email_open_rate": (1.0, 0.0, 0.0),
    "email_click_rate": (0.5, 0.0, 0.0),
    "email_unsubscribed": (0, 0, 0),
    "email_bounced": (0, 1, 0),
    "channel_sms_count": (1, 1, 0),
    "sms_open_count": (0, 1, 0),
    "sms_click_count": (0, 1, 0),
    "sms_open_rate": (0.0, 1.0, 0.0),
    "sms_click_rate": (0.0, 1.0, 0.0),
    "sms_unsubscribed": (0, 1, 0),
    "sms_bounced": (1, 0, 0),
    "channel_mobile_push_count": (2, 0, 0),
    "mobile_push_open_count": (0, 0, 0),
    "mobile_push_click_count": (0, 0, 0),
    "mobile_push_open_rate": (0.0, 0.0, 0.0),
    "mobile_push_click_rate": (0.0, 0.0, 0.0),
    "mobile_push_unsubscribed": (1, 0, 0),
    "mobile_push_bounced": (0, 0, 0),
    # smoothed rates: client 1 1 click of 5 sends, 2 opens of 4 email + push sends, 1 purchase
    # of 1 click; client 2 1 click of 2 sends, 0 opens of 1 email send, 0 purchases of 1 click;
    # client 3 nothing (the prior)
    "click_rate_smoothed": (1.5 / 9, 1.5 / 6, 0.5 / 4),
    "trackable_open_rate_smoothed": (2.5 / 6, 0.5 / 3, 0.5 / 2),
    "click_to_purchase_rate_smoothed": (1.3 / 3, 0.3 / 3, 0.3 / 2),
}


@pytest.fixture
def world(tmp_path: Path) -> Path:
    return make_world(tmp_path / "world")


@pytest.fixture(scope="module")
def full_table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = make_world(tmp_path_factory.mktemp("factors") / "world")
    return compute_factors(root, AS_OF, list(EXPECTED), client_ids=[1, 2, 3])


def test_expectations_cover_every_registered_factor() -> None:
    assert set(EXPECTED) == set(all_factors())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_factor_matches_hand_computed_values(full_table: pd.DataFrame, name: str) -> None:
    factor = all_factors()[name]
    col = full_table[name]
    assert str(col.dtype) == factor.dtype
    np.testing.assert_allclose(col.to_numpy(dtype=float), np.array(EXPECTED[name], dtype=float),
                               rtol=1e-12, atol=1e-9, err_msg=name)


def test_each_factor_alone_gives_the_same_values(tmp_path: Path) -> None:
    """Requested alone, a derived factor still finds its inputs (computed, not returned)."""
    world = make_world(tmp_path / "w")
    derived = [n for n, f in all_factors().items() if f.kind == "derived"]
    assert derived
    for name in derived:
        expected = EXPECTED[name]
        out = compute_factors(world, AS_OF, [name], client_ids=[1, 2, 3])
        assert list(out.columns) == ["client_id", name]
        np.testing.assert_allclose(out[name].to_numpy(dtype=float), np.array(expected, dtype=float),
                                   rtol=1e-12, atol=1e-9, err_msg=name)


def test_result_layout_follows_the_request(world: Path) -> None:
    names = ["purchase_count_30d", "age", "open_rate"]
    out = compute_factors(world, "2026-01-01", names, client_ids=np.array([3, 1, 2]))
    assert list(out.columns) == ["client_id", *names]
    assert out["client_id"].tolist() == [3, 1, 2]
    assert str(out["client_id"].dtype) == "int64"
    assert out["purchase_count_30d"].tolist() == [0, 2, 2]


def test_all_clients_are_those_registered_before_as_of(world: Path) -> None:
    out = compute_factors(world, AS_OF, ["tenure_days"])
    assert out["client_id"].tolist() == [1, 2, 3]  # 4 registers on the as-of date, 5 after it
    earlier = compute_factors(world, "2025-11-01", ["tenure_days"])
    assert earlier["client_id"].tolist() == [1, 3]


def test_input_series_is_not_modified(world: Path) -> None:
    ids = pd.Series([2, 1], index=[10, 20])
    before = ids.copy()
    compute_factors(world, AS_OF, ["age"], client_ids=ids)
    pd.testing.assert_series_equal(ids, before)


def test_empty_request_gives_an_empty_typed_table(world: Path) -> None:
    out = compute_factors(world, AS_OF, ["age", "open_rate"], client_ids=np.array([], dtype="int64"))
    assert len(out) == 0 and list(out.columns) == ["client_id", "age", "open_rate"]
    assert [str(t) for t in out.dtypes] == ["int64", "int64", "float64"]


def test_truth_and_campaign_tables_are_never_read(world: Path) -> None:
    expected = compute_factors(world, AS_OF, list(EXPECTED), client_ids=[1, 2, 3])
    (world / "truth.parquet").write_bytes(b"not parquet: reading this file fails")
    (world / "campaign_history.parquet").write_bytes(b"not parquet either")
    pd.testing.assert_frame_equal(compute_factors(world, AS_OF, list(EXPECTED), client_ids=[1, 2, 3]), expected)


def _shifted_world(root: Path, cut: pd.Timestamp, seed: int) -> Path:
    """The base world with every event on or after ``cut`` changed, plus new ones there."""
    rng = np.random.default_rng(seed)
    cats = ["grocery", "household", "beauty", "electronics", "clothing", "kids"]
    purchases = []
    for row in base_purchases():
        if row[1] >= cut:
            row = (row[0], row[1] + pd.Timedelta(hours=int(rng.integers(0, 48))), row[2] * 7 + 1,
                   row[3] + 3, cats[int(rng.integers(0, 6))], "online" if row[5] == "offline" else "offline",
                   not row[6])
        purchases.append(row)
    messages = []
    for row in base_messages():
        if row[1] >= cut:
            row = (row[0], row[1] + pd.Timedelta(minutes=5), "sms", "unsubscribe")
        messages.append(row)
    for client in (1, 2, 3, 4, 5, 99):
        for k, cat in enumerate(cats):
            purchases.append((client, cut + pd.Timedelta(hours=k * 7), 1000.0 + k, 1 + k, cat,
                              "online" if k % 2 else "offline", bool(k % 2)))
        for ch in ("email", "mobile_push", "sms"):
            for ev in ("send", "open", "click", "purchase", "unsubscribe", "bounce"):
                messages.append((client, cut, ch, ev))
                messages.append((client, cut + pd.Timedelta(days=3), ch, ev))
    clients = pd.concat([base_clients(), pd.DataFrame({
        "client_id": np.array([6], dtype="int64"), "registration_date": [cut], "age": np.array([50]),
        "gender": ["M"], "region": ["east"], "email_opt_out": [True], "sms_opt_out": [True],
        "push_opt_out": [True], "marketing_opt_out": [True]})], ignore_index=True)
    return make_world(root, purchases, messages, clients)


@pytest.mark.parametrize("as_of", ["2026-01-01", "2025-12-10 06:00", "2025-11-15"])
def test_no_factor_sees_events_on_or_after_as_of(tmp_path: Path, as_of: str) -> None:
    cut = pd.Timestamp(as_of)
    names = list(all_factors())
    original = make_world(tmp_path / "original")
    changed = _shifted_world(tmp_path / "changed", cut, seed=7)
    ids = compute_factors(original, cut, ["age"])["client_id"]
    assert len(ids) >= 2
    before = compute_factors(original, cut, names, client_ids=ids)
    after = compute_factors(changed, cut, names, client_ids=ids)
    pd.testing.assert_frame_equal(before, after, check_exact=True)
    # the client base itself is point-in-time too: the client registered at the cut is not in it
    assert compute_factors(changed, cut, ["age"])["client_id"].tolist() == ids.tolist()


def test_default_set_lists_registered_factors() -> None:
    names = factor_set("default")
    assert len(names) >= 30
    assert set(names) <= set(all_factors())


# ---------------------------------------------------------------- bad input

def test_unknown_factor_is_named(world: Path) -> None:
    with pytest.raises(NotFoundError, match="purchase_cnt_30d"):
        compute_factors(world, AS_OF, ["age", "purchase_cnt_30d"])


def test_duplicate_requested_clients(world: Path) -> None:
    with pytest.raises(DataValidationError, match=r"client_id.*duplicate.*\[1\]"):
        compute_factors(world, AS_OF, ["age"], client_ids=[1, 2, 1])


def test_unknown_and_unregistered_clients(world: Path) -> None:
    with pytest.raises(NotFoundError, match=r"not in the clients table, e.g. \[77\]"):
        compute_factors(world, AS_OF, ["age"], client_ids=[1, 77])
    with pytest.raises(NotFoundError, match=r"on or after the as-of date, e.g. \[4, 5\]"):
        compute_factors(world, AS_OF, ["age"], client_ids=[4, 1, 5])


def test_missing_file(world: Path) -> None:
    (world / "messages.parquet").unlink()
    assert compute_factors(world, AS_OF, ["purchase_count_30d"], client_ids=[1])["purchase_count_30d"].tolist() == [2]
    with pytest.raises(NotFoundError, match="table 'messages'.*does not exist"):
        compute_factors(world, AS_OF, ["open_rate"], client_ids=[1])


def test_missing_column(world: Path) -> None:
    df = pd.read_parquet(world / "purchases.parquet").drop(columns=["quantity"])
    df.to_parquet(world / "purchases.parquet", index=False)
    with pytest.raises(DataValidationError, match="table 'purchases', column 'quantity': missing column"):
        compute_factors(world, AS_OF, ["item_quantity_30d"])


def test_mistyped_column(world: Path) -> None:
    df = pd.read_parquet(world / "purchases.parquet")
    df["amount"] = df["amount"].astype(str)
    df.to_parquet(world / "purchases.parquet", index=False)
    with pytest.raises(DataValidationError, match="table 'purchases', column 'amount': expected float"):
        compute_factors(world, AS_OF, ["purchase_amount_30d"])


def test_missing_values_negative_amounts_and_duplicate_clients(world: Path) -> None:
    good = pd.read_parquet(world / "purchases.parquet")
    bad = good.copy()
    bad["amount"] = bad["amount"].astype("float64").where(bad.index != 4)
    bad.to_parquet(world / "purchases.parquet", index=False)
    with pytest.raises(DataValidationError, match=r"table 'purchases', column 'amount': 1 missing value\(s\); e.g. rows \[4\]"):
        compute_factors(world, AS_OF, ["purchase_amount_30d"])
    bad = good.copy()
    bad.loc[2, "amount"] = -5.0
    bad.to_parquet(world / "purchases.parquet", index=False)
    with pytest.raises(DataValidationError, match=r"column 'amount': value\(s\) below 0; e.g. rows \[2\]"):
        compute_factors(world, AS_OF, ["purchase_amount_30d"])
    good.to_parquet(world / "purchases.parquet", index=False)
    clients = base_clients()
    pd.concat([clients, clients.iloc[[1]]]).to_parquet(world / "clients.parquet", index=False)
    with pytest.raises(DataValidationError, match=r"table 'clients', column 'client_id': 1 client id\(s\) appear more"):
        compute_factors(world, AS_OF, ["age"])


@pytest.mark.parametrize("bad", ["not a date", ""])
def test_bad_as_of(world: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="as_of"):
        compute_factors(world, bad, ["age"])


def test_empty_factor_list(world: Path) -> None:
    with pytest.raises(ConfigError, match="no factors"):
        compute_factors(world, AS_OF, [])
