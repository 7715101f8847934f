"""The campaign workbench: every campaign under ``<artifacts>/campaigns``, its state, its
headline effect, one campaign in detail, and the offer list for the sending system.

Pure reads of the folder layout (:mod:`tasks.core.layout`): nothing here computes or changes
a campaign; :func:`export_offer_list` only adds the offer list beside campaign.parquet. The
command line is :mod:`flows.campaigns`. A campaign's state, from its files:

- ``empty``      a folder without a stage checkpoint;
- ``running``    a run holds the campaign's lock now;
- ``computed``   stage checkpoints only: not frozen (yet); a rerun resumes from them;
- ``frozen``     campaign.parquet and manifest.json: the offers are fixed;
- ``responses``  responses.parquet is there too: ready to evaluate;
- ``evaluated``  the evaluation's metrics.json is there and not older than the freeze;
- ``damaged``    manifest.json (or the evaluation's metrics.json) cannot be read.

Files are read defensively: one broken folder shows as ``damaged`` with the reason, and the
other campaigns are listed as usual.
"""
from __future__ import annotations

import datetime as _dt
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from tasks.campaign.checkpoints import Checkpoint
from tasks.campaign.config import GROUPS
from tasks.campaign.stages import CHECKPOINTED, STAGES, checkpoint_store
from tasks.core.errors import ConfigError, NotFoundError, StateError
from tasks.core.io import atomic_write, read_json
from tasks.core.layout import EVALUATION_REPORTS, CampaignPaths, Layout
from tasks.core.locks import PidLock
from tasks.core.report import fmt_value

STATES = ("empty", "running", "computed", "frozen", "responses", "evaluated", "damaged")
OFFER_LIST_COLUMNS = ["client_id", "group", "offer", "score", "rank"]
EXPORT_FORMATS = ("csv", "parquet")
NA = "n/a"


# --------------------------------------------------------------------------- the headline effect
@dataclass(frozen=True)
class Headline:
    """The evaluation's primary effect with its confidence interval."""

    estimate: float
    ci_low: float
    ci_high: float
    level: float = 0.95
    outcome: str = "response"
    p_value: float | None = None
    label: str = "targeted vs control above the score cutoff"


def _finite(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def headline_effect(metrics: Mapping[str, Any]) -> Headline | None:
    """The targeted-vs-control response effect of an evaluation's metrics.json, or None.

    The one place that knows where metrics.json keeps it: ``primary`` when the evaluation
    names its primary endpoint, else ``targeted_vs_control.response`` (the offer's effect on
    the response rate of the clients the model chose). None when neither holds a finite
    estimate with its interval.
    """
    for path in (("primary",), ("targeted_vs_control", "response")):
        node: Any = metrics
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping) and _finite(node.get("estimate"), node.get("ci_low"), node.get("ci_high")):
            alpha = metrics.get("alpha")
            p = node.get("p_value")
            return Headline(float(node["estimate"]), float(node["ci_low"]), float(node["ci_high"]),
                            level=1 - float(alpha) if _finite(alpha) else 0.95,
                            outcome=str(node.get("outcome", path[-1] if len(path) > 1 else "response")),
                            p_value=float(p) if _finite(p) else None,
                            label=str(node.get("label") or Headline.label))
    return None


def fmt_headline(h: Headline | None, long: bool = False) -> str:
    """``+1.23 pp [+0.50, +1.96]`` (response rates in percentage points), or ``n/a``."""
    if h is None:
        return NA
    if h.outcome == "response":
        num = lambda v: f"{100 * v:+.2f}"  # noqa: E731
        unit = " pp"
    else:
        num = lambda v: f"{v:+,.2f}"  # noqa: E731
        unit = ""
    level = f"{100 * h.level:.0f}% CI"
    if long:
        p = f", p = {h.p_value:.2g}" if h.p_value is not None else ""
        return f"{num(h.estimate)}{unit} ({level} {num(h.ci_low)} to {num(h.ci_high)}{p})"
    tail = "" if abs(h.level - 0.95) < 1e-9 else f" {level}"
    return f"{num(h.estimate)}{unit} [{num(h.ci_low)}, {num(h.ci_high)}]{tail}"


