"""Running a campaign over its folder: lock, frozen check, the stages with resume, the freeze.

:class:`CampaignRun` runs the stages declared in :data:`tasks.campaign.stages.STAGE_TABLE`:
per stage it decides whether the stored checkpoint is still valid (same config slice, same
upstream rows, same model and data) and computes only from the first stage that is not.
The last stage freezes the campaign: campaign.parquet, the prediction log, summary.md and
(last) manifest.json, at the paths of :class:`tasks.core.layout.CampaignPaths`.
:func:`run_campaign` runs every stage without an orchestrator; :mod:`flows.campaign` runs
each stage as a Prefect task.
"""
from __future__ import annotations

import datetime as _dt
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd

import factors
from tasks.campaign.checkpoints import fault_point, stage_key
from tasks.campaign.client_table import (
    ClientTable, base_columns, check_filter_columns, frozen_table_note, missing_features, missing_features_error,
    table_manifest, table_source, uses_client_table,
)
from tasks.campaign.config import GROUPS, CampaignConfig, campaign_config_hash, group_shares, validate_campaign_config
from tasks.campaign.eligible import default_factor_fn
from tasks.campaign.frozen import seal_manifest, verified_manifest
from tasks.campaign.checkpoint_parts import Part, StagedParts
from tasks.campaign.partitions import map_to_parts
from tasks.campaign.policy import policy_params
from tasks.campaign.stages import (
    CHECKPOINTED, STAGES, Mapper, StageOutcome, check_factors_known, checkpoint_store, input_tables, stage,
)
from tasks.campaign.summary import design_power, history_base_rate, render_summary
from tasks.campaign.transforms import FactorFn, build_campaign_table, score_distribution  # noqa: F401
from tasks.core.errors import ConfigError, StateError
from tasks.core.io import ParquetChunkWriter, atomic_write_json, atomic_write_text, sha256_file, stable_hash
from tasks.core.layout import Layout
from tasks.core.locks import PidLock
from tasks.data.tables import check_dataset, manifest_as_of, read_manifest
from tasks.modelling.registry import ModelRegistry
from tasks.monitoring.prediction_log import append_prediction_chunks

# pyarrow's default row group (1,048,576 rows): campaign.parquet's row groups
FROZEN_ROW_GROUP = 1 << 20

# derive_seed is imported above for flows/simulate_responses.py, which takes it from here.


_default_factor_fn = default_factor_fn


def _default_known_factors() -> set[str]:
    return set(factors.all_factors())


def sequential_map(fn: Callable[..., pd.DataFrame], args: list[tuple], folder: Path) -> Iterator[Part]:
    """Apply ``fn`` to each argument tuple in order, lazily, writing each result as its part of
    ``folder`` in this process (the local runner)."""
    return map_to_parts(fn, args, folder)


@dataclass
class CampaignResult:
    """The result of a campaign run."""

    campaign_id: str
    folder: Path
    noop: bool
    outcomes: dict[str, StageOutcome]
    manifest: dict
    note: str | None = None           # e.g. the client table changed since the freeze

    @property
    def computed(self) -> list[str]:
        return [s for s, o in self.outcomes.items() if o.status == "computed"]


