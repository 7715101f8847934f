"""The campaign calculation: nine stages from the client base to a frozen campaign.

Stages (each writes a Parquet checkpoint, see :mod:`tasks.campaign.checkpoints`):

1. ``client_base``  every client registered before the campaign date;
2. ``filters``      the campaign's base filters, in order, with removals per filter;
3. ``subset``       an optional seeded random subset (a fraction or a count);
4. ``factors``      the model's features as of the campaign date, computed per partition;
5. ``score``        the model's score per partition;
6. ``sort``         descending score with rank (1 = best) and percentile;
7. ``split``        a seeded three-way random split independent of the score, with a
                    balance check (standardised mean differences, sample-ratio test);
8. ``offer``        the threshold policy decides who in the targeted group gets the offer;
9. ``freeze``       campaign.parquet, manifest.json, summary.md and the prediction log.

The first half of this module holds pure, typed functions (one per stage's transformation);
:class:`CampaignRun` wires them to files: it decides per stage whether the stored checkpoint
is still valid (same config slice, same upstream rows, same model and data) and computes only
from the first stage that is not.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from omegaconf import MISSING

from tasks.campaign.checkpoints import CheckpointStore, campaign_dir, fault_point, stage_key
from tasks.core.locks import PidLock
from tasks.core.errors import ConfigError, DataValidationError, StateError
from tasks.core.io import atomic_write_json, atomic_write_parquet, atomic_write_text, read_json, sha256_file, stable_hash

STAGES = ["client_base", "filters", "subset", "factors", "score", "sort", "split", "offer", "freeze"]
GROUPS = ("targeted", "random_target", "control")
POLICY_KINDS = ("score_cutoff", "top_fraction", "budget", "profit")
CAMPAIGN_COLUMNS = ["client_id", "group", "offer", "score", "rank", "percentile", "model_version", "campaign_id"]
SMD_LIMIT = 0.1
SMD_Z = 3.5
SRM_ALPHA = 0.001

_OPS: dict[str, Callable[[pd.Series, Any], pd.Series]] = {
    "<": lambda s, v: s < v,
    "<=": lambda s, v: s <= v,
    ">": lambda s, v: s > v,
    ">=": lambda s, v: s >= v,
    "==": lambda s, v: s == v,
    "!=": lambda s, v: s != v,
    "in": lambda s, v: s.isin(list(v)),
    "not in": lambda s, v: ~s.isin(list(v)),
}


# --------------------------------------------------------------------------- configuration
@dataclass
class FilterSpec:
    """One base filter: keep clients whose ``column`` ``op`` ``value`` holds."""

    name: str = MISSING
    column: str = MISSING
    op: str = MISSING
    value: Any = None


@dataclass
class PolicyConfig:
    """Threshold policy of the offer stage (only the fields of ``kind`` are used)."""

    kind: str = "top_fraction"
    score_cutoff: float | None = None
    top_fraction: float | None = 0.3
    budget: int | None = None
    margin: float | None = None
    contact_cost: float | None = None


@dataclass
class CampaignConfig:
    """A campaign as described in ``conf/campaign/<name>.yaml``."""

    id: str = MISSING
    date: str | None = None
    data: str = "synthetic"
    model: str = "synthetic_uplift"
    model_version: str = "champion"
    filters: list[FilterSpec] = field(default_factory=list)
    sample_fraction: float | None = None
    sample_size: int | None = None
    groups: dict[str, float] = field(
        default_factory=lambda: {"targeted": 0.8, "random_target": 0.1, "control": 0.1})
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    balance_factors: list[str] | None = None
    seed: int = 2026
    description: str = ""


def validate_campaign_config(cfg: CampaignConfig) -> None:
    """Raise :class:`ConfigError` naming the first inconsistent campaign setting."""
    if not cfg.id or not all(ch.isalnum() or ch in "_-." for ch in cfg.id) or cfg.id.startswith("."):
        raise ConfigError(f"campaign.id {cfg.id!r}: use letters, digits, '_', '-', '.' (it names a folder)")
    if cfg.date is not None:
        try:
            pd.Timestamp(cfg.date)
        except (ValueError, TypeError):
            raise ConfigError(f"campaign.date {cfg.date!r} is not a date (use YYYY-MM-DD)") from None
    names = set()
    for i, f in enumerate(cfg.filters):
        where = f"campaign.filters[{i}] ({f.name!r})"
        if f.op not in _OPS:
            raise ConfigError(f"{where}: unknown op {f.op!r}; use one of {sorted(_OPS)}")
        if f.op in ("in", "not in") and not isinstance(f.value, (list, tuple)):
            raise ConfigError(f"{where}: op {f.op!r} needs a list value, got {f.value!r}")
        if f.value is None:
            raise ConfigError(f"{where}: value is missing")
        if f.name in names:
            raise ConfigError(f"{where}: duplicate filter name")
        names.add(f.name)
    if cfg.sample_fraction is not None and cfg.sample_size is not None:
        raise ConfigError("campaign: set sample_fraction or sample_size, not both")
    if cfg.sample_fraction is not None and not 0 < cfg.sample_fraction <= 1:
        raise ConfigError(f"campaign.sample_fraction must be in (0, 1], got {cfg.sample_fraction}")
    if cfg.sample_size is not None and cfg.sample_size < 1:
        raise ConfigError(f"campaign.sample_size must be a positive count, got {cfg.sample_size}")
    unknown = sorted(set(cfg.groups) - set(GROUPS))
    if unknown:
        raise ConfigError(f"campaign.groups: unknown group(s) {unknown}; the groups are {list(GROUPS)}")
    bad = {g: p for g, p in cfg.groups.items() if not 0 <= p <= 1}
    if bad:
        raise ConfigError(f"campaign.groups: proportions must be within [0, 1], got {bad}")
    total = float(sum(cfg.groups.values()))
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"campaign.groups: proportions {dict(cfg.groups)} sum to {total:g}, not 1")
    if cfg.groups.get("targeted", 0) <= 0:
        raise ConfigError("campaign.groups.targeted must be above 0")
    p = cfg.policy
    if p.kind not in POLICY_KINDS:
        raise ConfigError(f"campaign.policy.kind {p.kind!r} is unknown; use one of {list(POLICY_KINDS)}")
    if p.kind == "score_cutoff" and p.score_cutoff is None:
        raise ConfigError("campaign.policy.score_cutoff is required for policy kind score_cutoff")
    if p.kind == "top_fraction" and (p.top_fraction is None or not 0 < p.top_fraction <= 1):
        raise ConfigError(f"campaign.policy.top_fraction must be in (0, 1], got {p.top_fraction}")
    if p.kind == "budget" and (p.budget is None or p.budget < 0):
        raise ConfigError(f"campaign.policy.budget must be a count >= 0, got {p.budget}")
    if p.kind == "profit":
        if p.margin is None or p.margin <= 0:
            raise ConfigError(f"campaign.policy.margin must be above 0 for the profit policy, got {p.margin}")
        if p.contact_cost is None or p.contact_cost < 0:
            raise ConfigError(f"campaign.policy.contact_cost must be >= 0 for the profit policy, got {p.contact_cost}")


def policy_params(policy: PolicyConfig) -> dict:
    """The parameters the policy ``kind`` actually uses."""
    used = {"score_cutoff": ["score_cutoff"], "top_fraction": ["top_fraction"], "budget": ["budget"],
            "profit": ["margin", "contact_cost"]}[policy.kind]
    return {k: getattr(policy, k) for k in used}


def derive_seed(seed: int, stage: str) -> int:
    """A 63-bit seed for ``stage`` derived from the campaign seed (stable across runs and machines)."""
    digest = hashlib.sha256(f"{int(seed)}:{stage}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


# --------------------------------------------------------------------------- pure stage logic
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
            mask = _OPS[f.op](kept[f.column], f.value).fillna(False).to_numpy(dtype=bool)
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
    """Score one partition of the factor table: ``client_id``, ``score`` (float64)."""
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


def standardized_mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    """(mean_a - mean_b) / sqrt((var_a + var_b) / 2); 0 when both are constant and equal."""
    a = np.asarray(a, dtype="float64")
    b = np.asarray(b, dtype="float64")
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    diff = a.mean() - b.mean()
    pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    if pooled == 0:
        return 0.0 if diff == 0 else float("inf")
    return float(diff / pooled)


def sample_ratio_test(observed: dict[str, int], expected_share: dict[str, float]) -> tuple[float, float]:
    """Chi-square goodness of fit of group sizes against the configured shares: (chi2, p)."""
    from scipy.stats import chi2 as _chi2

    keys = [g for g in expected_share if expected_share[g] > 0]
    n = sum(observed.get(g, 0) for g in keys)
    if n == 0 or len(keys) < 2:
        return 0.0, 1.0
    stat = sum((observed.get(g, 0) - expected_share[g] * n) ** 2 / (expected_share[g] * n) for g in keys)
    return float(stat), float(_chi2.sf(stat, len(keys) - 1))


def balance_check(frame: pd.DataFrame, columns: Sequence[str], groups: dict[str, float]) -> dict:
    """Balance of the random split: SMD of ``columns`` of each group against control, and SRM.

    ``frame`` holds ``group`` and the columns. Returns a JSON-ready dict with the SMD table,
    the largest absolute SMD, the sample-ratio chi-square and p-value, and a verdict.
    """
    present = [g for g in GROUPS if (frame["group"] == g).any()]
    by_group = {g: frame.loc[frame["group"] == g] for g in present}
    pairs = [(g, "control") for g in ("targeted", "random_target") if g in by_group and "control" in by_group]
    if "control" not in by_group and "targeted" in by_group and "random_target" in by_group:
        pairs = [("targeted", "random_target")]
    smd = []
    for col in columns:
        row = {"factor": col}
        for a, b in pairs:
            row[f"{a}_vs_{b}"] = round(standardized_mean_difference(by_group[a][col].to_numpy(), by_group[b][col].to_numpy()), 6)
        smd.append(row)
    # A fixed 0.1 limit alone flags chance imbalance in small groups, so a factor is flagged
    # only when its |SMD| is above 0.1 and above SMD_Z standard errors of a random split.
    limits = {f"{a}_vs_{b}": max(SMD_LIMIT, SMD_Z * math.sqrt(1 / len(by_group[a]) + 1 / len(by_group[b])))
              for a, b in pairs}
    flagged = [{"factor": r["factor"], "pair": k, "smd": v} for r in smd for k, v in r.items()
               if k != "factor" and np.isfinite(v) and abs(v) > limits[k]]
    values = [abs(v) for r in smd for k, v in r.items() if k != "factor" and np.isfinite(v)]
    max_smd = max(values, default=0.0)
    observed = {g: int((frame["group"] == g).sum()) for g in GROUPS}
    chi2, p = sample_ratio_test(observed, {g: float(groups.get(g, 0.0)) for g in GROUPS})
    ok = not flagged and p >= SRM_ALPHA
    return {"smd": smd, "max_abs_smd": round(max_smd, 6), "smd_limit": SMD_LIMIT,
            "smd_limits": {k: round(v, 6) for k, v in limits.items()}, "flagged": flagged,
            "srm_chi2": round(chi2, 6), "srm_p_value": round(p, 6), "srm_alpha": SRM_ALPHA,
            "observed": observed, "balanced": bool(ok)}


def assign_offers(split: pd.DataFrame, policy: PolicyConfig) -> tuple[pd.DataFrame, dict]:
    """Decide the offer per client and record the threshold used.

    ``split`` holds client_id, score, rank, percentile, group, ordered by rank. random_target
    clients all get the offer, control clients none, targeted clients per the policy:
    ``score_cutoff`` (score >= cutoff), ``top_fraction`` (the best round(f * n_targeted), plus
    any client tied with the last of them), ``budget`` (the best min(budget, n_targeted),
    minus a group tied across the boundary), ``profit`` (score * margin > contact_cost).
    The threshold's ``score_cutoff`` is the lowest score that got an offer in the targeted
    group (for profit: contact_cost / margin), so any client can be decided later by
    ``score >= score_cutoff``.
    """
    out = split.copy()
    targeted = (out["group"] == "targeted").to_numpy()
    score = out["score"].to_numpy()
    n_t = int(targeted.sum())
    offer_t = np.zeros(len(out), dtype=bool)
    if policy.kind == "score_cutoff":
        offer_t = targeted & (score >= float(policy.score_cutoff))
    elif policy.kind in ("top_fraction", "budget"):
        k = int(round(policy.top_fraction * n_t)) if policy.kind == "top_fraction" else min(int(policy.budget), n_t)
        # Rows are ordered by rank, so the targeted scores are in descending order. The offer
        # must stay "score >= cutoff" even when scores tie at the boundary (evaluation and the
        # scoring API decide by the cutoff): top_fraction then includes the tied clients, a
        # budget is never exceeded and leaves them out.
        t_scores = score[targeted]
        if k > 0:
            cut = t_scores[k - 1]
            tie_crosses = k < n_t and t_scores[k] == cut
            if policy.kind == "budget" and tie_crosses:
                offer_t = targeted & (score > cut)
            else:
                offer_t = targeted & (score >= cut)
    elif policy.kind == "profit":
        offer_t = targeted & (score * float(policy.margin) > float(policy.contact_cost))
    else:  # pragma: no cover - validated earlier
        raise ConfigError(f"campaign.policy.kind {policy.kind!r} is unknown")
    out["offer"] = offer_t | (out["group"] == "random_target").to_numpy()
    offered_scores = score[offer_t]
    lowest = float(offered_scores.min()) if len(offered_scores) else None
    cutoff = float(policy.contact_cost) / float(policy.margin) if policy.kind == "profit" else lowest
    threshold = {
        "score_cutoff": cutoff,
        "lowest_offered_score": lowest,
        "policy": policy.kind,
        "params": policy_params(policy),
        "targeted": n_t,
        "targeted_offers": int(offer_t.sum()),
        "offer_rate_targeted": round(float(offer_t.sum()) / n_t, 6) if n_t else 0.0,
    }
    return out, threshold


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


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_summary(manifest: dict) -> str:
    """summary.md of a frozen campaign from its manifest."""
    m = manifest
    lines = [f"# Campaign {m['campaign_id']}", "",
             f"- date: {m['campaign_date']}; data: {m['data']['name']}; model: {m['model']['name']} "
             f"{m['model']['version']} ({m['model'].get('kind', '')})",
             f"- policy: {m['policy']['kind']} {m['policy']['params']}; threshold score_cutoff: "
             f"{_fmt(m['threshold']['score_cutoff'])}", ""]
    lines += ["## Stages", "", "| stage | rows | seconds |", "|---|---|---|"]
    lines += [f"| {s} | {v['rows']} | {v['seconds']:.2f} |" for s, v in m["stages"].items()]
    lines += ["", "## Base filters", ""]
    if m["filters"]:
        lines += ["| filter | rule | before | removed | after |", "|---|---|---|---|---|"]
        lines += [f"| {f['name']} | {f['column']} {f['op']} {f['value']} | {f['before']} | {f['removed']} | {f['after']} |"
                  for f in m["filters"]]
    else:
        lines.append("No base filters.")
    sub = m["subset"]
    lines += ["", "## Random subset", "",
              (f"{sub['kept']} of {sub['before']} clients kept ({sub['rule']})." if sub["rule"] != "none"
               else f"No subset: all {sub['before']} clients kept.")]
    c = m["counts"]
    lines += ["", "## Groups and offers", "", "| group | share | clients | offers |", "|---|---|---|---|"]
    lines += [f"| {g} | {m['groups'].get(g, 0)} | {c['groups'][g]} | {c['offers'][g]} |" for g in GROUPS]
    lines += [f"| total | 1 | {c['clients']} | {c['offers_total']} |", ""]
    lines += ["## Score distribution", "", "| group | n | mean | min | p10 | median | p90 | max |",
              "|---|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(_fmt(r[k]) for k in ("group", "n", "mean", "min", "p10", "median", "p90", "max")) + " |"
              for r in m["score_distribution"]]
    b = m["balance"]
    verdict = "balanced" if b["balanced"] else "NOT balanced: check the split"
    lines += ["", "## Balance check", "",
              f"Split is {verdict}: largest |SMD| {b['max_abs_smd']:.4f}; limits per pair "
              f"{b['smd_limits']} (0.1 or {SMD_Z} standard errors of chance, whichever is larger); "
              f"{len(b['flagged'])} factor(s) flagged; "
              f"sample-ratio chi-square {b['srm_chi2']:.4f}, p = {b['srm_p_value']:.4f} (alarm below {b['srm_alpha']}).", ""]
    if b["smd"]:
        keys = [k for k in b["smd"][0] if k != "factor"]
        top = sorted(b["smd"], key=lambda r: -max((abs(r[k]) for k in keys if np.isfinite(r[k])), default=0))[:10]
        lines += ["| factor | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        lines += [f"| {r['factor']} | " + " | ".join(f"{r[k]:+.4f}" for k in keys) + " |" for r in top]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- wiring to files
FactorFn = Callable[[Path, pd.Timestamp, list, np.ndarray], pd.DataFrame]
Mapper = Callable[[Callable[..., pd.DataFrame], list[tuple]], list[pd.DataFrame]]


def _default_factor_fn(data_dir: Path, as_of: pd.Timestamp, names: list, client_ids: np.ndarray) -> pd.DataFrame:
    import factors

    return factors.compute_factors(data_dir, as_of, list(names), client_ids=client_ids)


def _default_known_factors() -> set[str] | None:
    try:
        from factors.registry import all_factors
    except ImportError:
        return None
    return set(all_factors())


def sequential_map(fn: Callable[..., pd.DataFrame], args: list[tuple]) -> list[pd.DataFrame]:
    """Apply ``fn`` to each argument tuple in order (the local runner)."""
    return [fn(*a) for a in args]


def factor_partition(factor_fn: FactorFn, data_dir: Path, as_of: pd.Timestamp, names: list,
                     client_ids: np.ndarray) -> pd.DataFrame:
    """Factors of one partition of clients (rows in ``client_ids`` order)."""
    df = factor_fn(data_dir, as_of, list(names), client_ids)
    return df[["client_id", *names]].reset_index(drop=True)


def concat_partitions(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate partition results in partition order."""
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)


