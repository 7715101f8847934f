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
from tasks.campaign.partitions import (
    PARTITION_DIR_PREFIX, ParquetArg, check_scheduler_reachable, load_arg, make_partition_dir, output_paths,
    read_partition_results, remove_partition_dirs, run_partition, scheduler_host_port, spill_args,
)
from tests.test_campaign import build_world, campaign, link_root

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
    out = run_partition(lambda f, s, i: f.assign(tag=s).iloc[i], spilled[0], output_paths(folder, 1)[0])
    assert list(read_partition_results([out]))[0]["tag"].tolist() == ["small"] * 3
    assert remove_partition_dirs(tmp_path) == [folder] and not folder.exists()


def test_partition_helpers_reject_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="only 1-D arrays"):
        spill_args([(np.zeros((2, 2)),)], tmp_path)
    with pytest.raises(ConfigError, match="returned list"):
        run_partition(lambda: [1], (), str(tmp_path / "out.parquet"))
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
    path = run_partition(factor_partition, spilled[0], output_paths(tmp_path, 1)[0])
    pd.testing.assert_frame_equal(next(read_partition_results([path])), factor_partition(*args[0]))


# --------------------------------------------------------------------------- the flow on Dask


def test_dask_runner_in_the_prefect_flow_gives_the_local_campaign(world, tmp_path, prefect_env):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    from flows.campaign import campaign_flow

    local_root = link_root(world, tmp_path / "local")
    dask_root = link_root(world, tmp_path / "dask")
    local = run_campaign(campaign(cid="scale"), local_root)
    out = campaign_flow(campaign=asdict(campaign(cid="scale")), artifacts=str(dask_root), runner=DASK)
    assert not out["noop"] and [v["status"] for v in out["stages"].values()] == ["computed"] * len(STAGES)

    a = pd.read_parquet(local.folder / "campaign.parquet")
    b = pd.read_parquet(Layout(dask_root).campaign("scale").folder / "campaign.parquet")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # Every checkpoint has the same key and the same rows: validity does not depend on the runner.
    ma, mb = (read_json(Layout(r).campaign("scale").folder / "manifest.json") for r in (local_root, dask_root))
    for s in STAGES[:-1]:
        assert (ma["stages"][s]["key"], ma["stages"][s]["fingerprint"]) == \
               (mb["stages"][s]["key"], mb["stages"][s]["fingerprint"]), s
    assert not list((Layout(dask_root).campaign("scale").folder / "stages").glob(f"{PARTITION_DIR_PREFIX}*"))

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
