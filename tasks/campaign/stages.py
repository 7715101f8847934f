"""The campaign's stages, declared once: :data:`STAGE_TABLE`.

Each entry names the stage, the Prefect task that runs it (built from this table in
:mod:`flows.campaign`), the stages whose checkpoints it reads, the config slice (and extra
identity) that keys its checkpoint, and its compute function. :class:`tasks.campaign.run.
CampaignRun` runs the table in order; the stage's checkpoint is
``stages/NN_<name>.parquet`` with NN its position (:func:`stage_checkpoint`): a file, or for
the stages computed partition by partition (``parted``: factors, score) a folder of one part
file per partition, written where the partition is computed (:mod:`tasks.campaign.
checkpoint_parts`), so no process gathers the factor table. Adding a stage is one entry.

A checkpoint's key is :func:`tasks.campaign.checkpoints.stage_key` of the stage name, its
config slice, the fingerprint of its first input (the stage before it) and its extra
identity (the model for ``score``, the factor checkpoint for ``split``).

1. ``client_base``  every client registered before the campaign date (or every row of the
                    campaign's client table: :mod:`tasks.campaign.client_table`);
2. ``filters``      the campaign's base filters, in order, with removals per filter;
3. ``subset``       an optional seeded random subset (a fraction or a count);
4. ``factors``      the model's features as of the campaign date, computed per partition
                    (or made from the client table's columns);
5. ``score``        the model's score per partition;
6. ``sort``         descending score with rank (1 = best) and percentile;
7. ``split``        a seeded three-way random split independent of the score, with a
                    balance check (standardised mean differences, sample-ratio test);
8. ``offer``        the threshold policy decides who in the targeted group gets the offer;
9. ``freeze``       campaign.parquet, manifest.json, summary.md and the prediction log
                    (no checkpoint: the frozen files are the output).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from tasks.campaign.checkpoint_parts import Part, StagedParts
from tasks.campaign.checkpoints import CheckpointStore
from tasks.campaign.partitions import make_partition_dir, row_group_args
from tasks.campaign.client_table import (
    ClientTable, base_columns, check_filter_columns, feature_sources, missing_features, missing_features_error,
    table_partition, write_partition_files,
)
from tasks.campaign.config import GROUPS, CampaignConfig, group_shares, nondefault_balance
from tasks.campaign.eligible import filter_base, filter_registered, read_registered_base
from tasks.campaign.policy import assign_offers, policy_params
from tasks.campaign.transforms import (
    FactorFn, align_ids, assign_groups, derive_seed, draw_subset, factor_partition,
    missing_model_features, partition_count, partition_ids, rank_scores, score_partition,
)
from tasks.core.errors import ConfigError
from tasks.core.layout import CampaignPaths

# maps a per-partition function over argument tuples, writing partition i's frame as part i
# of the given part folder where it is computed; yields the parts' facts in partition order
Mapper = Callable[[Callable[..., pd.DataFrame], list[tuple], Path], Iterable[Part]]


class StageContext(Protocol):
    """What a stage's key and compute functions use of the run (:class:`~tasks.campaign.run.CampaignRun`)."""

    cfg: CampaignConfig
    store: CheckpointStore
    partitions: int
    factor_fn: FactorFn
    default_factors: bool
    known_factors: Callable[[], set[str] | None]
    mapper: Mapper

    def data(self) -> dict: ...
    def client_table(self) -> ClientTable: ...
    def model(self) -> Any: ...
    def model_identity(self) -> dict: ...
    def factor_names(self) -> list[str]: ...
    def balance_columns(self) -> list[str]: ...
    def fingerprint(self, stage: str) -> str | None: ...
    def freeze(self) -> StageOutcome: ...


@dataclass
class StageOutcome:
    """What a stage did: reused its checkpoint or computed it; small, for logs and Prefect."""

    stage: str
    status: str
    rows: int
    seconds: float
    key: str
    info: dict = field(default_factory=dict)


KeyFn = Callable[[StageContext], tuple[Any, Any]]
ComputeFn = Callable[[StageContext], Any]


