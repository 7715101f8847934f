"""Calculate a campaign: ``python -m flows.campaign campaign=<name> [campaign.<key>=<value> ...]``.

Runs the stages of :data:`tasks.campaign.stages.STAGE_TABLE` as Prefect tasks (one per
stage, named by the table, each publishing its summary as a Markdown artifact), resuming
from the first stage whose checkpoint is no longer valid. Examples::

    python -m flows.campaign campaign=spring_sale
    python -m flows.campaign campaign=spring_sale campaign.sample_fraction=0.2
    python -m flows.campaign conf=path/to/my_campaign.yaml campaign.seed=7

``conf=<file>`` takes the campaign from a YAML file outside conf/ (same keys as
conf/campaign/*.yaml); ``campaign.*`` overrides then apply to that file's values. Other
Hydra overrides (``paths.artifacts=...``, ``runner.partitions=4``) work as usual.

``runner=dask`` runs the factor and score stages' partitions as Prefect tasks on a Dask
cluster through prefect-dask's DaskTaskRunner (``runner.address=tcp://host:8786``, or a
LocalCluster of ``runner.n_workers`` processes when no address is given), with partition
inputs in Parquet files and each result written by its worker as a part of the stage's
checkpoint folder (the driver never reads a result back); see docs/scale_out.md. The campaign
is the same.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows._cli import run_cli
from flows._progress import heartbeat, progress_mapper
from tasks.campaign.catalog import render_stage_outcomes
from tasks.campaign.config import CampaignConfig, available_campaigns, campaign_config_hash, resolve_campaign_config
from tasks.campaign.partitions import (
    check_scheduler_reachable, make_partition_dir, remove_partition_dirs, run_partition, spill_args,
)
from tasks.campaign.checkpoint_parts import Part
from tasks.campaign.client_table import uses_client_table
from tasks.campaign.run import CampaignRun
from tasks.campaign.stages import STAGE_TABLE, STAGES, Mapper, StageOutcome
from tasks.campaign.summary import stage_summary
from tasks.core.config import CONF_DIR, RunnerConfig, from_conf, to_dataclass
from tasks.core.errors import ConfigError
from tasks.core.layout import Layout


def artifact_key(campaign_id: str, stage: str) -> str:
    """Prefect artifact key of a stage summary (lowercase letters, digits and dashes)."""
    return re.sub(r"[^a-z0-9-]+", "-", f"campaign-{campaign_id}-{stage}".lower()).strip("-")


def _run_stage(run: CampaignRun, stage: str) -> dict:
    log = get_run_logger()
    with heartbeat(log.info, f"stage {stage}"):
        outcome: StageOutcome = run.run_stage(stage)
    log.info("stage %s: %s, %s rows, %.2f s", stage, outcome.status, f"{outcome.rows:,}", outcome.seconds)
    create_markdown_artifact(key=artifact_key(run.cfg.id, stage), markdown=stage_summary(outcome),
                             description=f"campaign {run.cfg.id}: stage {stage}")
    return {"stage": stage, "status": outcome.status, "rows": outcome.rows, "seconds": round(outcome.seconds, 3)}


# Checkpoints on disk decide what is reused, not Prefect's result cache.
STAGE_TASKS = {s.name: task(name=s.task, cache_policy=NO_CACHE, persist_result=False)(_run_stage) for s in STAGE_TABLE}


PARTITION_TASK_NAMES = {"factor_partition": "compute_factor_partition", "table_partition": "compute_factor_partition",
                        "score_partition": "score_partition"}


def dask_task_runner(runner: RunnerConfig) -> Any:
    """prefect-dask's DaskTaskRunner for ``runner``: the cluster at ``runner.address``, or a
    LocalCluster of ``runner.n_workers`` worker processes when no address is given."""
    from prefect_dask import DaskTaskRunner

    if runner.address:
        return DaskTaskRunner(address=runner.address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": int(runner.n_workers), "threads_per_worker": int(runner.threads_per_worker),
                        "processes": True, "dashboard_address": None},
    )


def _submit_partitions(fn: Any, spilled: list[tuple], folder: str) -> list[Part]:
    """Submit one Prefect task per partition to the flow's task runner, each writing its result
    as its part of the part folder ``folder``; the parts' facts in partition order."""
    name = PARTITION_TASK_NAMES.get(getattr(fn, "__name__", ""), getattr(fn, "__name__", "partition"))
    part_task = task(name=name, cache_policy=NO_CACHE, persist_result=False)(run_partition)
    futures = [part_task.submit(fn, a, folder, i) for i, a in enumerate(spilled)]
    return [f.result() for f in futures]


