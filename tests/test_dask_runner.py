"""Scale-out: the factor and score stages on Dask (prefect-dask's DaskTaskRunner) give the
same campaign as the local runner.

A small synthetic world and a tiny real LightGBM uplift model in a real registry are built
once for the module (the campaign tests' helpers); the Dask runs go through the real Prefect
flow on a real LocalCluster with 2 worker processes.
"""
from __future__ import annotations

import socket
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.campaign.run import run_campaign
from tasks.campaign.stages import STAGES
from tasks.campaign.transforms import factor_partition
from tasks.core.errors import ConfigError
from tasks.core.io import read_json
from tasks.core.layout import Layout
from tasks.campaign.checkpoint_parts import PART_RECORD
from tasks.campaign.partitions import (
    PARTITION_DIR_PREFIX, ParquetArg, check_scheduler_reachable, load_arg, make_partition_dir,
    remove_partition_dirs, run_partition, scheduler_host_port, spill_args,
)
from tests.test_campaign import FEATURES, build_world, campaign, link_root

DASK = {"kind": "dask", "n_workers": 2, "threads_per_worker": 1, "partitions": 4}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dask_world")
    build_world(root, n_clients=2000)
    return root


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- partitioned Parquet


def test_spilled_arguments_round_trip_and_inputs_stay_untouched(tmp_path):
    frame = pd.DataFrame({"client_id": np.arange(5, dtype="int64"), "x": np.linspace(0, 1, 5)}, index=range(10, 15))
    before = frame.copy()
    ids = np.array([3, 1, 2], dtype="int64")
    folder = make_partition_dir(tmp_path)
    spilled = spill_args([(frame, "small", ids)], folder)
    assert isinstance(spilled[0][0], ParquetArg) and spilled[0][1] == "small" and isinstance(spilled[0][2], ParquetArg)
    pd.testing.assert_frame_equal(frame, before)
    pd.testing.assert_frame_equal(load_arg(spilled[0][0]), frame.reset_index(drop=True))
    got = load_arg(spilled[0][2])
    assert got.dtype == np.int64 and got.tolist() == [3, 1, 2]
    parts = tmp_path / "parts"
    parts.mkdir()
    part = run_partition(lambda f, s, i: f.assign(tag=s).iloc[i], spilled[0], parts, 0)
    assert (part.file, part.rows) == ("part-00000.parquet", 3)
    assert pd.read_parquet(parts / part.file)["tag"].tolist() == ["small"] * 3
    assert remove_partition_dirs(tmp_path) == [folder] and not folder.exists()


def test_partition_helpers_reject_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="only 1-D arrays"):
        spill_args([(np.zeros((2, 2)),)], tmp_path)
    with pytest.raises(ConfigError, match="returned list"):
        run_partition(lambda: [1], (), str(tmp_path), 0)
    for bad in ("http://host:8786", "tcp://host", "tcp://:8786"):
        with pytest.raises(ConfigError, match="runner.address"):
            scheduler_host_port(bad)
    assert scheduler_host_port("tcp://10.0.0.5:8786") == ("10.0.0.5", 8786)
    address = f"tcp://127.0.0.1:{closed_port()}"
    with pytest.raises(ConfigError, match=address):
        check_scheduler_reachable(address, timeout=2.0)


def test_factor_partition_through_parquet_equals_in_memory(world, tmp_path):
    from tasks.data.tables import read_manifest

    d = world / "data" / "tiny"
    as_of = pd.Timestamp(read_manifest(d)["as_of"])
    ids = np.arange(1, 300, 3, dtype="int64")
    args = [(None, d, as_of, ["age", "purchase_count_90d"], ids)]
    from tasks.campaign.run import _default_factor_fn

    args = [(_default_factor_fn, *a[1:]) for a in args]
    spilled = spill_args(args, tmp_path)
    part = run_partition(factor_partition, spilled[0], tmp_path, 0)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / part.file), factor_partition(*args[0]))


# --------------------------------------------------------------------------- the flow on Dask


def driver_reads(monkeypatch) -> list[tuple[str, int]]:
    """Record every Parquet read in this process (the driver; the Dask workers are other
    processes): the file read and how many columns came back."""
    import pyarrow.parquet as pq

    reads: list[tuple[str, int]] = []
    real_read_table, real_init = pq.read_table, pq.ParquetFile.__init__
    real_methods = {m: getattr(pq.ParquetFile, m) for m in ("read", "read_row_group", "read_row_groups")}

    def read_table(source, *a, **k):
        table = real_read_table(source, *a, **k)
        for src in source if isinstance(source, (list, tuple)) else [source]:
            reads.append((str(src), table.num_columns))
        return table

    def init(self, source, *a, **k):
        self._recorded_source = str(source)
        real_init(self, source, *a, **k)

    def wrap(method):
        def read(self, *a, **k):
            table = method(self, *a, **k)
            reads.append((getattr(self, "_recorded_source", "?"), table.num_columns))
            return table
        return read

    monkeypatch.setattr(pq, "read_table", read_table)
    monkeypatch.setattr(pq.ParquetFile, "__init__", init)
    for name, method in real_methods.items():
        monkeypatch.setattr(pq.ParquetFile, name, wrap(method))
    return reads