@dataclass(frozen=True)
class Stage:
    """One stage of the campaign.

    ``inputs``: the stages whose checkpoints it reads, the stage before it first (its
    fingerprint keys this stage's checkpoint). ``key``: ``(config slice, extra)`` of the
    checkpoint key; None for a stage without checkpoint. ``compute``: ``(frame, info)`` to
    commit as the checkpoint, for a ``parted`` stage ``(StagedParts, info)`` (for a stage
    without checkpoint: its outcome).
    """

    name: str
    task: str
    inputs: tuple[str, ...]
    key: KeyFn | None
    compute: ComputeFn
    parted: bool = False

    @property
    def checkpointed(self) -> bool:
        return self.key is not None


# --------------------------------------------------------------------------- keys
# A client table's stages are keyed on its content hash (and how it is read), not on its
# path or date: the features are in the table, so the same bytes give the same campaign.
def _data_slice(ctx: StageContext, **slice_: Any) -> dict:
    d = ctx.data()
    if d.get("kind") == "table":
        return {**slice_, "table_sha256": d["hash"]}
    return {**slice_, "data_hash": d["hash"], "date": str(d["date"])}


def _key_client_base(ctx: StageContext) -> tuple[Any, Any]:
    d = ctx.data()
    if d.get("kind") == "table":
        return {"client_table": {"sha256": d["hash"], "id_column": d["id_column"], "sep": d["sep"]}}, None
    return {"data": d["name"], "data_hash": d["hash"], "date": str(d["date"])}, None


def _key_filters(ctx: StageContext) -> tuple[Any, Any]:
    return _data_slice(ctx, filters=[asdict(f) for f in ctx.cfg.filters]), None


def _key_subset(ctx: StageContext) -> tuple[Any, Any]:
    cfg = ctx.cfg
    return {"fraction": cfg.sample_fraction, "size": cfg.sample_size, "seed": cfg.seed}, None


def _key_factors(ctx: StageContext) -> tuple[Any, Any]:
    d = ctx.data()
    if d.get("kind") == "table":
        return _data_slice(ctx, factors=ctx.factor_names(), categorical=d["categorical"]), None
    return _data_slice(ctx, factors=ctx.factor_names()), None


def _key_score(ctx: StageContext) -> tuple[Any, Any]:
    return {}, ctx.model_identity()


def _key_sort(ctx: StageContext) -> tuple[Any, Any]:
    return {}, None


def _key_split(ctx: StageContext) -> tuple[Any, Any]:
    cfg = ctx.cfg
    slice_: dict[str, Any] = {"groups": group_shares(cfg), "seed": cfg.seed, "balance_factors": ctx.balance_columns()}
    balance = nondefault_balance(cfg)
    if balance is not None:  # the default limits stay out, so checkpoints made before them stay valid
        slice_["balance"] = balance
    return slice_, {"factors": ctx.fingerprint("factors")}


def _key_offer(ctx: StageContext) -> tuple[Any, Any]:
    p = ctx.cfg.policy
    return {"policy": {"kind": p.kind, **policy_params(p)}}, None


# --------------------------------------------------------------------------- compute
def _client_base(ctx: StageContext) -> tuple[pd.DataFrame, dict]:
    d = ctx.data()
    if d.get("kind") == "table":
        # the ids and the columns the filters compare; the factor stage reads its own columns
        table = ctx.client_table()
        base = table.rows(base_columns(ctx.cfg.filters, table.columns()))
        return base, {"client_table": str(d["path"]), "columns": len(table.columns()) - 1}
    # the ids only: the filters read the few clients columns they compare themselves
    base, total = read_registered_base(d["dir"], d["date"])
    return base, {"registered_later": int(total - len(base))}