def dask_mapper(runner: RunnerConfig, work_root: str | Path) -> Mapper:
    """A mapper running each partition as a Prefect task on Dask (a subflow with a DaskTaskRunner).

    Each call writes the partitions' frames and client ids as Parquet under a fresh folder
    in ``work_root`` (a row group of a stage checkpoint is passed as its path and read by the
    worker), runs the partition tasks in a subflow ``map-<task name>``, each worker writing its
    result as its part of the stage's part folder ``parts`` (the workers must be able to read
    and write both), yields the parts' small facts in order and removes the input folder. No
    result's rows come back to this process.
    """
    task_runner = dask_task_runner(runner)

    def mapper(fn: Any, args: list[tuple], parts: Path) -> Iterator[Part]:
        name = PARTITION_TASK_NAMES.get(getattr(fn, "__name__", ""), "partitions")
        folder = make_partition_dir(work_root)
        try:
            spilled = spill_args(args, folder)

            def map_partitions() -> list[Part]:
                return _submit_partitions(fn, spilled, str(parts))

            sub = flow(name=f"map-{name.replace('_', '-')}", task_runner=task_runner, persist_result=False,
                       log_prints=False)(map_partitions)
            yield from sub()
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return mapper


@contextmanager
def partition_mapper(runner: RunnerConfig, work_root: str | Path | None = None) -> Iterator[Mapper | None]:
    """How the factor and score stages map their per-partition functions.

    ``local``: in this process, one partition after another (None = the default).
    ``dask``: each partition is a Prefect task run by prefect-dask's DaskTaskRunner, on the
    cluster at ``runner.address`` (checked first: an unreachable address fails at once) or
    on a LocalCluster of ``runner.n_workers`` processes when no address is given. Partition
    inputs and results go through Parquet files under ``work_root`` (default: a temporary
    folder, fine for a LocalCluster; a remote cluster needs a folder its workers share).
    Results are identical to the local runner's.
    """
    if runner.kind == "local":
        yield None
        return
    if runner.kind != "dask":
        raise ConfigError(f"runner.kind {runner.kind!r} is unknown; use local or dask")
    if runner.n_workers < 1 or runner.threads_per_worker < 1:
        raise ConfigError(f"runner.n_workers ({runner.n_workers}) and runner.threads_per_worker "
                          f"({runner.threads_per_worker}) must be at least 1")
    if runner.address:
        check_scheduler_reachable(runner.address)
    if work_root is None:
        with tempfile.TemporaryDirectory(prefix="campaign-partitions-") as tmp:
            yield dask_mapper(runner, tmp)
    else:
        yield dask_mapper(runner, work_root)


# The run whose inputs the command line checked before the flow (the model loaded and its
# checksum verified, a client table hashed, its column types found and its ids read), handed to
# the flow's run in this process so none of it is done a second time.
_checked_runs: dict[tuple[str, str], CampaignRun] = {}


def _checked_key(artifacts: str, cfg: CampaignConfig) -> tuple[str, str]:
    return str(Path(artifacts).resolve()), campaign_config_hash(cfg)


@flow(name="campaign")
def campaign_flow(campaign: dict, artifacts: str = "artifacts", runner: dict | None = None) -> dict:
    """Calculate (or resume) the campaign described by the ``campaign`` config dict.

    Returns a small dict: campaign id, folder, whether the run was a no-op (frozen with the
    same config), and each stage's status (reused | computed), rows and seconds.
    """
    cfg = to_dataclass(campaign, CampaignConfig, "campaign")
    runner_cfg = from_conf(RunnerConfig, "runner/local", **(runner or {}))
    log = get_run_logger()
    if runner_cfg.kind == "dask" and runner_cfg.address:
        # Workers of a remote cluster have their own working directory: give them absolute paths.
        artifacts = str(Path(artifacts).resolve())
    stage_dir = Layout(artifacts).campaign(cfg.id).stage_dir
    with partition_mapper(runner_cfg, stage_dir) as mapper:
        run = CampaignRun(cfg, artifacts, partitions=runner_cfg.partitions,
                          checked=_checked_runs.pop(_checked_key(artifacts, cfg), None),
                          mapper=progress_mapper(mapper, lambda msg: get_run_logger().info(msg)))
        if run.check_frozen() is None:
            run.check_inputs()  # before the lock creates the campaign folder
        with run.lock:
            if run.check_frozen() is not None:
                log.info("campaign %s is already frozen with this config: nothing to do", cfg.id)
                return {"campaign_id": cfg.id, "folder": str(run.folder), "noop": True, "stages": {}}
            run.store.remove_partial_files()
            remove_partition_dirs(run.store.stage_dir)
            stages = {s: STAGE_TASKS[s](run, s) for s in STAGES}
    manifest = run.frozen_manifest() or {}
    counts = manifest.get("counts", {})
    log.info("campaign %s frozen: %s clients, %s offers", cfg.id,
             f"{counts.get('clients', 0):,}", f"{counts.get('offers_total', 0):,}")
    return {"campaign_id": cfg.id, "folder": str(run.folder), "noop": False, "stages": stages}


