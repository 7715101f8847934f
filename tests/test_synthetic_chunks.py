"""The synthetic world generated in chunks: the same tables whatever the chunk size, and
the same as the world the generator wrote before it streamed (fingerprints recorded then)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tasks.core.config import SyntheticDataConfig, from_conf
from tasks.core.io import ParquetChunkWriter, frame_fingerprint, sha256_file
from tasks.data.synthetic.behaviour import iter_messages, simulate_messages
from tasks.data.synthetic.purchases import fork, iter_purchases, simulate_purchases, skip_draws, skip_float32
from tasks.data.synthetic.traits import simulate_traits
from tasks.data.synthetic.truth import simulate_campaign_history, simulate_truth
from tasks.data.synthetic.world import TABLES, generate_group, generate_world
from tasks.data.tables import table_path

# frame_fingerprint of every table of two small worlds, computed with the generator that
# built each table in one piece (before chunking); the chunked generator must match them.
BEFORE_CHUNKING = {
    (3000, 42, 0.0): {
        "clients": "046bce1dc5abb22974e671563dfd728c0015f2876a8d54451dcbb687a39588df",
        "purchases": "eff3dd247284c42f48585c09e597756be3e84dff8d7b4b69cff8b379c6b09e96",
        "messages": "02317b41d6d37d8b301dd7fb8f6dda29ba98e9d92e17bf86ecea2dafd08c1cd4",
        "campaign_history": "fa909472c29a596dacc0a2987f6f553e9b6da01770b3ffbc064eb075afcf8291",
        "truth": "32e909450ef9fb67af25694263586dfef5fa67bceac9a452099c08129fa1610d",
    },
    (2500, 7, 1.0): {
        "clients": "0d279ce27641cdfaf873a74c411b69add44c1df8557ac500a663097ec22734f9",
        "purchases": "684aa4c17cdd3786ea593db316e33bd75cdc3ee804727473e03791d7d958ae83",
        "messages": "88ad42ce257306aac0c4e2b69cd9723456f808a5334f2d80323a299593da5ccd",
        "campaign_history": "9af47e98907af87e605e2b9e19bfa10e8361de4704b1a27bbb6bba72c343e7b4",
        "truth": "c1fc437e4c275e7f5814aa2ae8515a73570535948d3ee6218950961dea0030fd",
    },
}


def _cfg(n: int, seed: int, shift: float) -> SyntheticDataConfig:
    return from_conf(SyntheticDataConfig, "data/synthetic", n_clients=n, seed=seed, shift=shift)


@pytest.mark.parametrize("key", sorted(BEFORE_CHUNKING))
def test_world_equals_the_one_built_in_one_piece(key):
    world = generate_world(_cfg(*key))
    for table, expected in BEFORE_CHUNKING[key].items():
        assert frame_fingerprint(world[table]) == expected, table


@pytest.fixture(scope="module")
def parts():
    cfg = _cfg(3000, 42, 0.0)
    traits = simulate_traits(cfg)
    history = simulate_campaign_history(cfg, traits, simulate_truth(cfg, traits))
    return cfg, traits, history


@pytest.mark.parametrize("chunk", [1, 7, 999, 3000, 10_000])
def test_purchases_do_not_depend_on_the_chunk_size(parts, chunk):
    cfg, traits, history = parts
    chunks = list(iter_purchases(cfg, traits, history, chunk_clients=chunk))
    assert len(chunks) == -(-3000 // chunk)
    whole = pd.concat(chunks, ignore_index=True)
    assert frame_fingerprint(whole) == BEFORE_CHUNKING[(3000, 42, 0.0)]["purchases"]
    # each chunk holds whole clients, in order, and transaction ids run on
    firsts = [c["client_id"].iloc[0] for c in chunks if len(c)]
    assert firsts == sorted(firsts)
    assert whole["transaction_id"].tolist() == list(range(1, len(whole) + 1))


def test_purchases_without_history_and_a_broken_chunk_size_differs(parts):
    """The fingerprint check can fail: leaving out the responders' purchases changes it."""
    cfg, traits, _ = parts
    without = simulate_purchases(cfg, traits, None, chunk_clients=500)
    assert frame_fingerprint(without) != BEFORE_CHUNKING[(3000, 42, 0.0)]["purchases"]
    assert without.equals(simulate_purchases(cfg, traits, None, chunk_clients=3000))