# --------------------------------------------------------------------------- one campaign's state
@dataclass(frozen=True)
class CampaignEntry:
    """One line of the listing."""

    campaign_id: str
    folder: Path
    state: str
    date: str | None = None
    dataset: str | None = None
    model: str | None = None
    policy: str | None = None
    clients: int | None = None
    offers: int | None = None
    stages_done: int = 0
    effect: Headline | None = None
    note: str = ""


def _read(path: Path) -> tuple[Any, str]:
    """(content of a JSON file, '') or (None, why it cannot be read)."""
    try:
        return read_json(path), ""
    except (OSError, ValueError) as exc:
        return None, f"{path.name} unreadable ({type(exc).__name__})"


def _when(text: Any) -> _dt.datetime | None:
    try:
        t = _dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def fmt_policy(policy: Mapping[str, Any] | None) -> str | None:
    """``top_fraction=0.3``, ``profit (margin=20, contact_cost=1)``: the offer policy in one cell."""
    if not isinstance(policy, Mapping):
        return None
    kind = str(policy.get("kind", "?"))
    params = {k: v for k, v in _dict(policy.get("params")).items() if v is not None}
    if list(params) == [kind]:
        return f"{kind}={fmt_value(params[kind])}"
    inner = ", ".join(f"{k}={fmt_value(v)}" for k, v in params.items())
    return f"{kind} ({inner})" if inner else kind


def _dict(node: Any) -> dict:
    """``node`` when it is a mapping, else an empty dict (a hand-edited file may hold anything)."""
    return dict(node) if isinstance(node, Mapping) else {}


def _model_name(model: Any) -> str | None:
    model = _dict(model)
    return " ".join(str(model[k]) for k in ("name", "version") if model.get(k)) or None


def _records(paths: CampaignPaths) -> dict[str, Checkpoint]:
    store = checkpoint_store(paths)
    out = {}
    for s in CHECKPOINTED:
        rec = store.record(s)
        if rec is not None:
            out[s] = rec
    return out


def _evaluation(layout: Layout, cid: str, frozen_at: Any) -> tuple[dict | None, str, bool]:
    """(metrics of the campaign's evaluation, note, broken): metrics None when absent,
    unreadable (broken) or older than the freeze (stale: a note says so)."""
    path = layout.evaluation_metrics(cid)
    if not path.exists():
        return None, "", False
    metrics, why = _read(path)
    if not isinstance(metrics, dict):
        return None, why or "metrics.json is not a JSON object", True
    done, frozen = _when(metrics.get("evaluated_at")), _when(frozen_at)
    if done is not None and frozen is not None and done < frozen:
        return None, "evaluation older than the frozen campaign: evaluate again", False
    return metrics, "", False


def campaign_entry(layout: Layout, paths: CampaignPaths) -> CampaignEntry:
    """The state and headline figures of the campaign in ``paths`` (see the module docstring)."""
    cid = paths.folder.name
    records = _records(paths)
    if paths.manifest.exists() and paths.table.exists():
        m, why = _read(paths.manifest)
        if not isinstance(m, dict):
            return CampaignEntry(cid, paths.folder, "damaged", stages_done=len(records),
                                 note=why or "manifest.json is not a JSON object")
        counts = _dict(m.get("counts"))
        state = "responses" if paths.responses.exists() else "frozen"
        metrics, note, broken = _evaluation(layout, cid, m.get("frozen_at"))
        if broken:
            state = "damaged"
        elif metrics is not None:
            state = "evaluated"
        return CampaignEntry(
            cid, paths.folder, state, date=m.get("campaign_date"), dataset=_dict(m.get("data")).get("name"),
            model=_model_name(m.get("model")),
            policy=fmt_policy(m.get("policy")), clients=counts.get("clients"), offers=counts.get("offers_total"),
            stages_done=len(STAGES), effect=headline_effect(metrics) if metrics else None, note=note)
    running = paths.lock.exists() and PidLock(paths.lock).busy()
    state = "running" if running else "computed" if records else "empty"
    last = records[max(records, key=CHECKPOINTED.index)] if records else None
    note = ("freeze did not finish: run the campaign again" if paths.table.exists() else
            "campaign.parquet is missing" if paths.manifest.exists() else "")
    return CampaignEntry(cid, paths.folder, state,
                         model=_model_name(records["score"].info.get("model")) if "score" in records else None,
                         clients=last.rows if last else None, stages_done=len(records), note=note)


