"""The data contracts and the one validator every loader uses."""
from __future__ import annotations

import pandas as pd
import pytest

from tasks.core.contracts import CLIENTS, PURCHASES, CAMPAIGN_HISTORY, coerce_to_contract, load_table, validate_table, contract_markdown
from tasks.core.errors import DataValidationError, NotFoundError


def _purchases() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_id": [1, 1, 2],
            "timestamp": pd.to_datetime(["2025-01-01", "2025-02-01", "2025-03-01"]),
            "transaction_id": [10, 11, 12],
            "amount": [5.0, 7.5, 1.0],
            "quantity": [1, 2, 1],
            "category": ["grocery", "beauty", "kids"],
            "channel": ["online", "offline", "online"],
            "promo": [False, True, False],
        }
    )


def test_valid_table_passes_and_is_not_mutated():
    df = _purchases()
    before = df.copy()
    validate_table(df, PURCHASES, as_of="2026-01-01")
    pd.testing.assert_frame_equal(df, before)


def test_missing_column_named():
    df = _purchases().drop(columns=["amount"])
    with pytest.raises(DataValidationError, match=r"table 'purchases', column 'amount': missing column"):
        validate_table(df, PURCHASES)


def test_mistyped_column_named_with_rows():
    df = _purchases().astype({"amount": str})
    df.loc[1, "amount"] = "seven"
    with pytest.raises(DataValidationError, match=r"column 'amount': expected float") as err:
        validate_table(df, PURCHASES)
    assert err.value.rows == [1]
    assert "seven" in str(err.value)


def test_duplicate_key_named():
    df = _purchases()
    df.loc[2, "transaction_id"] = 10
    with pytest.raises(DataValidationError, match=r"column 'transaction_id': 2 row\(s\) share a duplicate key") as err:
        validate_table(df, PURCHASES)
    assert err.value.rows == [0, 2]


def test_event_after_as_of_named():
    df = _purchases()
    with pytest.raises(DataValidationError, match=r"column 'timestamp': 1 row\(s\) at or after the as-of date 2025-03-01") as err:
        validate_table(df, PURCHASES, as_of="2025-03-01")
    assert err.value.rows == [2]


def test_empty_table_refused():
    with pytest.raises(DataValidationError, match="table 'purchases': the table is empty"):
        validate_table(_purchases().iloc[:0], PURCHASES)


def test_value_outside_allowed_and_below_min():
    df = _purchases()
    df.loc[0, "channel"] = "phone"
    with pytest.raises(DataValidationError, match=r"column 'channel': 1 value\(s\) outside"):
        validate_table(df, PURCHASES)
    df = _purchases()
    df.loc[1, "amount"] = -3.0
    with pytest.raises(DataValidationError, match=r"column 'amount': 1 value\(s\) below 0"):
        validate_table(df, PURCHASES)


def test_nulls_refused_and_treatment_arms_checked():
    hist = pd.DataFrame(
        {
            "client_id": [1, 2],
            "campaign_id": ["c1", "c1"],
            "campaign_date": pd.to_datetime(["2025-06-01", "2025-06-01"]),
            "treatment": [1, 2],
            "response": [0, 1],
            "revenue": [0.0, 3.0],
        }
    )
    with pytest.raises(DataValidationError, match=r"column 'treatment': 1 value\(s\) outside \[0, 1\]"):
        validate_table(hist, CAMPAIGN_HISTORY)
    hist["treatment"] = [1, 0]
    hist["revenue"] = [0.0, float("nan")]
    with pytest.raises(DataValidationError, match=r"column 'revenue': 1 missing value"):
        validate_table(hist, CAMPAIGN_HISTORY)


def test_csv_load_coerces_dates_and_booleans(tmp_path):
    clients = pd.DataFrame(
        {
            "client_id": [1, 2],
            "registration_date": ["2020-01-05", "2021-07-09"],
            "age": [30, 41],
            "gender": ["F", "M"],
            "region": ["north", "south"],
            "email_opt_out": [0, 1],
            "sms_opt_out": ["no", "yes"],
            "push_opt_out": [False, False],
            "marketing_opt_out": [0, 0],
        }
    )
    path = tmp_path / "clients.csv"
    clients.to_csv(path, index=False)
    df = load_table(path, CLIENTS, as_of="2026-01-01")
    assert str(df["registration_date"].dtype).startswith("datetime64")
    assert df["sms_opt_out"].tolist() == [False, True]
    assert coerce_to_contract(clients, CLIENTS)["email_opt_out"].dtype == bool
    with pytest.raises(NotFoundError, match="does not exist"):
        load_table(tmp_path / "nope.parquet", CLIENTS)


def test_contract_markdown_lists_every_column():
    md = contract_markdown()
    for col in PURCHASES.column_names:
        assert f"| {col} |" in md


def test_nan_in_an_integer_column_names_the_column_and_the_nan_rows():
    df = _purchases()
    df = pd.concat([df] * 3, ignore_index=True).assign(transaction_id=range(9))
    df["quantity"] = df["quantity"].astype(float)
    df.loc[[4, 7], "quantity"] = float("nan")
    with pytest.raises(DataValidationError, match=r"column 'quantity': 2 missing value\(s\) \(NaN\) in an integer "
                                                  r"column; e.g. rows \[4, 7\]") as err:
        validate_table(coerce_to_contract(df, PURCHASES), PURCHASES)
    assert "dtype" not in str(err.value)
    df.loc[[4, 7], "quantity"] = [2.5, 1.0]
    with pytest.raises(DataValidationError, match=r"found 1 value\(s\) with a fraction; e.g. rows \[4\]"):
        validate_table(coerce_to_contract(df, PURCHASES), PURCHASES)