def split_argv(argv: list[str], conf_dir: Path = CONF_DIR) -> tuple[str | None, list[str], list[str], str | None]:
    """Separate what Hydra must not see from the command line.

    Returns ``(conf_path, campaign_overrides, hydra_argv, unknown_campaign)``: with
    ``conf=<file>``, the ``campaign.*`` overrides are kept back to be applied to that file;
    ``campaign=<name>`` naming no file in conf/campaign/ is kept back to be reported as a
    clear error instead of Hydra's.
    """
    conf_path = None
    unknown = None
    held: list[str] = []
    rest: list[str] = []
    for arg in argv:
        if arg.startswith("conf="):
            conf_path = arg.split("=", 1)[1]
        elif arg.startswith("campaign=") and arg.split("=", 1)[1] not in available_campaigns(conf_dir):
            unknown = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if conf_path is not None:
        keep = []
        for arg in rest:
            bare = arg.lstrip("+~")
            (held if bare.startswith("campaign.") else keep).append(arg)
        rest = keep
    return conf_path, held, rest, unknown


def resolve_campaign(cfg: DictConfig, conf_path: str | None, overrides: list[str],
                     unknown: str | None) -> tuple[dict[str, Any], CampaignConfig]:
    """The campaign to run from the composed config or a ``conf=`` file (see :func:`split_argv`):
    :func:`tasks.campaign.config.resolve_campaign_config` of ``cfg.campaign``."""
    return resolve_campaign_config(None if conf_path else cfg.campaign, conf_path, overrides, unknown)


def _body(cfg: DictConfig, conf_path: str | None, overrides: list[str], unknown: str | None) -> dict[str, Any]:
    # Bad settings, frozen campaigns (verified) and the inputs (dataset, model and its checksum,
    # factors) are settled here, before an orchestrator run starts and before anything is
    # written (a frozen campaign never changes, so this read needs no lock).
    campaign, cc = resolve_campaign(cfg, conf_path, overrides, unknown)
    probe = CampaignRun(cc, str(cfg.paths.artifacts))
    frozen = probe.check_frozen()
    if frozen is not None:
        folder = probe.folder
        print(f"campaign {cc.id}: already frozen with this config, nothing to do ({folder})")
        note = probe.frozen_note(frozen)
        if note:
            print(f"  {note}")
        return {"campaign_id": cc.id, "folder": str(folder), "noop": True, "stages": {}, "note": note}
    if uses_client_table(cc):  # a table of millions takes a while to hash and read: say what runs
        path = Path(str(cc.client_table.path)).expanduser()
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else (
            path.stat().st_size if path.exists() else 0)
        print(f"campaign {cc.id}: checking the client table {path} ({size / 2**20:,.0f} MiB): its hash, "
              "column types and ids", flush=True)
    probe.check_inputs()
    probe.model()
    key = _checked_key(str(cfg.paths.artifacts), cc)
    _checked_runs[key] = probe
    try:
        result = campaign_flow(
            campaign=campaign,
            artifacts=str(cfg.paths.artifacts),
            runner=OmegaConf.to_container(cfg.runner, resolve=True),
        )
    finally:
        _checked_runs.pop(key, None)
    if result["noop"]:
        print(f"campaign {result['campaign_id']}: already frozen with this config, nothing to do ({result['folder']})")
    else:
        done = ", ".join(f"{s} {v['status']}" for s, v in result["stages"].items())
        print(f"campaign {result['campaign_id']} frozen in {result['folder']}: {done}")
        print("\n".join("  " + line for line in render_stage_outcomes(result["stages"])))
        print(f"  see it with: python -m flows.campaigns show campaign_id={result['campaign_id']}")
    return result


def main() -> None:
    """Command-line entry point (see the module docstring)."""
    conf_path, overrides, rest, unknown = split_argv(sys.argv[1:])
    sys.argv = [sys.argv[0], *rest]
    # Prefect's ephemeral server gets 20 s to start by default, too little on a busy machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    run_cli(lambda cfg: _body(cfg, conf_path, overrides, unknown))


if __name__ == "__main__":
    main()