def list_campaigns(artifacts: str | Path) -> list[CampaignEntry]:
    """Every campaign folder under ``<artifacts>/campaigns``, by id."""
    layout = Layout(artifacts)
    return [campaign_entry(layout, p) for p in layout.campaign_folders()]


def find_campaign(artifacts: str | Path, campaign_id: str) -> CampaignPaths:
    """The folder of campaign ``campaign_id``; NotFoundError naming the campaigns there."""
    layout = Layout(artifacts)
    paths = layout.campaign(campaign_id)
    if campaign_id and "/" not in campaign_id and paths.folder.is_dir():
        return paths
    known = [p.folder.name for p in layout.campaign_folders()]
    near = difflib.get_close_matches(campaign_id, known, n=1, cutoff=0.5)
    hint = f"did you mean campaign_id={near[0]}? " if near else ""
    listing = f"campaigns there: {', '.join(known)}" if known else "there are no campaigns yet (python -m flows.campaign)"
    raise NotFoundError(f"no campaign {campaign_id!r} in {layout.campaigns}; {hint}{listing}")


# --------------------------------------------------------------------------- one campaign in detail
@dataclass
class CampaignDetail:
    """What ``python -m flows.campaigns show`` prints."""

    entry: CampaignEntry
    manifest: dict = field(default_factory=dict)
    stages: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)
    threshold: dict = field(default_factory=dict)
    files: list[tuple[str, Path]] = field(default_factory=list)
    evaluation: dict | None = None


def describe_campaign(artifacts: str | Path, campaign_id: str) -> CampaignDetail:
    """Stages, groups, threshold, files and evaluation summary of one campaign."""
    layout = Layout(artifacts)
    paths = find_campaign(artifacts, campaign_id)
    entry = campaign_entry(layout, paths)
    detail = CampaignDetail(entry)
    m, _ = _read(paths.manifest) if paths.manifest.exists() else (None, "")
    if isinstance(m, dict) and paths.table.exists():
        detail.manifest = m
        stages = _dict(m.get("stages"))
        order = [s for s in STAGES if s in stages] + sorted(s for s in stages if s not in STAGES)
        detail.stages = [{"stage": s, "rows": stages[s].get("rows"), "seconds": stages[s].get("seconds")}
                         for s in order if isinstance(stages[s], Mapping)]
        counts, shares = _dict(m.get("counts")), _dict(m.get("groups"))
        detail.groups = [{"group": g, "share": shares.get(g), "clients": _dict(counts.get("groups")).get(g),
                          "offers": _dict(counts.get("offers")).get(g)} for g in GROUPS]
        detail.groups.append({"group": "total", "share": None, "clients": counts.get("clients"),
                              "offers": counts.get("offers_total")})
        detail.threshold = _dict(m.get("threshold"))
    else:
        records = _records(paths)
        detail.stages = [{"stage": s, "rows": r.rows, "seconds": r.seconds} for s, r in records.items()]
        detail.stages += [{"stage": s, "rows": None, "seconds": None} for s in STAGES if s not in records]
        if "offer" in records:
            detail.threshold = _dict(records["offer"].info.get("threshold"))
    candidates = [("campaign table", paths.table), ("manifest", paths.manifest), ("summary", paths.summary),
                  ("responses", paths.responses)]
    candidates += [(f"offer list ({fmt})", paths.offer_list(fmt)) for fmt in EXPORT_FORMATS]
    candidates += [("stage checkpoints", paths.stage_dir)]
    ev_dir = layout.evaluation(entry.campaign_id)
    candidates += [("evaluation metrics", layout.evaluation_metrics(entry.campaign_id))]
    candidates += [(f"evaluation report ({n.rsplit('.', 1)[1]})", ev_dir / n) for n in EVALUATION_REPORTS]
    detail.files = [(label, p) for label, p in candidates if p.exists()]
    if entry.state == "evaluated":
        metrics, _ = _read(layout.evaluation_metrics(entry.campaign_id))
        detail.evaluation = evaluation_summary(metrics or {})
    return detail