def _filters(ctx: StageContext) -> tuple[pd.DataFrame, dict]:
    cfg = ctx.cfg
    d = ctx.data()
    if d.get("kind") != "table":
        # only the ids of the base (a checkpoint written before the base was narrow holds every
        # clients column: they are not read)
        ids = ctx.store.read("client_base", columns=["client_id"])["client_id"].to_numpy()
        kept, report = filter_registered(ids, cfg.filters, d["dir"], d["date"], ctx.factor_fn, ctx.known_factors())
        return kept, {"filters": report}
    base = ctx.store.read("client_base")
    needed = [f.column for f in cfg.filters if f.column not in base.columns]
    if needed:
        check_filter_columns(cfg.filters, list(base.columns))
    kept, report = filter_base(base, cfg.filters, d.get("dir"), d.get("date"), ctx.factor_fn,
                               ctx.known_factors() if needed else None)
    return kept, {"filters": report}


def _subset(ctx: StageContext) -> tuple[pd.DataFrame, dict]:
    cfg = ctx.cfg
    ids = ctx.store.read("filters", columns=["client_id"])["client_id"].to_numpy()
    chosen = draw_subset(ids, cfg.sample_fraction, cfg.sample_size, derive_seed(cfg.seed, "subset"))
    rule = ("none" if cfg.sample_fraction is None and cfg.sample_size is None else
            f"fraction {cfg.sample_fraction}" if cfg.sample_fraction is not None else f"size {cfg.sample_size}")
    return pd.DataFrame({"client_id": chosen}), {"before": int(len(ids)), "kept": int(len(chosen)), "rule": rule}


def check_factors_known(ctx: StageContext) -> list[str]:
    """The factors the factor stage computes; :class:`ConfigError` when the library lacks one
    (a client table's columns are checked when the table is read)."""
    names = ctx.factor_names()
    if ctx.data().get("kind") == "table":
        return names
    known = ctx.known_factors()
    unknown = [f for f in names if known is not None and f not in known]
    if unknown:
        m = ctx.model()
        raise ConfigError(
            f"model {m.name} {m.version} needs feature(s) {unknown} that the factor library cannot "
            f"supply; retrain the model on available factors or add the factors")
    return names


def input_tables(ctx: StageContext) -> list[str]:
    """The dataset's tables the stages read: clients, and the source tables of the factors the
    model and the filters ask for (as far as the factor library declares them)."""
    from factors.registry import all_factors, resolve

    library = all_factors()
    names = [*ctx.factor_names(), *(f.column for f in ctx.cfg.filters)]
    tables = {f.table for f in resolve([n for n in dict.fromkeys(names) if n in library]) if f.table}
    return ["clients", *sorted(tables - {"clients"})]


def _table_factors(ctx: StageContext, names: list[str]) -> tuple[StagedParts, dict]:
    """The features made from the client table, partition by partition: one pass over the table
    in batches writes each partition's rows (only the columns that make features) to its own
    file in a partition folder removed at the end; each partition is made from its file."""
    d = ctx.data()
    table = ctx.client_table()
    dtypes = table.dtypes()
    missing = missing_features(dtypes, names, d["categorical"])
    if missing:
        raise missing_features_error(ctx.model(), missing, list(dtypes), d["path"])
    ids = ctx.store.read("subset")["client_id"].to_numpy()
    parts = partition_ids(ids, partition_count(len(ids), ctx.partitions))
    folder = make_partition_dir(ctx.store.stage_dir)
    try:
        t0 = time.perf_counter()
        files = write_partition_files(table, feature_sources(dtypes, names, d["categorical"]), parts, folder)
        routed = round(time.perf_counter() - t0, 3)
        staged = _map_to_parts(ctx, "factors", table_partition, [(names, d["categorical"], str(f)) for f in files])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return staged, {"factors": names, "partitions": len(files), "source": "client_table", "prepare_seconds": routed}


def _map_to_parts(ctx: StageContext, stage_name: str, fn: Callable[..., pd.DataFrame], args: list[tuple],
                  on_done: Callable[[], None] | None = None) -> StagedParts:
    """``fn`` over ``args`` through the run's mapper, each result written as its part of a
    fresh part folder of ``stage_name`` (where it is computed); the folder and the parts'
    facts for the store to seal; ``on_done`` is called as each part is back. The folder is
    removed when a partition fails."""
    folder = ctx.store.begin(stage_name)
    parts: list[Part] = []
    try:
        for part in ctx.mapper(fn, args, folder):
            parts.append(part)
            if on_done is not None:
                on_done()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return StagedParts(folder, tuple(parts))


