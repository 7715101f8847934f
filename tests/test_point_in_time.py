"""The point-in-time join (tasks/data/point_in_time.py): each row's factors as of its own date."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from factors import compute_factors
from tasks.core.errors import ConfigError, DataValidationError
from tasks.data.point_in_time import factors_as_of_rows
from tests.test_factors import AS_OF, make_world

EARLIER = AS_OF - pd.Timedelta(days=11)
NAMES = ["purchase_count_30d", "purchase_amount_30d", "days_since_last_purchase"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("pit") / "world")


@pytest.fixture
def rows() -> pd.DataFrame:
    # dates interleaved and a non-default index: the result must follow the rows, not the dates
    return pd.DataFrame({
        "client_id": [2, 1, 1, 2],
        "campaign_date": [EARLIER, AS_OF, EARLIER, AS_OF],
        "other": ["a", "b", "c", "d"],
    }, index=[10, 7, 3, 99])


def test_rows_keep_their_order_and_see_only_their_own_past(world: Path, rows: pd.DataFrame):
    out = factors_as_of_rows(world, rows, NAMES)
    assert list(out.columns) == NAMES
    assert out.index.equals(pd.RangeIndex(len(rows)))
    for i, (cid, date) in enumerate(zip(rows["client_id"], rows["campaign_date"])):
        expected = compute_factors(world, date, NAMES, pd.Series([cid])).drop(columns=["client_id"])
        pd.testing.assert_frame_equal(out.iloc[[i]].reset_index(drop=True), expected, check_dtype=True)
    # hand-checked: client 1 bought 10 and 20 days before AS_OF, and 45 days before it
    # (34 days before EARLIER: outside that row's 30-day window)
    assert out["purchase_count_30d"].tolist()[1:3] == [2, 1]
    assert out["days_since_last_purchase"].tolist()[1:3] == pytest.approx([10.0, 9.0])


def test_another_date_column(world: Path, rows: pd.DataFrame):
    renamed = rows.rename(columns={"campaign_date": "as_of"})
    pd.testing.assert_frame_equal(factors_as_of_rows(world, renamed, NAMES, date_column="as_of"),
                                  factors_as_of_rows(world, rows, NAMES))


@pytest.mark.parametrize("column", ["client_id", "campaign_date"])
def test_a_missing_column_is_named(world: Path, rows: pd.DataFrame, column: str):
    with pytest.raises(DataValidationError, match=column):
        factors_as_of_rows(world, rows.drop(columns=[column]), NAMES)


def test_an_empty_factor_list_is_a_config_error(world: Path, rows: pd.DataFrame):
    with pytest.raises(ConfigError, match="factor set is empty"):
        factors_as_of_rows(world, rows, [])
