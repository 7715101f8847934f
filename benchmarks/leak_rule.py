"""The leak rule (tasks/modelling/guards.py) on real tables: does it fire where a column is
known only after the outcome, and stay quiet on honest data?

    python benchmarks/leak_rule.py [--shared-data ../shared/data] [--table PATH:TARGET[:POSITIVE]]...

For each dataset, the training set is built as training builds it (conf/data/<name>.yaml),
split as training splits it (``model.test_size``, ``model.seed``), the feature checks run on
the training split, and the univariate ROC-AUC (``max(auc, 1 - auc)``) of the strongest
columns is printed with whether the rule fires. Hillstrom and iFood are read as configured,
with an outcome let in as a feature, and with a planted column recorded after the outcome
(the outcome plus noise, alone as predictive as the bank's call duration in the issue, ROC-AUC
about 0.81) among their real columns. ``--table`` adds any CSV (e.g. a bank's call
campaign with its call ``duration``). Last line: JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from tasks.core.config import from_conf, load_conf  # noqa: E402
from tasks.core.layout import Layout  # noqa: E402
from tasks.modelling.config import ModelConfig  # noqa: E402
from tasks.modelling.guards import LEAK_AUC, LEAK_AUC_CERTAIN, LEAK_RATIO, column_auc, suspected_leaks  # noqa: E402
from tasks.modelling.selection import strata_of  # noqa: E402
from tasks.modelling.training import screen_training_split  # noqa: E402
from tasks.modelling.training_set import load_training_set  # noqa: E402
from tasks.modelling.validation import grouped_split  # noqa: E402


def plant_after_outcome(y: np.ndarray, target_auc: float = 0.81, seed: int = 0) -> np.ndarray:
    """A column recorded after the outcome, like a call's duration: the outcome plus noise,
    the noise scaled so the column alone reaches about ``target_auc`` (0.81: the bank's call
    duration in the issue). For two normal classes with unit noise and shift d, AUC = Phi(d/sqrt 2)."""
    from statistics import NormalDist

    d = NormalDist().inv_cdf(target_auc) * np.sqrt(2)
    return d * y + np.random.default_rng(seed).normal(size=len(y))


def measure(label: str, data: dict, shared: Path, top: int = 5, plant: bool = False, **checks) -> dict:
    ts = load_training_set(data, {}, Layout(PROJECT_ROOT / "artifacts"), shared)
    cfg = from_conf(ModelConfig, "model/uplift", checks=checks) if checks else from_conf(ModelConfig, "model/uplift")
    y = np.asarray(ts.y, dtype=int)
    if plant:
        ts.X = ts.X.assign(after_outcome=plant_after_outcome(y))
    tr, _ = grouped_split(len(y), strata_of(ts.treatment, y), ts.groups, cfg.test_size, cfg.seed)
    X, checks = screen_training_split(ts.X.reset_index(drop=True), tr, y, cfg, cfg.seed)
    Xtr, ytr = X.iloc[tr], y[tr]
    aucs = sorted(((str(c), column_auc(Xtr[c], ytr)) for c in Xtr.columns), key=lambda kv: -np.nan_to_num(kv[1]))
    leaks = suspected_leaks(Xtr, ytr, max_rows=cfg.checks.max_rows, seed=cfg.seed)
    print(f"\n{label}: {len(tr):,} training rows, {X.shape[1]} features (checks dropped {checks.dropped or 'none'})")
    for col, auc in aucs[:top]:
        print(f"  {col:32s} ROC-AUC alone {auc:.3f}")
    edge = [a - 0.5 for _, a in aucs[:2]]
    ratio = edge[0] / edge[1] if len(edge) == 2 and edge[1] > 0 else float("inf")
    print(f"  top edge / next edge: {ratio:.2f}; rule fires: "
          f"{', '.join(d['column'] for d in leaks) if leaks else 'no'}")
    return {"dataset": label, "train_rows": int(len(tr)), "top": [{"column": c, "auc": round(a, 4)} for c, a in aucs[:top]],
            "top_ratio": None if not np.isfinite(ratio) else round(ratio, 3),
            "suspected_leaks": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()} for d in leaks]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared-data", default=str(PROJECT_ROOT.parent / "shared" / "data"))
    parser.add_argument("--table", action="append", default=[], help="PATH:TARGET[:POSITIVE] of another table")
    args = parser.parse_args()
    shared = Path(args.shared_data).resolve()
    print(f"leak rule: ROC-AUC alone >= {LEAK_AUC} and edge over 0.5 >= {LEAK_RATIO} x the next column's "
          f"(near-copies aside), or ROC-AUC >= {LEAK_AUC_CERTAIN}")
    from omegaconf import OmegaConf

    def conf(name: str, **over) -> dict:
        node = OmegaConf.to_container(load_conf(f"data/{name}"), resolve=False)
        node.update(over)
        node["path"] = str(node["path"]).replace("${paths.shared_data}", str(shared))
        return node

    out = []
    if shared.is_dir():
        out.append(measure("hillstrom (visit, outcomes excluded)", conf("hillstrom"), shared))
        out.append(measure("hillstrom (visit, spend let in: converters only, a weak outcome)",
                           conf("hillstrom", known_after=["visit", "conversion"]), shared))
        out.append(measure("hillstrom (visit, a planted after-outcome column of AUC ~0.81)", conf("hillstrom"), shared,
                           plant=True))
        out.append(measure("hillstrom (conversion, spend let in, single-predictor check off)",
                           conf("hillstrom", target="conversion", known_after=["visit"]), shared,
                           single_predictor="off"))
        out.append(measure("ifood (Response)", conf("ifood"), shared))
        out.append(measure("ifood (Response, a planted after-outcome column of AUC ~0.81)", conf("ifood"), shared,
                           plant=True))
        one_click = OmegaConf.to_container(load_conf("data/one_click"), resolve=False)
        out.append(measure("one_click (activity decline)", one_click, shared))
    else:
        print(f"real datasets not found at {shared}")
    for spec in args.table:
        path, target, *positive = spec.split(":")
        data = {"kind": "table", "path": path, "target": target, **({"positive": positive[0]} if positive else {})}
        out.append(measure(f"{Path(path).name} ({target})", data, shared))
    print(json.dumps({"rule": {"auc": LEAK_AUC, "ratio": LEAK_RATIO, "certain": LEAK_AUC_CERTAIN}, "datasets": out}))


if __name__ == "__main__":
    main()