def _factors(ctx: StageContext) -> tuple[StagedParts, dict]:
    names = check_factors_known(ctx)
    d = ctx.data()
    if d.get("kind") == "table":
        return _table_factors(ctx, names)
    ids = ctx.store.read("subset")["client_id"].to_numpy()
    parts = partition_ids(ids, partition_count(len(ids), ctx.partitions))
    info: dict[str, Any] = {"factors": names, "partitions": len(parts)}
    return _factor_parts(ctx, names, ids, parts, info), info


def _factor_parts(ctx: StageContext, names: list[str], ids: np.ndarray, parts: list[np.ndarray],
                  info: dict[str, Any]) -> StagedParts:
    """The factor partitions, each written as its part where it is computed. With the factor
    engine, the request is checked once and the tables not ordered by client aggregated once
    (:func:`factors.partitioned.prepare_factors`) in a partition folder removed at the end.
    Adds the seconds of that preparation and of the partitions (slowest, total) to ``info``."""
    from factors.partitioned import prepare_factors

    d = ctx.data()
    folder = make_partition_dir(ctx.store.stage_dir)
    try:
        fn = ctx.factor_fn
        t0 = time.perf_counter()
        if ctx.default_factors:
            fn = prepare_factors(d["dir"], d["date"], names, ids, folder, aggregate_once=len(parts) > 1)
            info["aggregated_once"] = sorted(fn.preaggregated)
        info["prepare_seconds"] = round(time.perf_counter() - t0, 3)
        seconds: list[float] = []
        t0 = time.perf_counter()

        def each_done() -> None:
            nonlocal t0
            seconds.append(time.perf_counter() - t0)
            t0 = time.perf_counter()

        staged = _map_to_parts(ctx, "factors", factor_partition, [(fn, d["dir"], d["date"], names, part) for part in parts],
                               each_done)
        info["partition_seconds"] = {"total": round(sum(seconds), 3), "slowest": round(max(seconds, default=0), 3)}
        return staged
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _score(ctx: StageContext) -> tuple[StagedParts, dict]:
    m = ctx.model()
    files = ctx.store.files("factors")
    columns = pq.read_schema(files[0]).names
    missing = missing_model_features(m.features, columns)
    if missing:
        raise ConfigError(
            f"model {m.name} {m.version} needs feature(s) {missing} that the factor stage did not supply "
            f"(it has {list(columns)[1:12]}...)")
    # one row group of a factor part (one factor partition) in memory at a time, where it is scored
    parts = row_group_args(files, ["client_id", *dict.fromkeys(m.features)])
    staged = _map_to_parts(ctx, "score", score_partition, [(m, p) for p in parts])
    return staged, {"model": ctx.model_identity(), "partitions": len(parts)}


def _sort(ctx: StageContext) -> tuple[pd.DataFrame, dict]:
    return rank_scores(ctx.store.read("score")), {}