def evaluation_summary(metrics: Mapping[str, Any]) -> dict:
    """The few evaluation figures the workbench shows; keys absent from metrics.json are left out."""
    out: dict[str, Any] = {"headline": headline_effect(metrics), "evaluated_at": metrics.get("evaluated_at")}
    srm = metrics.get("srm")
    if isinstance(srm, Mapping) and "mismatch" in srm:
        out["sample_ratio_mismatch"] = bool(srm["mismatch"])
    checks = metrics.get("checks")
    if isinstance(checks, Mapping) and isinstance(checks.get("failed"), list):
        out["failed_checks"] = [str(c) for c in checks["failed"]]
    return out


# --------------------------------------------------------------------------- the offer list
def offer_list(artifacts: str | Path, campaign_id: str) -> pd.DataFrame:
    """client_id, group, offer, score, rank of a frozen campaign, by rank."""
    paths = find_campaign(artifacts, campaign_id)
    if not paths.is_frozen():
        raise StateError(f"campaign {campaign_id!r} is not frozen (no campaign.parquet and manifest.json in "
                         f"{paths.folder}); finish it first: run the same python -m flows.campaign command again")
    return pd.read_parquet(paths.table, columns=OFFER_LIST_COLUMNS)


def export_offer_list(artifacts: str | Path, campaign_id: str, fmt: str = "csv") -> tuple[Path, pd.DataFrame]:
    """Write the offer list of a frozen campaign beside its campaign.parquet, atomically.

    CSV: comma-separated with a header, ``offer`` as 1/0, scores at full precision; Parquet:
    the same columns with their types. Returns the file and the rows written.
    """
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"format={fmt!r} is not an export format; use one of {', '.join(EXPORT_FORMATS)} "
                          f"(e.g. python -m flows.campaigns export campaign_id={campaign_id} format=csv)")
    rows = offer_list(artifacts, campaign_id)
    path = find_campaign(artifacts, campaign_id).offer_list(fmt)
    if fmt == "csv":
        out = rows.assign(offer=rows["offer"].astype("int8"))
        atomic_write(path, lambda tmp: out.to_csv(tmp, index=False, float_format=None, lineterminator="\n"))
    else:
        atomic_write(path, lambda tmp: rows.to_parquet(tmp, index=False))
    return path, rows