@pytest.mark.parametrize("batch_rows", [1, 5000, 10**9])
def test_messages_in_batches_equal_one_frame(parts, batch_rows):
    cfg, traits, _ = parts
    unsub: dict = {}
    frames = list(iter_messages(cfg, traits, unsub, batch_rows=batch_rows))
    whole, unsub_whole = simulate_messages(cfg, traits)
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), whole, check_exact=True)
    assert all(np.array_equal(unsub[ch], unsub_whole[ch]) for ch in unsub_whole)
    if batch_rows == 1:
        assert len(frames) > 10


@pytest.mark.parametrize("count", [0, 1, 2, 3, 10, 1001])
@pytest.mark.parametrize("buffered", [False, True])
def test_skip_float32_lands_where_drawing_does(count, buffered):
    drawn = np.random.default_rng(5)
    if buffered:
        drawn.random(1, dtype=np.float32)  # leaves half a 64-bit output in the state
    skipped = fork(drawn)
    drawn.random(count, dtype=np.float32)
    skip_float32(skipped, count)
    assert np.array_equal(drawn.random(9, dtype=np.float32), skipped.random(9, dtype=np.float32))
    assert np.array_equal(drawn.random(3), skipped.random(3))


@pytest.mark.parametrize("draw", ["exponential", "normal"])
def test_skip_draws_lands_where_one_call_does(draw):
    one = np.random.default_rng(3)
    pieces = fork(one)
    getattr(one, f"standard_{draw}")(12_345)
    skip_draws(pieces, draw, 12_345)
    assert np.array_equal(one.random(5), pieces.random(5))


def test_written_tables_equal_generated_ones_in_row_groups(tmp_path, monkeypatch):
    import tasks.data.synthetic.world as world_mod

    monkeypatch.setattr(world_mod, "_ROW_GROUP", 10_000)
    cfg = _cfg(2000, 3, 0.0)
    tables = generate_world(cfg)
    for group in ("purchases", "contacts"):
        generate_group(group, cfg, tmp_path, chunk_clients=333)
    for name in TABLES:
        path = table_path(tmp_path, name)
        pd.testing.assert_frame_equal(pd.read_parquet(path), tables[name], check_exact=True)
        meta = pq.ParquetFile(path).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        assert all(s == 10_000 for s in sizes[:-1]) and 0 < sizes[-1] <= 10_000, (name, sizes)


@pytest.mark.parametrize("cuts", [[0, 2500], [0, 1, 999, 1000, 1001, 2500], list(range(0, 2501, 7)) + [2500]])
def test_chunk_writer_writes_the_file_to_parquet_writes(tmp_path, cuts):
    df = pd.DataFrame({
        "id": np.arange(2500, dtype=np.int64),
        "x": np.linspace(0, 1, 2500),
        "c": pd.Categorical.from_codes(np.arange(2500) % 3, categories=["a", "b", "c"]),
        "when": pd.date_range("2024-01-01", periods=2500, freq="h").astype("datetime64[us]"),
    })
    whole = tmp_path / "whole.parquet"
    df.to_parquet(whole, index=False, engine="pyarrow", row_group_size=1000)
    chunked = tmp_path / "chunked.parquet"
    with ParquetChunkWriter(chunked, 1000) as writer:
        for a, b in zip(cuts[:-1], cuts[1:]):
            writer.write(df.iloc[a:b])
    assert writer.rows == 2500
    pd.testing.assert_frame_equal(pd.read_parquet(chunked), df, check_exact=True)
    assert sha256_file(chunked) == sha256_file(whole)


def test_chunk_writer_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "t.parquet"
    with pytest.raises(RuntimeError):
        with ParquetChunkWriter(target, 10) as writer:
            writer.write(pd.DataFrame({"a": np.arange(25)}))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="differs"):
        with ParquetChunkWriter(target, 10) as writer:
            writer.write(pd.DataFrame({"a": np.arange(5)}))
            writer.write(pd.DataFrame({"a": np.arange(5.0)}))
    assert list(tmp_path.iterdir()) == []