def _split(ctx: StageContext) -> tuple[pd.DataFrame, dict]:
    # Imported here: the balance statistics load scipy.stats (a second), and the scoring API
    # imports this table only to find the factor checkpoint.
    from tasks.campaign.balance import balance_check_columns

    cfg = ctx.cfg
    ranked = ctx.store.read("sort")
    ranked_ids = ranked["client_id"].to_numpy()
    assigned = assign_groups(ranked_ids, cfg.groups, derive_seed(cfg.seed, "split"))
    by_id = align_ids(assigned["client_id"].to_numpy(), ranked_ids)  # assigned is sorted by client
    split = ranked.assign(group=assigned["group"].array.take(by_id))
    cols = [c for c in ctx.balance_columns() if c != "score"]
    # The balance factors one column at a time; each group's rows in rank order, as the
    # split lists them (so every mean and variance sums in the same order as before).
    factor_file = ctx.store.columns("factors")  # its part files opened once, their footers parsed once
    factor_ids = factor_file.column("client_id")
    at = by_id if np.array_equal(factor_ids, assigned["client_id"].to_numpy()) else align_ids(
        factor_ids, ranked_ids, sorted_=bool((np.diff(factor_ids) > 0).all()))
    group = split["group"]
    rows = {g: np.flatnonzero((group == g).to_numpy(dtype=bool)) for g in GROUPS}
    in_file = {g: at[r] for g, r in rows.items()}  # the factor rows of each group, in rank order
    score = split["score"].to_numpy()
    current: dict[str, Any] = {}

    def values(name: str, g: str) -> np.ndarray:
        if name == "score":
            return score[rows[g]]
        if current.get("name") != name:
            current.update(name=name, values=factor_file.column(name))
        return current["values"][in_file[g]]

    try:
        balance = balance_check_columns({g: len(r) for g, r in rows.items()}, values, ["score", *cols],
                                        cfg.groups, cfg.balance)
    finally:
        factor_file.close()
    counts = {g: len(rows[g]) for g in GROUPS}
    return split, {"balance": balance, "groups": counts}


def _offer(ctx: StageContext) -> tuple[pd.DataFrame, dict]:
    # the profit rule multiplies the calibrated uplift by money (the calibration is part of the
    # model file, so the score checkpoint's model identity covers it)
    offers, threshold = assign_offers(ctx.store.read("split"), ctx.cfg.policy,
                                      getattr(ctx.model(), "calibration", None))
    return offers, {"threshold": threshold}


def _freeze(ctx: StageContext) -> StageOutcome:
    return ctx.freeze()


# --------------------------------------------------------------------------- the table
STAGE_TABLE: tuple[Stage, ...] = (
    Stage("client_base", "build_client_base", (), _key_client_base, _client_base),
    Stage("filters", "apply_base_filters", ("client_base",), _key_filters, _filters),
    Stage("subset", "draw_random_subset", ("filters",), _key_subset, _subset),
    Stage("factors", "compute_factors", ("subset",), _key_factors, _factors, parted=True),
    Stage("score", "score_clients", ("factors",), _key_score, _score, parted=True),
    Stage("sort", "sort_clients", ("score",), _key_sort, _sort),
    Stage("split", "split_groups", ("sort", "factors"), _key_split, _split),
    Stage("offer", "assign_offers", ("split",), _key_offer, _offer),
    Stage("freeze", "freeze_campaign", ("offer",), None, _freeze),
)
STAGES = [s.name for s in STAGE_TABLE]
CHECKPOINTED = [s.name for s in STAGE_TABLE if s.checkpointed]
PARTED = [s.name for s in STAGE_TABLE if s.parted]
STAGE_BY_NAME = {s.name: s for s in STAGE_TABLE}


def stage(name: str) -> Stage:
    """The table entry of stage ``name``; :class:`ConfigError` naming the stages otherwise."""
    try:
        return STAGE_BY_NAME[name]
    except KeyError:
        raise ConfigError(f"unknown stage {name!r}; stages are {STAGES}") from None


def checkpoint_store(campaign: CampaignPaths | str | Path) -> CheckpointStore:
    """The checkpoint store of a campaign folder with the stages of this table (parted ones included)."""
    paths = campaign if isinstance(campaign, CampaignPaths) else CampaignPaths(Path(campaign))
    return CheckpointStore(paths, CHECKPOINTED, PARTED)


def stage_checkpoint(campaign: CampaignPaths | str | Path, name: str) -> Path:
    """Checkpoint of stage ``name`` in a campaign folder (e.g. the factor snapshot): a file, or
    the part folder of a parted stage (both read as one table by pandas, pyarrow, DuckDB)."""
    paths = campaign if isinstance(campaign, CampaignPaths) else CampaignPaths(Path(campaign))
    if not stage(name).checkpointed:
        raise ConfigError(f"stage {name!r} has no checkpoint; checkpointed stages are {CHECKPOINTED}")
    return paths.stage(CHECKPOINTED.index(name), name)
