"""Reading a dataset's tables: Parquet or CSV through one validator, and the as-of promise."""
from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.core.errors import DataValidationError, NotFoundError
from tasks.data.tables import check_dataset, check_event_times, read_manifest, read_table

AS_OF = "2026-01-01"


def clients(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame({
        "client_id": range(1, n + 1),
        "registration_date": pd.to_datetime(["2024-05-01"] * n),
        "age": [30 + i for i in range(n)],
        "gender": ["F", "M"] * (n // 2),
        "region": ["north"] * n,
        "email_opt_out": [False] * n, "sms_opt_out": [False] * n, "push_opt_out": [True] * n,
        "marketing_opt_out": [False] * n,
    })


def purchases(n: int = 8, last: str = "2025-12-31 23:59") -> pd.DataFrame:
    times = pd.date_range("2025-06-01", periods=n - 1, freq="D").append(pd.DatetimeIndex([last]))
    return pd.DataFrame({
        "client_id": [1 + i % 3 for i in range(n)], "timestamp": times, "transaction_id": range(100, 100 + n),
        "amount": [9.5] * n, "quantity": [1] * n, "category": ["grocery"] * n, "channel": ["online"] * n,
        "promo": [False] * n,
    })


@pytest.fixture
def dataset(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "mine", "as_of": AS_OF}))
    clients().to_parquet(tmp_path / "clients.parquet", index=False)
    purchases().to_parquet(tmp_path / "purchases.parquet", index=False)
    return tmp_path


def test_csv_table_read_through_the_validator_when_there_is_no_parquet(dataset):
    table = clients()
    (dataset / "clients.parquet").unlink()
    csv = table.assign(marketing_opt_out=["no", "yes"] * 3)
    csv.to_csv(dataset / "clients.csv", sep=";", index=False)
    got = read_table(dataset, "clients")
    assert got["marketing_opt_out"].tolist() == [False, True] * 3
    assert str(got["registration_date"].dtype).startswith("datetime64")
    pd.testing.assert_frame_equal(got.drop(columns="marketing_opt_out"), table.drop(columns="marketing_opt_out"),
                                  check_dtype=False)
    csv.loc[[1, 4], "age"] = None
    csv.to_csv(dataset / "clients.csv", sep=";", index=False)
    with pytest.raises(DataValidationError, match=r"column 'age': 2 missing value\(s\) \(NaN\) in an integer "
                                                  r"column; e.g. rows \[1, 4\]"):
        read_table(dataset, "clients")
    (dataset / "clients.csv").unlink()
    with pytest.raises(NotFoundError, match=r"clients.parquet does not exist \(nor clients.csv or clients.tsv\)"):
        read_table(dataset, "clients")


def test_read_table_holds_every_table_to_the_manifest_as_of(dataset):
    assert len(read_table(dataset, "purchases")) == 8
    purchases(last=AS_OF).to_parquet(dataset / "purchases.parquet", index=False)
    with pytest.raises(DataValidationError, match=r"column 'timestamp': 1 row\(s\) at or after the as-of date "
                                                  r"2026-01-01; e.g. rows \[7\]"):
        read_table(dataset, "purchases")
    # an explicit, earlier as-of date is the stricter limit; a later one does not lift the promise
    with pytest.raises(DataValidationError, match="at or after the as-of date 2026-01-01"):
        read_table(dataset, "purchases", as_of="2027-01-01")


def test_check_dataset_reads_statistics_and_names_rows_only_on_a_breach(dataset):
    assert check_dataset(dataset, ["clients", "purchases"])["as_of"] == AS_OF
    # a folder of part files, one of them with a late event
    (dataset / "purchases.parquet").unlink()
    parts = dataset / "purchases.parquet"
    parts.mkdir()
    purchases().iloc[:4].to_parquet(parts / "part-0.parquet", index=False)
    purchases(last="2026-02-03").iloc[4:].to_parquet(parts / "part-1.parquet", index=False)
    with pytest.raises(DataValidationError, match=r"table 'purchases', column 'timestamp': 1 row\(s\) at or after"):
        check_dataset(dataset, ["clients", "purchases"])
    # a file without statistics is read instead
    table = pa.Table.from_pandas(purchases(last="2026-01-05").iloc[4:], preserve_index=False)
    (parts / "part-1.parquet").unlink()
    pq.write_table(table, parts / "part-1.parquet", write_statistics=False)
    assert pq.read_metadata(parts / "part-1.parquet").row_group(0).column(1).statistics is None
    with pytest.raises(DataValidationError, match="at or after the as-of date 2026-01-01"):
        check_event_times(dataset, "purchases", AS_OF)
    # registrations on the as-of date are fine, after it are not; time zones count in UTC
    late = clients().assign(registration_date=pd.to_datetime(["2026-01-01"] * 5 + ["2026-01-02"]))
    late.to_parquet(dataset / "clients.parquet", index=False)
    with pytest.raises(DataValidationError, match=r"'registration_date': 1 row\(s\) after the as-of date.*rows \[5\]"):
        check_event_times(dataset, "clients", AS_OF)
    aware = clients().assign(registration_date=pd.to_datetime(["2026-01-01 00:30"] * 6).tz_localize("Europe/Berlin"))
    aware.to_parquet(dataset / "clients.parquet", index=False)
    check_event_times(dataset, "clients", AS_OF)  # 23:30 UTC the day before
    read_table(dataset, "clients")


def test_missing_columns_and_bad_manifests_are_named(dataset):
    clients().drop(columns=["age"]).to_parquet(dataset / "clients.parquet", index=False)
    with pytest.raises(DataValidationError, match=r"table 'clients', column 'age': missing column"):
        check_dataset(dataset, ["clients"])
    (dataset / "manifest.json").write_text('{"name": "mine", "as_of": "2026-')
    with pytest.raises(DataValidationError, match=r"manifest.json is not valid JSON"):
        read_manifest(dataset)
    (dataset / "manifest.json").write_text('{"name": "mine", "as_of": "soon"}')
    with pytest.raises(DataValidationError, match=r"column 'as_of': 'soon' in .* is not a date"):
        check_dataset(dataset, ["clients"])
    (dataset / "manifest.json").unlink()
    with pytest.raises(NotFoundError, match="no manifest.json"):
        check_dataset(dataset, ["clients"])
