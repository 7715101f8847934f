"""Bounded-memory campaign stages: factors by client-id partition, chunked checkpoints,
row-group scoring, the split without wide joins, the frozen table in row groups.

Each piece must give what the whole-table code gave: the same factor values, the same
checkpoint records (fingerprints included) and the same campaign.parquet bytes.
"""
from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import factors
from factors import partitioned
from factors.partitioned import client_clustered, prepare_factors
from tasks.campaign import run as run_module
from tasks.campaign import transforms
from tasks.campaign.checkpoints import CheckpointStore
from tasks.campaign.run import run_campaign
from tasks.campaign.stages import CHECKPOINTED, STAGES
from tasks.campaign.transforms import align_ids, build_campaign_table, partition_count
from tasks.core.errors import DataValidationError
from tasks.core.io import ChunkedFingerprint, atomic_write_parquet, frame_fingerprint, sha256_file
from tasks.core.layout import CampaignPaths, Layout
from tests.test_campaign import FEATURES, WORLD, build_world, campaign, link_root

NAMES = [*FEATURES, "message_send_count_90d", "message_click_count", "purchase_count_30d", "days_since_last_click"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale_world")
    build_world(root)
    return root


@pytest.fixture
def root(world, tmp_path):
    return link_root(world, tmp_path / "artifacts")


def _as_of(world):
    from tasks.data.tables import manifest_as_of, read_manifest

    d = world / "data" / WORLD
    return d, pd.Timestamp(manifest_as_of(d, read_manifest(d)))


def test_tables_ordered_by_client_are_told_apart(world):
    d, _ = _as_of(world)
    con = duckdb.connect()
    assert client_clustered(con, str(d / "purchases.parquet"))   # written client by client
    assert client_clustered(con, str(d / "clients.parquet"))
    # messages are written mailing by mailing: with small row groups each spans many clients
    pq.write_table(pq.read_table(d / "messages.parquet"), world / "messages_small_groups.parquet", row_group_size=500)
    assert not client_clustered(con, str(world / "messages_small_groups.parquet"))


@pytest.mark.parametrize("slice_clients", [1_000_000, 300])
def test_partitioned_factors_equal_one_query(world, tmp_path, monkeypatch, slice_clients):
    monkeypatch.setattr(partitioned, "SLICE_CLIENTS", slice_clients)
    src, as_of = _as_of(world)
    d = tmp_path / "world"  # messages in small row groups, each spanning many clients
    shutil.copytree(src, d)
    pq.write_table(pq.read_table(src / "messages.parquet"), d / "messages.parquet", row_group_size=500)
    ids = pd.read_parquet(d / "clients.parquet")["client_id"].to_numpy()
    ids = np.sort(ids[pd.read_parquet(d / "clients.parquet")["registration_date"] < as_of])[::2]
    whole = factors.compute_factors(d, as_of, NAMES, client_ids=ids)
    (tmp_path / "work").mkdir()
    plan = prepare_factors(d, as_of, NAMES, ids, tmp_path / "work")
    assert "messages_w0" in plan.preaggregated and "messages_w90" in plan.preaggregated
    assert not any(k.startswith("purchases") for k in plan.preaggregated)  # read by id range instead
    assert len(plan.preaggregated["messages_w0"]) == -(-len(ids) // slice_clients)  # one file per slice
    parts = [plan(d, as_of, NAMES, p) for p in np.array_split(ids, 7)]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole, check_exact=True)
    with pytest.raises(ValueError, match="prepared for"):
        plan(d, as_of, NAMES[:-1], ids[:5])


def test_partitioned_factors_check_the_request_once(world, tmp_path):
    d, as_of = _as_of(world)
    with pytest.raises(Exception, match="unknown|not in the clients table"):
        prepare_factors(d, as_of, NAMES, np.array([1, 2, 10**9]), tmp_path)


def test_chunked_fingerprint_and_checkpoint_equal_the_whole(tmp_path):
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"client_id": np.arange(1000, dtype="int64"), "score": rng.normal(size=1000),
                       "group": pd.array(rng.choice(["targeted", "control"], 1000), dtype="str"),
                       "flag": rng.integers(0, 2, 1000).astype("int8")})
    fp = ChunkedFingerprint()
    for chunk in np.array_split(np.arange(1000), 6):
        fp.update(df.iloc[chunk])
    assert fp.hexdigest() == frame_fingerprint(df) and fp.rows == 1000
    with pytest.raises(ValueError, match="differ"):
        fp.update(df.astype({"flag": "int64"}))

    a = CheckpointStore(CampaignPaths(tmp_path / "a"), CHECKPOINTED)
    b = CheckpointStore(CampaignPaths(tmp_path / "b"), CHECKPOINTED, parted=["split"])
    ra = a.write("split", "k", df, 1.0, {"x": 1})
    rb = b.write_chunks("split", "k", (df.iloc[i:i + 300] for i in range(0, 1000, 300)), 0.0, {"x": 1})
    assert (ra.fingerprint, ra.rows, ra.info) == (rb.fingerprint, rb.rows, rb.info)
    assert b.verify("split") is None and b.valid("split", "k") is not None
    assert [pq.ParquetFile(f).metadata.num_rows for f in b.files("split")] == [300, 300, 300, 100]
    pd.testing.assert_frame_equal(b.read("split"), a.read("split"))


