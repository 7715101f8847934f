"""The campaign's transformations as pure, typed functions (one per stage's step).

Each takes frames and settings and returns frames: no files, no registry, no orchestrator.
:mod:`tasks.campaign.stages` wires them to the stage checkpoints; the offer decision is in
:mod:`tasks.campaign.policy` and the split's balance check in :mod:`tasks.campaign.balance`.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from tasks.campaign.config import FILTER_OPS, GROUPS, FilterSpec
from tasks.core.errors import ConfigError, DataValidationError
from tasks.modelling.threads import free_cores
from tasks.modelling.treescore import compiled_scoring

CAMPAIGN_COLUMNS = ["client_id", "group", "offer", "score", "rank", "percentile", "model_version", "campaign_id"]

FactorFn = Callable[[Path, pd.Timestamp, list, np.ndarray], pd.DataFrame]


def derive_seed(seed: int, stage: str) -> int:
    """A 63-bit seed for ``stage`` derived from the campaign seed (stable across runs and machines)."""
    digest = hashlib.sha256(f"{int(seed)}:{stage}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def select_client_base(clients: pd.DataFrame, date: pd.Timestamp) -> pd.DataFrame:
    """Clients registered before ``date``, ordered by client_id."""
    out = clients.loc[clients["registration_date"] < pd.Timestamp(date)]
    return out.sort_values("client_id", kind="stable").reset_index(drop=True)


def apply_filters(frame: pd.DataFrame, filters: Sequence[FilterSpec]) -> tuple[pd.DataFrame, list[dict]]:
    """Apply ``filters`` in order; return the kept rows and, per filter, how many it removed.

    ``frame`` must hold every filter's column. Raises :class:`ConfigError` when a filter
    leaves nobody (naming the filter and the counts).
    """
    kept = frame
    report = []
    for f in filters:
        if f.column not in kept.columns:
            raise ConfigError(f"filter {f.name!r}: column {f.column!r} is not available")
        try:
            mask = FILTER_OPS[f.op](kept[f.column], f.value).fillna(False).to_numpy(dtype=bool)
        except TypeError as exc:
            raise ConfigError(
                f"filter {f.name!r}: cannot compare column {f.column!r} ({kept[f.column].dtype}) "
                f"{f.op} {f.value!r}: {exc}") from None
        before = len(kept)
        kept = kept.loc[mask]
        report.append({"name": f.name, "column": f.column, "op": f.op, "value": f.value,
                       "before": before, "removed": before - len(kept), "after": len(kept)})
        if len(kept) == 0:
            raise ConfigError(
                f"filter {f.name!r} ({f.column} {f.op} {f.value!r}) left no clients "
                f"(it removed all {before} remaining); loosen the campaign's filters")
    return kept.reset_index(drop=True), report


def draw_subset(client_ids: np.ndarray, fraction: float | None, size: int | None, seed: int) -> np.ndarray:
    """A seeded random subset of ``client_ids`` (sorted), or all of them when neither is set."""
    ids = np.sort(np.asarray(client_ids, dtype="int64"))
    if fraction is None and size is None:
        return ids
    n = len(ids)
    k = int(round(fraction * n)) if fraction is not None else min(int(size), n)
    k = max(k, 1) if n else 0
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(ids, size=k, replace=False))


# The most clients a factor or score partition holds: about 2 KB per client for 90 factors,
# so a partition's frames stay within a few hundred MB whatever the base.
PARTITION_ROWS = 250_000


def partition_count(n: int, partitions: int, max_rows: int | None = None) -> int:
    """Partitions for ``n`` clients: at least ``partitions`` (the runner's), and enough that
    none holds more than ``max_rows`` (default :data:`PARTITION_ROWS`; results never depend
    on the count)."""
    return max(1, int(partitions), -(-int(n) // int(max_rows or PARTITION_ROWS)))


def align_ids(keys: np.ndarray, wanted: np.ndarray, sorted_: bool = True) -> np.ndarray:
    """Position in ``keys`` (unique ids; ascending when ``sorted_``) of each of ``wanted``.

    Raises :class:`DataValidationError` when an id of ``wanted`` is not among ``keys``.
    """
    keys = np.asarray(keys)
    wanted = np.asarray(wanted)
    if sorted_ and len(keys) == len(wanted):
        # the same ids in another order (a ranking of the keys): invert the sorting permutation,
        # far cheaper than a binary search per id over a large array
        order = np.argsort(wanted, kind="stable")
        if np.array_equal(wanted[order], keys):
            pos = np.empty(len(keys), dtype=np.int64)
            pos[order] = np.arange(len(keys), dtype=np.int64)
            return pos
    order = None if sorted_ else np.argsort(keys, kind="stable")
    ordered = keys if order is None else keys[order]
    pos, found = sorted_positions(ordered, wanted)
    if len(keys) == 0 or not found.all():
        missing = wanted[~found]
        raise DataValidationError("client ids", "client_id", f"{len(missing)} client id(s) not found",
                                  missing[:5].tolist())
    return pos if order is None else order[pos]


def sorted_positions(ordered: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``wanted``, its position in the ascending unique ``ordered`` (a binary search)
    and whether it is there (where not, the position is meaningless)."""
    ordered, wanted = np.asarray(ordered), np.asarray(wanted)
    if len(ordered) == 0:
        return np.zeros(len(wanted), dtype=np.int64), np.zeros(len(wanted), dtype=bool)
    pos = np.minimum(np.searchsorted(ordered, wanted), len(ordered) - 1)
    return pos, ordered[pos] == wanted


def partition_ids(client_ids: np.ndarray, partitions: int) -> list[np.ndarray]:
    """Split sorted client ids into ``partitions`` contiguous chunks (no empty chunk)."""
    ids = np.asarray(client_ids, dtype="int64")
    parts = max(1, min(int(partitions), len(ids) or 1))
    return [chunk for chunk in np.array_split(ids, parts) if len(chunk)]


def missing_model_features(features: Sequence[str], available: Sequence[str]) -> list[str]:
    """Model features not among ``available`` columns (in the model's order)."""
    have = set(available)
    return [f for f in features if f not in have]


def score_partition(model: Any, factors: pd.DataFrame) -> pd.DataFrame:
    """Score one partition of the factor table: ``client_id``, ``score`` (float64).

    LightGBM models score through their compiled trees on the cores free now (the same
    scores as LightGBM's own predictor; tasks/modelling/treescore.py)."""
    with compiled_scoring(model, free_cores()):
        scores = np.asarray(model.predict(factors), dtype="float64")
    if scores.shape != (len(factors),):
        raise DataValidationError("scores", "score", f"the model returned shape {scores.shape} for {len(factors)} clients")
    if not np.isfinite(scores).all():
        bad = np.flatnonzero(~np.isfinite(scores))
        raise DataValidationError("scores", "score", f"{len(bad)} non-finite score(s)", factors["client_id"].to_numpy()[bad[:5]].tolist())
    return pd.DataFrame({"client_id": factors["client_id"].to_numpy(dtype="int64"), "score": scores})


def rank_scores(scored: pd.DataFrame) -> pd.DataFrame:
    """Sort by score descending (ties: lower client_id first) with rank and percentile.

    ``rank`` is 1 for the highest score; ``percentile`` = 100 * rank / n, so the top 30% of
    the ranked list are the clients with percentile <= 30.
    """
    order = np.lexsort((scored["client_id"].to_numpy(), -scored["score"].to_numpy()))
    out = scored.iloc[order][["client_id", "score"]].reset_index(drop=True)
    n = len(out)
    rank = np.arange(1, n + 1, dtype="int64")
    out["rank"] = rank
    out["percentile"] = 100.0 * rank / max(n, 1)
    return out


def group_counts(n: int, groups: dict[str, float]) -> dict[str, int]:
    """Exact group sizes for ``n`` clients: floor of each share, remainder by largest fraction."""
    shares = {g: float(groups.get(g, 0.0)) for g in GROUPS}
    raw = {g: shares[g] * n for g in GROUPS}
    counts = {g: int(math.floor(raw[g])) for g in GROUPS}
    rest = n - sum(counts.values())
    order = sorted((g for g in GROUPS if shares[g] > 0), key=lambda g: (-(raw[g] - counts[g]), GROUPS.index(g)))
    for g in order[:rest]:
        counts[g] += 1
    return counts


def assign_groups(client_ids: np.ndarray, groups: dict[str, float], seed: int) -> pd.DataFrame:
    """Randomly assign clients to groups with exact sizes (complete randomisation).

    The assignment depends only on the set of client ids and the seed, never on scores.
    Returns ``client_id`` (sorted) and ``group``.
    """
    ids = np.sort(np.asarray(client_ids, dtype="int64"))
    counts = group_counts(len(ids), groups)
    labels = np.repeat(np.array(GROUPS, dtype=object), [counts[g] for g in GROUPS])
    labels = np.random.default_rng(seed).permutation(labels)
    return pd.DataFrame({"client_id": ids, "group": pd.array(labels, dtype="str")})


def factor_partition(factor_fn: FactorFn, data_dir: Path, as_of: pd.Timestamp, names: list,
                     client_ids: np.ndarray) -> pd.DataFrame:
    """Factors of one partition of clients (rows in ``client_ids`` order)."""
    df = factor_fn(data_dir, as_of, list(names), client_ids)
    return df[["client_id", *names]].reset_index(drop=True)


def build_campaign_table(offers: pd.DataFrame, model_version: str, campaign_id: str) -> pd.DataFrame:
    """The frozen campaign table (columns :data:`CAMPAIGN_COLUMNS`, ordered by rank)."""
    out = pd.DataFrame({
        "client_id": offers["client_id"].to_numpy(dtype="int64"),
        "group": pd.array(offers["group"].to_numpy(dtype=object), dtype="str"),
        "offer": offers["offer"].to_numpy(dtype=bool),
        "score": offers["score"].to_numpy(dtype="float64"),
        "rank": offers["rank"].to_numpy(dtype="int64"),
        "percentile": offers["percentile"].to_numpy(dtype="float64"),
    })
    out["model_version"] = pd.array([model_version] * len(out), dtype="str")
    out["campaign_id"] = pd.array([campaign_id] * len(out), dtype="str")
    return out[CAMPAIGN_COLUMNS]


def score_distribution(table: pd.DataFrame) -> list[dict]:
    """Score quantiles overall and per group (for the summary)."""
    rows = []
    for name, part in [("all", table)] + [(g, table.loc[table["group"] == g]) for g in GROUPS]:
        s = part["score"]
        if len(s) == 0:
            continue
        q = s.quantile([0.0, 0.1, 0.5, 0.9, 1.0]).to_numpy()
        rows.append({"group": name, "n": int(len(s)), "mean": float(s.mean()), "min": float(q[0]),
                     "p10": float(q[1]), "median": float(q[2]), "p90": float(q[3]), "max": float(q[4])})
    return rows
