"""The Prefect task writing a factor table to Parquet."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from prefect import flow

from tasks.core.errors import NotFoundError
from flows.factor_table import compute_factor_table
from tasks.campaign.factor_table import build_factor_table
from tests.test_factors import make_world


def test_task_writes_the_table_and_returns_a_summary(tmp_path: Path, prefect_env) -> None:
    world = make_world(tmp_path / "world")
    ids_path = tmp_path / "ids.parquet"
    pd.DataFrame({"client_id": [2, 1]}).to_parquet(ids_path, index=False)
    out = tmp_path / "out" / "factors.parquet"

    @flow
    def run() -> dict:
        return compute_factor_table(str(world), "2026-01-01", ["purchase_count_30d", "is_female"],
                                    str(out), str(ids_path))

    summary = run()
    assert summary["rows"] == 2 and summary["columns"] == 2 and summary["seconds"] >= 0
    table = pd.read_parquet(out)
    assert table["client_id"].tolist() == [2, 1]
    assert table["purchase_count_30d"].tolist() == [2, 2]
    assert table["is_female"].tolist() == [0, 1]


def test_nothing_is_written_on_bad_input(tmp_path: Path) -> None:
    world = make_world(tmp_path / "world")
    out = tmp_path / "out.parquet"
    with pytest.raises(NotFoundError, match="unknown factor 'nope'"):
        build_factor_table(str(world), "2026-01-01", ["age", "nope"], str(out))
    with pytest.raises(NotFoundError, match="client list"):
        build_factor_table(str(world), "2026-01-01", ["age"], str(out), str(tmp_path / "missing.parquet"))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["world"]