def test_dask_runner_in_the_prefect_flow_gives_the_local_campaign(world, tmp_path, prefect_env, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    from flows.campaign import campaign_flow
    from tasks.core.io import sha256_file

    local_root = link_root(world, tmp_path / "local")
    dask_root = link_root(world, tmp_path / "dask")
    local = run_campaign(campaign(cid="scale"), local_root, partitions=DASK["partitions"])
    reads = driver_reads(monkeypatch)
    out = campaign_flow(campaign=asdict(campaign(cid="scale")), artifacts=str(dask_root), runner=DASK)
    monkeypatch.undo()
    assert not out["noop"] and [v["status"] for v in out["stages"].values()] == ["computed"] * len(STAGES)

    dask_folder = Layout(dask_root).campaign("scale").folder
    assert sha256_file(local.folder / "campaign.parquet") == sha256_file(dask_folder / "campaign.parquet")
    # Every checkpoint has the same key and the same rows: validity does not depend on the runner.
    ma, mb = (read_json(Layout(r).campaign("scale").folder / "manifest.json") for r in (local_root, dask_root))
    for s in STAGES[:-1]:
        assert (ma["stages"][s]["key"], ma["stages"][s]["fingerprint"]) == \
               (mb["stages"][s]["key"], mb["stages"][s]["fingerprint"]), s
    # The factor and score checkpoints are folders of the same parts, written by the workers.
    for name in ("04_factors.parquet", "05_score.parquet"):
        parts = [[(p["file"], p["rows"], p["sha256"]) for p in read_json(f / "stages" / name / PART_RECORD)["parts"]]
                 for f in (local.folder, dask_folder)]
        assert parts[0] == parts[1] and len(parts[0]) == DASK["partitions"], name
    assert not list((dask_folder / "stages").glob(f"{PARTITION_DIR_PREFIX}*"))
    assert not list((dask_folder / "stages").glob(".*"))

    # The driver never read a partition's result whole: of the factor checkpoint (and of any
    # partition folder) it read at most two columns at a time (client ids, one balance factor).
    factor_reads = [(src, n) for src, n in reads if "04_factors.parquet" in src or PARTITION_DIR_PREFIX in src]
    assert factor_reads and max(n for _, n in factor_reads) <= 2, sorted(set(factor_reads))[:5]
    assert len(FEATURES) + 1 > 2  # a whole factor partition would be wider

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(task_run_filter=TaskRunFilter(
            name=TaskRunFilterName(like_="partition")))
    names = [r.name.rsplit("-", 1)[0] for r in runs if r.state and r.state.is_completed()]
    assert names.count("compute_factor_partition") >= 4 and names.count("score_partition") >= 4


def test_checkpoints_of_the_local_runner_are_reused_on_dask(world, tmp_path, prefect_env):
    from flows.campaign import campaign_flow

    root = link_root(world, tmp_path / "mixed")
    run_campaign(campaign(cid="mix"), root, until="score")
    out = campaign_flow(campaign=asdict(campaign(cid="mix")), artifacts=str(root), runner=DASK)
    status = {s: v["status"] for s, v in out["stages"].items()}
    assert [status[s] for s in STAGES[:5]] == ["reused"] * 5
    assert [status[s] for s in STAGES[5:]] == ["computed"] * 4


def test_unreachable_scheduler_address_fails_fast_naming_it(world, tmp_path, prefect_env):
    from flows.campaign import campaign_flow

    root = link_root(world, tmp_path / "unreachable")
    address = f"tcp://127.0.0.1:{closed_port()}"
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=f"runner.address {address}: no Dask scheduler reachable"):
        campaign_flow(campaign=asdict(campaign(cid="nowhere")), artifacts=str(root),
                      runner={**DASK, "address": address})
    assert time.monotonic() - t0 < 60  # a hang guard, not a speed figure
    assert not (Layout(root).campaign("nowhere").folder / "stages").exists()


def test_runner_address_uses_an_existing_cluster(world, tmp_path, prefect_env):
    from distributed import LocalCluster

    from flows.campaign import campaign_flow

    local = run_campaign(campaign(cid="remote"), link_root(world, tmp_path / "local"))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        out = campaign_flow(campaign=asdict(campaign(cid="remote")), artifacts=str(link_root(world, tmp_path / "dask")),
                            runner={**DASK, "partitions": 3, "address": cluster.scheduler_address})
    assert Path(out["folder"]).is_absolute()
    pd.testing.assert_frame_equal(pd.read_parquet(local.folder / "campaign.parquet"),
                                  pd.read_parquet(Path(out["folder"]) / "campaign.parquet"), check_exact=True)