class CampaignRun:
    """One run of a campaign over its folder: lock, frozen check, stage by stage with resume.

    ``model`` (anything with name, version, kind, features, metadata and ``predict``) and
    ``factor_fn`` can be injected; by default the model comes from the registry under the
    layout's model root and the factors from :func:`factors.compute_factors`. ``mapper``
    maps the per-partition functions of the factor and score stages, each result written as
    its part of the stage's part folder where it is computed (sequential by default; a Dask
    runner can pass its own). Results do not depend on ``partitions``. ``checked``: a run of
    the same campaign whose :meth:`check_inputs` just passed (the command line's), whose model,
    data source and client-table reader are taken over, so nothing is read or hashed twice.
    """

    def __init__(self, cfg: CampaignConfig, artifacts: str | Path, partitions: int = 1,
                 model: Any = None, factor_fn: FactorFn | None = None,
                 known_factors: Callable[[], set[str] | None] | None = None,
                 mapper: Mapper | None = None, checked: "CampaignRun | None" = None) -> None:
        validate_campaign_config(cfg)
        self.cfg = cfg
        self.artifacts = Path(artifacts)
        self.layout = Layout(self.artifacts)
        self.paths = self.layout.campaign(cfg.id)
        self.folder = self.paths.folder
        self.partitions = max(1, int(partitions))
        self.store = checkpoint_store(self.paths)
        self.lock = PidLock(self.paths.lock)
        self.factor_fn = factor_fn or _default_factor_fn
        self.default_factors = factor_fn is None  # the factor engine, checked and prepared once per stage
        self.known_factors = known_factors or _default_known_factors
        self.mapper = mapper or sequential_map
        self._model = model
        self._data: dict | None = None
        self._table: ClientTable | None = None
        if checked is not None:  # a run of the same campaign whose inputs were just checked: reuse them
            self._model = model if model is not None else checked._model
            if checked.artifacts == self.artifacts:  # its dataset paths are this run's too
                self._data, self._table = checked._data, checked._table
        self.outcomes: dict[str, StageOutcome] = {}
        self._fingerprints: dict[str, str] = {}

    # ----------------------------------------------------------------- state
    @property
    def manifest_path(self) -> Path:
        return self.paths.manifest

    @property
    def table_path(self) -> Path:
        return self.paths.table

    def frozen_manifest(self) -> dict | None:
        """The verified manifest of the frozen campaign in the folder, or None when not frozen.

        Frozen files that do not verify raise :class:`StateError` saying how to recover
        (:func:`tasks.campaign.frozen.verified_manifest`).
        """
        return verified_manifest(self.paths)

    def check_frozen(self) -> dict | None:
        """None when not frozen; the manifest when frozen with this config; StateError otherwise."""
        m = self.frozen_manifest()
        if m is None:
            return None
        if m.get("config_hash") != campaign_config_hash(self.cfg):
            old = m.get("config", {})
            new = asdict(self.cfg)
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise StateError(
                f"campaign {self.cfg.id!r} is frozen (at {m.get('frozen_at')}) with a different config "
                f"(differs in: {diff}); a frozen campaign cannot change: use a new campaign id "
                f"(e.g. campaign.id={self.cfg.id}_v2)")
        return m

    def data(self) -> dict:
        """Dataset folder, manifest hash and the campaign date (default: the data's as-of); for a
        campaign over a client table its path, content hash and date
        (:func:`tasks.campaign.client_table.table_source`), ``kind`` ``table``."""
        if self._data is None and uses_client_table(self.cfg):
            self._data = table_source(self.cfg.client_table, self.cfg.date)
        if self._data is None:
            ddir = self.layout.dataset(self.cfg.data)
            manifest = read_manifest(ddir)
            date = self.cfg.date or manifest_as_of(ddir, manifest)
            if date is None:
                raise ConfigError(f"campaign.date is not set and dataset {self.cfg.data!r} has no as_of date")
            self._data = {"kind": "events", "name": self.cfg.data, "dir": ddir, "hash": stable_hash(manifest),
                          "date": pd.Timestamp(date), "manifest": manifest}
        return self._data

    def client_table(self) -> ClientTable:
        """The campaign's client table (its reader, one per run)."""
        if self._table is None:
            self._table = ClientTable(self.cfg.client_table, self.data()["path"])
        return self._table

    def frozen_note(self, manifest: dict | None) -> str | None:
        """A line for a frozen campaign whose client table changed or went since the freeze."""
        return frozen_table_note(manifest) if manifest else None

    def check_inputs(self) -> None:
        """Check what the stages will read before anything is written, the folder included.

        The dataset (its manifest, the tables the stages read, their columns and the as-of
        promise: :func:`tasks.data.tables.check_dataset`), the model (found, its checksum
        verified by the registry) and the factors it needs; the config was checked when the
        run was made. Raises the error a stage would raise later, before Prefect, a lock or a
        file.
        """
        d = self.data()
        check_factors_known(self)
        if d["kind"] == "table":
            table = self.client_table()
            check_filter_columns(self.cfg.filters, table.columns())
            missing = missing_features(table.dtypes(), self.factor_names(), d["categorical"])
            if missing:
                raise missing_features_error(self.model(), missing, table.columns(), d["path"])
            table.rows(base_columns(self.cfg.filters, table.columns()))  # every id checked now
            return
        check_dataset(d["dir"], input_tables(self))

    def model(self) -> Any:
        """The campaign's model (champion or the configured version)."""
        if self._model is None:
            version = None if self.cfg.model_version in (None, "", "champion") else self.cfg.model_version
            self._model = ModelRegistry(self.layout.models).load(self.cfg.model, version)
        return self._model

    def model_identity(self) -> dict:
        m = self.model()
        return {"name": m.name, "version": m.version, "sha256": (m.metadata or {}).get("model_sha256"),
                "kind": getattr(m, "kind", "uplift")}

    def factor_names(self) -> list[str]:
        """Factors the factor stage computes: the model's features, then extra balance factors."""
        names = list(self.model().features)
        for f in self.cfg.balance_factors or []:
            if f not in names:
                names.append(f)
        return names

    def balance_columns(self) -> list[str]:
        return list(self.cfg.balance_factors) if self.cfg.balance_factors else list(self.model().features)

    def fingerprint(self, stage_name: str) -> str | None:
        """Fingerprint of ``stage_name``'s checkpoint as used or made by this run."""
        return self._fingerprints.get(stage_name)

    # ----------------------------------------------------------------- stages
    def stage_key(self, stage_name: str) -> str:
        """The key ``stage_name``'s checkpoint must carry to be reused."""
        spec = stage(stage_name)
        if spec.key is None:
            raise KeyError(f"stage {stage_name!r} has no checkpoint")
        config_slice, extra = spec.key(self)
        upstream = self.fingerprint(spec.inputs[0]) if spec.inputs else None
        return stage_key(spec.name, config_slice, upstream, extra)

    def run_stage(self, stage_name: str) -> StageOutcome:
        """Reuse ``stage_name``'s checkpoint when valid, otherwise compute and commit it."""
        spec = stage(stage_name)
        if not spec.checkpointed:
            return spec.compute(self)
        key = self.stage_key(stage_name)
        rec = self.store.valid(stage_name, key)
        if rec is not None:
            outcome = StageOutcome(stage_name, "reused", rec.rows, rec.seconds, key, rec.info)
        else:
            t0 = time.perf_counter()
            df, info = spec.compute(self)
            if isinstance(df, StagedParts):  # parts written where they were computed: sealed here
                rec = self.store.seal(stage_name, key, df, t0, info)
            else:
                rec = self.store.write(stage_name, key, df, time.perf_counter() - t0, info)
            outcome = StageOutcome(stage_name, "computed", rec.rows, rec.seconds, key, rec.info)
        self._fingerprints[stage_name] = rec.fingerprint
        self.outcomes[stage_name] = outcome
        return outcome

    def freeze(self) -> StageOutcome:
        """Write campaign.parquet, the prediction log, summary.md and (last) manifest.json."""
        t0 = time.perf_counter()
        cfg = self.cfg
        m = self.model_identity()
        offers = self.store.read("offer")
        fault_point("freeze")
        frozen_at = _dt.datetime.now(_dt.timezone.utc).isoformat()
        bounds = range(0, max(len(offers), 1), FROZEN_ROW_GROUP)

        kept: dict[int, pd.DataFrame] = {}

        def table_chunks() -> Iterator[pd.DataFrame]:
            # a campaign of one row group builds its table once for both files (it is in
            # memory while it is written anyway); larger ones a row group at a time, twice
            for lo in bounds:
                chunk = kept.pop(lo, None)
                if chunk is None:
                    chunk = build_campaign_table(offers.iloc[lo:lo + FROZEN_ROW_GROUP], m["version"], cfg.id)
                    if len(bounds) == 1:
                        kept[lo] = chunk
                yield chunk

        # campaign.parquet and the prediction log a row group at a time (the same file as one
        # write of the whole table: row groups of FROZEN_ROW_GROUP rows either way)
        with ParquetChunkWriter(self.table_path, FROZEN_ROW_GROUP) as writer:
            for chunk in table_chunks():
                writer.write(chunk)
        append_prediction_chunks(self.layout.predictions, (pd.DataFrame({
            "time": pd.Timestamp(frozen_at), "source": "campaign", "request_id": cfg.id, "campaign_id": cfg.id,
            "client_id": t["client_id"], "score": t["score"], "decision": t["offer"],
            "model_name": m["name"], "model_version": m["version"],
        }) for t in table_chunks()), segment=f"campaign-{cfg.id}")
        table = offers  # the frozen table's rows: client_id, group, offer, score, rank, percentile
        recs = {s: self.store.record(s) for s in CHECKPOINTED}
        d = self.data()
        counts = {
            "clients": int(len(table)),
            "groups": {g: int((table["group"] == g).sum()) for g in GROUPS},
            "offers": {g: int(table.loc[table["group"] == g, "offer"].sum()) for g in GROUPS},
            "offers_total": int(table["offer"].sum()),
            "registered_later": recs["client_base"].info.get("registered_later", 0),
            "client_base": recs["client_base"].rows,
            "after_filters": recs["filters"].rows,
            "after_subset": recs["subset"].rows,
        }
        seconds = time.perf_counter() - t0
        manifest = {
            "campaign_id": cfg.id,
            "campaign_date": str(d["date"].date()),
            "data": (table_manifest(d) if d["kind"] == "table" else
                     {"name": d["name"], "dir": str(d["dir"]), "manifest_hash": d["hash"]}),
            "model": m,
            "factor_set": getattr(self.model(), "factor_set", None),
            "features": list(self.model().features),
            "groups": group_shares(cfg),
            "policy": {"kind": cfg.policy.kind, "params": policy_params(cfg.policy)},
            # kept apart from the policy so evaluation can price any campaign's offers
            "economics": {"margin": cfg.policy.margin, "contact_cost": cfg.policy.contact_cost},
            "threshold": recs["offer"].info["threshold"],
            "percentile_definition": "100 * rank / n (rank 1 = highest score)",
            "counts": counts,
            "filters": recs["filters"].info.get("filters", []),
            "subset": recs["subset"].info,
            "balance": recs["split"].info["balance"],
            "score_distribution": score_distribution(table),
            "stages": {s: {"hash": r.key, "key": r.key, "fingerprint": r.fingerprint, "rows": r.rows,
                           "seconds": round(r.seconds, 3)} for s, r in recs.items()},
            "campaign_sha256": sha256_file(self.table_path),
            "frozen_at": frozen_at,
            "config": asdict(cfg),
            "config_hash": campaign_config_hash(cfg),
        }
        manifest["stages"]["freeze"] = {"hash": manifest["config_hash"], "key": manifest["config_hash"],
                                        "fingerprint": manifest["campaign_sha256"],
                                        "rows": int(len(table)), "seconds": round(seconds, 3)}
        summary = render_summary(manifest, design_power(manifest, table, history_base_rate(d["dir"]) if d["kind"] == "events" else None))
        atomic_write_text(summary, self.paths.summary)
        atomic_write_json(seal_manifest(manifest), self.manifest_path)
        outcome = StageOutcome("freeze", "computed", int(len(table)), seconds, manifest["config_hash"],
                               {"summary": summary})
        self.outcomes["freeze"] = outcome
        return outcome

    def result(self, noop: bool = False) -> CampaignResult:
        """The run's result (the manifest as frozen; for a no-op, a note when its client table changed)."""
        manifest = self.frozen_manifest() or {}
        return CampaignResult(self.cfg.id, self.folder, noop, dict(self.outcomes), manifest,
                              self.frozen_note(manifest) if noop else None)


def run_campaign(cfg: CampaignConfig, artifacts: str | Path, partitions: int = 1, until: str | None = None,
                 **kwargs: Any) -> CampaignResult:
    """Run every stage of a campaign without an orchestrator (resume, lock and freeze included).

    An identical rerun of a frozen campaign is a no-op; a frozen campaign with a different
    config raises :class:`StateError`. ``until`` stops after that stage (a preview that
    leaves the campaign unfrozen). ``kwargs`` go to :class:`CampaignRun`.
    """
    if until is not None:
        stage(until)  # a clear error for an unknown stage
    run = CampaignRun(cfg, artifacts, partitions, **kwargs)
    if run.check_frozen() is not None:  # a frozen campaign never changes: no lock needed to see it
        return run.result(noop=True)
    run.check_inputs()  # before the lock creates the folder
    with run.lock:
        if run.check_frozen() is not None:
            return run.result(noop=True)
        run.store.remove_partial_files()
        for name in STAGES[: STAGES.index(until) + 1 if until else len(STAGES)]:
            run.run_stage(name)
        return run.result()