def test_align_ids():
    keys = np.array([2, 5, 9, 11])
    assert align_ids(keys, np.array([9, 2, 11, 5])).tolist() == [2, 0, 3, 1]       # a permutation
    assert align_ids(keys, np.array([11, 5])).tolist() == [3, 1]
    assert align_ids(np.array([9, 2, 5]), np.array([5, 9]), sorted_=False).tolist() == [2, 0]
    with pytest.raises(DataValidationError, match="1 client id"):
        align_ids(keys, np.array([5, 6]))
    assert partition_count(10, 1, 3) == 4 and partition_count(10, 8, 100) == 8 and partition_count(0, 1) == 1


def test_many_partitions_give_the_same_campaign(root, monkeypatch):
    one = run_campaign(campaign(cid="one"), root)
    monkeypatch.setattr(transforms, "PARTITION_ROWS", 400)
    monkeypatch.setattr(run_module, "FROZEN_ROW_GROUP", 500)
    many = run_campaign(campaign(cid="many"), root)
    assert many.outcomes["factors"].info["partitions"] == partition_count(many.outcomes["subset"].rows, 1, 400) > 3
    factor_parts = sorted((many.folder / "stages" / "04_factors.parquet").glob("part-*.parquet"))
    assert len(factor_parts) == many.outcomes["factors"].info["partitions"]  # one part per partition
    assert [pq.ParquetFile(f).metadata.num_row_groups for f in factor_parts] == [1] * len(factor_parts)
    assert many.outcomes["score"].info["partitions"] == many.outcomes["factors"].info["partitions"]
    for s in CHECKPOINTED:
        assert one.manifest["stages"][s]["fingerprint"] == many.manifest["stages"][s]["fingerprint"], s
    assert one.manifest["balance"] == many.manifest["balance"]
    assert pq.ParquetFile(many.folder / "campaign.parquet").metadata.num_row_groups > 1
    ta, tb = (pd.read_parquet(r.folder / "campaign.parquet").drop(columns="campaign_id") for r in (one, many))
    pd.testing.assert_frame_equal(ta, tb)
    log = Layout(root).predictions / "campaign-many.parquet"
    assert pq.ParquetFile(log).metadata.num_rows == len(tb)


def test_frozen_table_is_the_one_write_of_the_whole_table(root, tmp_path):
    res = run_campaign(campaign(cid="bytes"), root)
    offers = CheckpointStore(CampaignPaths(res.folder), CHECKPOINTED).read("offer")
    expected = atomic_write_parquet(build_campaign_table(offers, res.manifest["model"]["version"], "bytes"),
                                    tmp_path / "whole.parquet")
    assert sha256_file(res.folder / "campaign.parquet") == sha256_file(expected)
    assert STAGES[-1] == "freeze"