@dataclass
class StageOutcome:
    """What a stage did: reused its checkpoint or computed it; small, for logs and Prefect."""

    stage: str
    status: str
    rows: int
    seconds: float
    key: str
    info: dict = field(default_factory=dict)


@dataclass
class CampaignResult:
    """The result of a campaign run."""

    campaign_id: str
    folder: Path
    noop: bool
    outcomes: dict[str, StageOutcome]
    manifest: dict

    @property
    def computed(self) -> list[str]:
        return [s for s, o in self.outcomes.items() if o.status == "computed"]


def campaign_config_hash(cfg: CampaignConfig) -> str:
    """Hash of the resolved campaign config (what makes a frozen campaign 'the same')."""
    return stable_hash(asdict(cfg))


class CampaignRun:
    """One run of a campaign over its folder: lock, frozen check, stage by stage with resume.

    ``model`` (anything with name, version, kind, features, metadata and ``predict``) and
    ``factor_fn`` can be injected; by default the model comes from the registry under
    ``<artifacts>/models`` and the factors from :func:`factors.compute_factors`. ``mapper``
    maps the per-partition functions of the factor and score stages (sequential by default;
    a Dask runner can pass its own). Results do not depend on ``partitions``.
    """

    def __init__(self, cfg: CampaignConfig, artifacts: str | Path, partitions: int = 1,
                 model: Any = None, factor_fn: FactorFn | None = None,
                 known_factors: Callable[[], set[str] | None] | None = None,
                 mapper: Mapper | None = None) -> None:
        validate_campaign_config(cfg)
        self.cfg = cfg
        self.artifacts = Path(artifacts)
        self.partitions = max(1, int(partitions))
        self.folder = campaign_dir(self.artifacts, cfg.id)
        self.store = CheckpointStore(self.folder, STAGES[:-1])
        self.lock = PidLock(self.folder / ".lock")
        self.factor_fn = factor_fn or _default_factor_fn
        self.known_factors = known_factors or _default_known_factors
        self.mapper = mapper or sequential_map
        self._model = model
        self._data: dict | None = None
        self.outcomes: dict[str, StageOutcome] = {}
        self._keys: dict[str, str] = {}
        self._fingerprints: dict[str, str] = {}

    # ----------------------------------------------------------------- state
    @property
    def manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    @property
    def table_path(self) -> Path:
        return self.folder / "campaign.parquet"

    def frozen_manifest(self) -> dict | None:
        """The manifest of the frozen campaign in the folder, or None when not frozen."""
        if not self.manifest_path.exists():
            return None
        return read_json(self.manifest_path)

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
        """Dataset folder, manifest hash and the campaign date (default: the data's as-of)."""
        if self._data is None:
            from tasks.data.tables import dataset_dir, read_manifest

            ddir = dataset_dir(self.artifacts, self.cfg.data)
            manifest = read_manifest(ddir)
            date = self.cfg.date or manifest.get("as_of")
            if date is None:
                raise ConfigError(f"campaign.date is not set and dataset {self.cfg.data!r} has no as_of date")
            self._data = {"name": self.cfg.data, "dir": ddir, "hash": stable_hash(manifest),
                          "date": pd.Timestamp(date), "manifest": manifest}
        return self._data

    def model(self) -> Any:
        """The campaign's model (champion or the configured version)."""
        if self._model is None:
            from tasks.modelling.registry import ModelRegistry

            version = None if self.cfg.model_version in (None, "", "champion") else self.cfg.model_version
            self._model = ModelRegistry(self.artifacts / "models").load(self.cfg.model, version)
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

    # ----------------------------------------------------------------- keys
    def _stage_key(self, stage: str) -> str:
        cfg = self.cfg
        d = self.data()
        idx = STAGES.index(stage)
        upstream = self._fingerprints.get(STAGES[idx - 1]) if idx > 0 else None
        extra: Any = None
        if stage == "client_base":
            slice_: Any = {"data": d["name"], "data_hash": d["hash"], "date": str(d["date"])}
        elif stage == "filters":
            slice_ = {"filters": [asdict(f) for f in cfg.filters], "data_hash": d["hash"], "date": str(d["date"])}
        elif stage == "subset":
            slice_ = {"fraction": cfg.sample_fraction, "size": cfg.sample_size, "seed": cfg.seed}
        elif stage == "factors":
            slice_ = {"factors": self.factor_names(), "data_hash": d["hash"], "date": str(d["date"])}
        elif stage == "score":
            slice_ = {}
            extra = self.model_identity()
        elif stage == "sort":
            slice_ = {}
        elif stage == "split":
            slice_ = {"groups": {g: float(cfg.groups.get(g, 0.0)) for g in GROUPS}, "seed": cfg.seed,
                      "balance_factors": self.balance_columns()}
            extra = {"factors": self._fingerprints.get("factors")}
        elif stage == "offer":
            slice_ = {"policy": {"kind": cfg.policy.kind, **policy_params(cfg.policy)}}
        else:
            raise KeyError(stage)
        return stage_key(stage, slice_, upstream, extra)

    def balance_columns(self) -> list[str]:
        return list(self.cfg.balance_factors) if self.cfg.balance_factors else list(self.model().features)

    # ----------------------------------------------------------------- stages
    def _compute(self, stage: str) -> tuple[pd.DataFrame, dict]:
        cfg = self.cfg
        d = self.data()
        if stage == "client_base":
            from tasks.data.tables import read_table

            clients = read_table(d["dir"], "clients")
            base = select_client_base(clients, d["date"])
            if len(base) == 0:
                raise DataValidationError("clients", "registration_date",
                                          f"no client registered before the campaign date {d['date'].date()}")
            return base, {"registered_later": int(len(clients) - len(base))}
        if stage == "filters":
            base = self.store.read("client_base")
            needed = [f.column for f in cfg.filters if f.column not in base.columns]
            needed = list(dict.fromkeys(needed))
            frame = base
            if needed:
                known = self.known_factors()
                unknown = [c for c in needed if known is not None and c not in known]
                if unknown:
                    raise ConfigError(
                        f"campaign.filters: column(s) {unknown} are neither clients columns "
                        f"{list(base.columns)} nor known factors")
                extra = self.factor_fn(d["dir"], d["date"], needed, base["client_id"].to_numpy())
                frame = base.merge(extra[["client_id", *needed]], on="client_id", how="left", validate="1:1")
            kept, report = apply_filters(frame, cfg.filters)
            cols = ["client_id", *dict.fromkeys(f.column for f in cfg.filters)]
            return kept[cols], {"filters": report}
        if stage == "subset":
            ids = self.store.read("filters", columns=["client_id"])["client_id"].to_numpy()
            chosen = draw_subset(ids, cfg.sample_fraction, cfg.sample_size, derive_seed(cfg.seed, "subset"))
            rule = ("none" if cfg.sample_fraction is None and cfg.sample_size is None else
                    f"fraction {cfg.sample_fraction}" if cfg.sample_fraction is not None else f"size {cfg.sample_size}")
            return pd.DataFrame({"client_id": chosen}), {"before": int(len(ids)), "kept": int(len(chosen)), "rule": rule}
        if stage == "factors":
            names = self.factor_names()
            known = self.known_factors()
            unknown = [f for f in names if known is not None and f not in known]
            if unknown:
                m = self.model()
                raise ConfigError(
                    f"model {m.name} {m.version} needs feature(s) {unknown} that the factor library cannot "
                    f"supply; retrain the model on available factors or add the factors")
            ids = self.store.read("subset")["client_id"].to_numpy()
            args = [(self.factor_fn, d["dir"], d["date"], names, part) for part in partition_ids(ids, self.partitions)]
            table = concat_partitions(self.mapper(factor_partition, args))
            return table, {"factors": names, "partitions": len(args)}
        if stage == "score":
            m = self.model()
            table = self.store.read("factors")
            missing = missing_model_features(m.features, table.columns)
            if missing:
                raise ConfigError(
                    f"model {m.name} {m.version} needs feature(s) {missing} that the factor stage did not supply "
                    f"(it has {list(table.columns)[1:12]}...)")
            bounds = np.cumsum([0] + [len(p) for p in partition_ids(table["client_id"].to_numpy(), self.partitions)])
            args = [(m, table.iloc[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
            scored = concat_partitions(self.mapper(score_partition, args))
            return scored, {"model": self.model_identity(), "partitions": len(args)}
        if stage == "sort":
            return rank_scores(self.store.read("score")), {}
        if stage == "split":
            ranked = self.store.read("sort")
            assigned = assign_groups(ranked["client_id"].to_numpy(), cfg.groups, derive_seed(cfg.seed, "split"))
            split = ranked.merge(assigned, on="client_id", how="left", validate="1:1")
            cols = self.balance_columns()
            factors_ = self.store.read("factors", columns=["client_id", *[c for c in cols if c != "score"]])
            frame = split[["client_id", "group", "score"]].merge(factors_, on="client_id", how="left")
            balance = balance_check(frame, ["score", *[c for c in cols if c != "score"]], cfg.groups)
            counts = {g: int((split["group"] == g).sum()) for g in GROUPS}
            return split, {"balance": balance, "groups": counts}
        if stage == "offer":
            offers, threshold = assign_offers(self.store.read("split"), cfg.policy)
            return offers, {"threshold": threshold}
        raise KeyError(stage)

    def run_stage(self, stage: str) -> StageOutcome:
        """Reuse ``stage``'s checkpoint when valid, otherwise compute and commit it."""
        if stage == "freeze":
            return self.freeze()
        key = self._stage_key(stage)
        rec = self.store.valid(stage, key)
        if rec is not None:
            outcome = StageOutcome(stage, "reused", rec.rows, rec.seconds, key, rec.info)
        else:
            t0 = time.perf_counter()
            df, info = self._compute(stage)
            rec = self.store.write(stage, key, df, time.perf_counter() - t0, info)
            outcome = StageOutcome(stage, "computed", rec.rows, rec.seconds, key, rec.info)
        self._keys[stage] = key
        self._fingerprints[stage] = rec.fingerprint
        self.outcomes[stage] = outcome
        return outcome

    def freeze(self) -> StageOutcome:
        """Write campaign.parquet, the prediction log, summary.md and (last) manifest.json."""
        from tasks.monitoring.prediction_log import append_predictions, log_dir

        t0 = time.perf_counter()
        cfg = self.cfg
        m = self.model_identity()
        offers = self.store.read("offer")
        table = build_campaign_table(offers, m["version"], cfg.id)
        fault_point("freeze")
        atomic_write_parquet(table, self.table_path)
        frozen_at = _dt.datetime.now(_dt.timezone.utc).isoformat()
        log = pd.DataFrame({
            "time": pd.Timestamp(frozen_at), "source": "campaign", "request_id": cfg.id, "campaign_id": cfg.id,
            "client_id": table["client_id"], "score": table["score"], "decision": table["offer"],
            "model_name": m["name"], "model_version": m["version"],
        })
        append_predictions(log_dir(self.artifacts), log, segment=f"campaign-{cfg.id}")
        recs = {s: self.store.record(s) for s in STAGES[:-1]}
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
            "data": {"name": d["name"], "dir": str(d["dir"]), "manifest_hash": d["hash"]},
            "model": m,
            "factor_set": getattr(self.model(), "factor_set", None),
            "features": list(self.model().features),
            "groups": {g: float(cfg.groups.get(g, 0.0)) for g in GROUPS},
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
        summary = render_summary(manifest)
        atomic_write_text(summary, self.folder / "summary.md")
        atomic_write_json(manifest, self.manifest_path)
        outcome = StageOutcome("freeze", "computed", int(len(table)), seconds, manifest["config_hash"],
                               {"summary": summary})
        self.outcomes["freeze"] = outcome
        return outcome

    def result(self, noop: bool = False) -> CampaignResult:
        """The run's result (the manifest as frozen)."""
        return CampaignResult(self.cfg.id, self.folder, noop, dict(self.outcomes), self.frozen_manifest() or {})


def run_campaign(cfg: CampaignConfig, artifacts: str | Path, partitions: int = 1, until: str | None = None,
                 **kwargs: Any) -> CampaignResult:
    """Run every stage of a campaign without an orchestrator (resume, lock and freeze included).

    An identical rerun of a frozen campaign is a no-op; a frozen campaign with a different
    config raises :class:`StateError`. ``until`` stops after that stage (a preview that
    leaves the campaign unfrozen). ``kwargs`` go to :class:`CampaignRun`.
    """
    if until is not None and until not in STAGES:
        raise ConfigError(f"unknown stage {until!r}; stages are {STAGES}")
    run = CampaignRun(cfg, artifacts, partitions, **kwargs)
    with run.lock:
        if run.check_frozen() is not None:
            return run.result(noop=True)
        run.store.remove_partial_files()
        for stage in STAGES[: STAGES.index(until) + 1 if until else len(STAGES)]:
            run.run_stage(stage)
        return run.result()


def stage_summary(outcome: StageOutcome) -> str:
    """A short Markdown summary of one stage (published as a Prefect artifact)."""
    head = f"### {outcome.stage}: {outcome.status}\n\nrows: {outcome.rows}; seconds: {outcome.seconds:.2f}\n"
    info = {k: v for k, v in outcome.info.items() if k != "summary"}
    if outcome.stage == "filters" and info.get("filters"):
        rows = "\n".join(f"| {f['name']} | {f['before']} | {f['removed']} | {f['after']} |" for f in info["filters"])
        return head + "\n| filter | before | removed | after |\n|---|---|---|---|\n" + rows + "\n"
    if outcome.stage == "split" and "balance" in info:
        b = info["balance"]
        return head + (f"\ngroups: {info['groups']}; balanced: {b['balanced']}; max |SMD| {b['max_abs_smd']:.4f}; "
                       f"SRM p = {b['srm_p_value']:.4f}\n")
    if outcome.stage == "freeze":
        return outcome.info.get("summary", head)
    if info:
        return head + "\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()) + "\n"
    return head
