"""Datasets stored in client-id buckets (tasks.data.buckets): the layout, the factor engine
reading a slice's own bucket files (or one bucketing pass for a table not stored by client),
and the campaign on a 2-worker Dask LocalCluster equal to the plain dataset's local campaign.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import factors
from factors import partitioned
from factors.partitioned import prepare_factors
from tasks.campaign.run import run_campaign
from tasks.core.errors import ConfigError
from tasks.core.layout import Layout
from tasks.data.buckets import bucket_dataset
from tasks.data.tables import read_table
from tests.test_campaign import WORLD, build_world, campaign, link_root
from tests.test_campaign_scale import NAMES, _as_of

DASK = {"kind": "dask", "n_workers": 2, "threads_per_worker": 1, "partitions": 4}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bucket_world")
    build_world(root, n_clients=2000)
    return root


@pytest.fixture(scope="module")
def bucketed(world, tmp_path_factory):
    """An artifacts root whose dataset is the world's, in 7 client-id buckets (same models)."""
    root = tmp_path_factory.mktemp("bucketed_root")
    (root / "models").symlink_to(world / "models")
    bucket_dataset(world / "data" / WORLD, root / "data" / WORLD, buckets=7)
    return root


def test_layout_buckets_hold_their_id_ranges_and_read_like_the_flat_table(world, bucketed):
    d = bucketed / "data" / WORLD
    layout = json.loads((d / "manifest.json").read_text())["buckets"]
    width = layout["width"]
    folders = sorted((d / "messages.parquet").glob("bucket=*"))
    assert layout["column"] == "client_id" and 2 <= len(folders) <= layout["count"] == 7
    for folder in folders:
        ids = pq.read_table(folder, columns=["client_id"])["client_id"].to_numpy()
        k = int(folder.name.split("=")[1])
        assert ids.min() >= k * width and ids.max() < (k + 1) * width and (np.diff(ids) >= 0).all()
    flat = read_table(world / "data" / WORLD, "clients")
    again = read_table(d, "clients").sort_values("client_id").reset_index(drop=True)
    assert list(again.columns) == list(flat.columns) and len(again) == len(flat)
    pd.testing.assert_series_equal(again["client_id"], flat.sort_values("client_id")["client_id"].reset_index(drop=True))
    with pytest.raises(ConfigError, match="already exists"):
        bucket_dataset(world / "data" / WORLD, d, buckets=3)


@pytest.mark.parametrize("slice_clients", [1_000_000, 300])
def test_factors_of_bucketed_data_equal_the_plain_ones(world, bucketed, tmp_path, monkeypatch, slice_clients):
    monkeypatch.setattr(partitioned, "SLICE_CLIENTS", slice_clients)
    plain, as_of = _as_of(world)
    ids = read_table(plain, "clients")
    ids = np.sort(ids.loc[ids["registration_date"] < as_of, "client_id"].to_numpy())[::2]
    whole = factors.compute_factors(plain, as_of, NAMES, client_ids=ids)
    (tmp_path / "work").mkdir()
    plan = prepare_factors(bucketed / "data" / WORLD, as_of, NAMES, ids, tmp_path / "work")
    assert not plan.preaggregated  # every table stored by client: partitions read their buckets' row groups
    parts = [plan(bucketed / "data" / WORLD, as_of, NAMES, p) for p in np.array_split(ids, 5)]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole, check_exact=True)


def test_a_table_not_stored_by_client_can_get_one_bucketing_pass(world, tmp_path, monkeypatch):
    monkeypatch.setattr(partitioned, "SLICE_CLIENTS", 300)
    src, as_of = _as_of(world)
    d = tmp_path / "world"
    shutil.copytree(src, d)  # messages in small row groups, each spanning many clients
    pq.write_table(pq.read_table(src / "messages.parquet"), d / "messages.parquet", row_group_size=500)
    ids = np.sort(read_table(d, "clients").query("registration_date < @as_of")["client_id"].to_numpy())
    (tmp_path / "work").mkdir()
    plan = prepare_factors(d, as_of, NAMES, ids, tmp_path / "work", bucket_pass=True)
    slices = -(-len(ids) // 300)
    assert len(list((tmp_path / "work" / "messages_buckets").glob("slice__=*"))) == slices
    parts = [plan(d, as_of, NAMES, p) for p in np.array_split(ids, 3)]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True),
                                  factors.compute_factors(src, as_of, NAMES, client_ids=ids), check_exact=True)


def test_bucketed_dataset_on_dask_gives_the_plain_local_campaign(world, bucketed, tmp_path, prefect_env, monkeypatch):
    from flows.campaign import campaign_flow

    monkeypatch.setattr(partitioned, "SLICE_CLIENTS", 500)  # several slices (prepared on the driver)
    local = run_campaign(campaign(cid="plain"), link_root(world, tmp_path / "plain"))
    dask_root = link_root(bucketed, tmp_path / "dask")
    out = campaign_flow(campaign=asdict(campaign(cid="plain")), artifacts=str(dask_root), runner=DASK)
    assert not out["noop"]
    a = pd.read_parquet(local.folder / "campaign.parquet")
    b = pd.read_parquet(Layout(dask_root).campaign("plain").folder / "campaign.parquet")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    local_bucketed = run_campaign(campaign(cid="plain"), link_root(bucketed, tmp_path / "local_bucketed"))
    pd.testing.assert_frame_equal(a, pd.read_parquet(local_bucketed.folder / "campaign.parquet"), check_exact=True)


def test_buckets_with_unordered_row_groups_are_read_bucket_by_bucket(world, bucketed, tmp_path, monkeypatch):
    import duckdb

    from factors.partitioned import _overlapping, client_clustered, file_ranges

    monkeypatch.setattr(partitioned, "SLICE_CLIENTS", 300)
    plain, as_of = _as_of(world)
    d = tmp_path / "shuffled"
    shutil.copytree(bucketed / "data" / WORLD, d)
    for part in (d / "messages.parquet").glob("bucket=*/part-0.parquet"):  # rows of a bucket in any order
        t = pq.read_table(part)
        pq.write_table(t.take(np.random.default_rng(1).permutation(t.num_rows)), part, row_group_size=50)
    con = duckdb.connect()
    files = str(d / "messages.parquet" / "**" / "*.parquet")
    assert not client_clustered(con, files)
    ranges = file_ranges(con, files)
    width = json.loads((d / "manifest.json").read_text())["buckets"]["width"]
    assert [p.rsplit("bucket=", 1)[1][:5] for p in _overlapping(ranges, width + 1, 2 * width - 1)] == ["00001"]
    ids = np.sort(read_table(d, "clients").query("registration_date < @as_of")["client_id"].to_numpy())
    (tmp_path / "work").mkdir()
    plan = prepare_factors(d, as_of, NAMES, ids, tmp_path / "work")
    assert any(k.startswith("messages") for k in plan.preaggregated)
    parts = [plan(d, as_of, NAMES, p) for p in np.array_split(ids, 4)]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True),
                                  factors.compute_factors(plain, as_of, NAMES, client_ids=ids), check_exact=True)