# --------------------------------------------------------------------------- text for the console
def text_table(rows: list[dict], columns: list[str], right: tuple[str, ...] = ()) -> list[str]:
    """Rows as aligned console lines (header first); ``right`` columns are right-aligned."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if c in right else v.ljust(w)
                         for v, w, c in zip(values, widths, columns)).rstrip()

    return [line(columns)] + [line(row) for row in cells]


def _num(v: Any) -> str:
    return NA if v is None else f"{v:,}" if isinstance(v, int) else fmt_value(v, missing=NA)


def _secs(v: Any) -> str:
    return f"{float(v):.2f}" if _finite(v) else "-"


def render_listing(entries: list[CampaignEntry], root: str | Path) -> str:
    """The table ``python -m flows.campaigns`` prints."""
    if not entries:
        return f"no campaigns in {Layout(root).campaigns}; calculate one with python -m flows.campaign"
    rows = [{"id": e.campaign_id, "date": e.date or "-", "dataset": e.dataset or "-", "model": e.model or "-",
             "policy": e.policy or "-", "clients": _num(e.clients), "offers": _num(e.offers),
             "state": e.state + (f" ({e.stages_done}/{len(CHECKPOINTED)})" if e.state in ("computed", "running") else ""),
             "effect [95% CI]": fmt_headline(e.effect) if e.state == "evaluated" else "n/a"} for e in entries]
    lines = [f"{len(entries)} campaign(s) in {Layout(root).campaigns.resolve()}", ""]
    lines += text_table(rows, list(rows[0]), right=("clients", "offers"))
    notes = [f"  {e.campaign_id}: {e.note}" for e in entries if e.note]
    if notes:
        lines += ["", "notes:", *notes]
    lines += ["", "effect: offered targeted vs control above the score cutoff, response rate in percentage points.",
              "One campaign in detail: python -m flows.campaigns show campaign_id=<id>"]
    return "\n".join(lines)


def render_detail(d: CampaignDetail) -> str:
    """The page ``python -m flows.campaigns show campaign_id=<id>`` prints."""
    e, m = d.entry, d.manifest
    progress = f"{e.stages_done} of {len(CHECKPOINTED)} checkpoints" if e.state in ("computed", "running") else ""
    lines = [f"campaign {e.campaign_id}: {e.state}" + "".join(f" ({x})" for x in (progress, e.note) if x),
             f"  folder   {e.folder.resolve()}"]
    if m:
        model = _dict(m.get("model"))
        lines += [f"  date     {e.date}   dataset {e.dataset}   frozen at {m.get('frozen_at', '-')}",
                  f"  model    {e.model} ({model.get('kind', '-')}, sha256 {str(model.get('sha256') or '-')[:12]})",
                  f"  policy   {e.policy}"]
    elif e.model:
        lines.append(f"  model    {e.model}")
    if d.threshold:
        t = d.threshold
        lines.append(f"  threshold: offer in the targeted group when score >= {fmt_value(t.get('score_cutoff'), missing='-')}"
                     f" ({_num(t.get('targeted_offers'))} of {_num(t.get('targeted'))} targeted clients)")
    lines += ["", "stages:"]
    lines += ["  " + x for x in text_table(
        [{"stage": s["stage"], "rows": _num(s["rows"]) if s["rows"] is not None else "not yet",
          "seconds": _secs(s["seconds"])} for s in d.stages], ["stage", "rows", "seconds"], right=("rows", "seconds"))]
    if d.groups:
        lines += ["", "groups:"]
        lines += ["  " + x for x in text_table(
            [{"group": g["group"], "share": "" if g["share"] is None else fmt_value(g["share"]),
              "clients": _num(g["clients"]), "offers": _num(g["offers"])} for g in d.groups],
            ["group", "share", "clients", "offers"], right=("share", "clients", "offers"))]
    if d.evaluation is not None:
        ev = d.evaluation
        h = ev["headline"]
        lines += ["", f"evaluation (at {ev.get('evaluated_at') or '-'}):",
                  f"  primary effect: {h.label if h else 'targeted vs control'}, "
                  f"{'response rate' if not h or h.outcome == 'response' else h.outcome}: {fmt_headline(h, long=True)}"]
        if "sample_ratio_mismatch" in ev:
            lines.append(f"  sample-ratio mismatch: {'YES: the split is suspect' if ev['sample_ratio_mismatch'] else 'no'}")
        if ev.get("failed_checks"):
            lines.append(f"  failed checks: {', '.join(ev['failed_checks'])}")
    elif e.state in ("frozen", "responses"):
        nxt = ("python -m flows.evaluate campaign_id=" + e.campaign_id if e.state == "responses" else
               "give it responses, then python -m flows.evaluate campaign_id=" + e.campaign_id)
        lines += ["", f"not evaluated yet: {nxt}"]
    lines += ["", "files:"]
    width = max((len(label) for label, _ in d.files), default=0)
    lines += [f"  {label.ljust(width)}  {p.resolve()}" for label, p in d.files] or ["  none"]
    return "\n".join(lines)


def render_stage_outcomes(stages: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The stage table a campaign run prints when it ends: stage, status, rows, seconds."""
    rows = [{"stage": s, "status": v.get("status", "-"), "rows": _num(v.get("rows")), "seconds": _secs(v.get("seconds"))}
            for s, v in stages.items()]
    return text_table(rows, ["stage", "status", "rows", "seconds"], right=("rows", "seconds"))
