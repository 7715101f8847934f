"""One uplift learner, no CV choice, on the quality benchmark's worlds and splits, measured on the true uplift.

    python benchmarks/learners.py [--world-seeds 101,202,303] [--split-seeds 42,1,2]
                                  [--approach x_learner] [--add tenure_days] [--drop tenure_days_1095]
                                  [--lgbm num_leaves=8 ...] [--artifacts artifacts]

For each 200k world of ``benchmarks/quality.py`` (which generates them) and each split
seed: the training set of the default factor set (with ``--add`` factors added and ``--drop``
factors left out), the client-grouped train / hold-out split training uses
(``tasks.modelling.validation.grouped_split``), one fit of ``--approach`` with the default
LightGBM settings of conf/model/uplift.yaml (``--lgbm key=value`` overrides them) and each
campaign's own design propensity, and the true-gain ratio of its held-out scores
(``tasks.analytics.oracle.true_gain_ratio``). Without the CV choice, one change (a factor, a
learner, a setting) is measured on the same rows in seconds per fit; run it twice and pair the
cases to compare two changes. Prints one line per case; the last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tasks.core.config import compose_config  # noqa: E402


def parse_value(text: str) -> object:
    """``8`` -> 8, ``0.5`` -> 0.5, anything else stays text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world-seeds", default="101,202,303")
    ap.add_argument("--split-seeds", default="42,1,2")
    ap.add_argument("--approach", default="x_learner")
    ap.add_argument("--add", nargs="*", default=[], help="factors added to the default set")
    ap.add_argument("--drop", nargs="*", default=[], help="factors of the default set left out")
    ap.add_argument("--lgbm", nargs="*", default=[], help="LightGBM settings over the default ones, key=value")
    ap.add_argument("--artifacts", default=str(ROOT / "artifacts"))
    args = ap.parse_args()

    from factors import factor_set
    from factors.sets import validate_names
    from tasks.analytics.oracle import true_gain_ratio
    from tasks.core.layout import Layout
    from tasks.data.tables import read_table
    from tasks.modelling.models import UpliftModel
    from tasks.modelling.selection import strata_of
    from tasks.modelling.training_set import build_training_set, campaign_propensity
    from tasks.modelling.validation import grouped_split

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from quality import world_name  # the benchmark worlds' names: one home

    default = factor_set("default")
    unknown = [f for f in args.drop if f not in default]
    if unknown:
        ap.error(f"--drop: {unknown} not in the default factor set; see conf/factors/default.yaml")
    try:
        names = validate_names([f for f in default if f not in args.drop] + [f for f in args.add if f not in default],
                               "--add")
    except Exception as exc:  # an unknown or repeated factor name: one line, exit 2
        ap.error(str(exc))
    model = compose_config(["model=uplift"]).model
    params = dict(model.lgbm)
    for item in args.lgbm:
        key, sep, value = item.partition("=")
        if not sep or key not in params:
            ap.error(f"--lgbm {item!r}: expected key=value with a key of {sorted(params)}")
        params[key] = parse_value(value)

    layout = Layout(args.artifacts)
    cases = []
    for w in (int(s) for s in args.world_seeds.split(",")):
        name = world_name(w)
        if not layout.dataset_manifest(name).exists():
            ap.error(f"world {name} is not in {args.artifacts}/data; generate it first: python -m flows.generate "
                     f"data.n_clients=200000 data.name={name} data.seed={w} paths.artifacts={args.artifacts}")
        data_dir = layout.dataset(name)
        history = read_table(data_dir, "campaign_history")
        X, t, y = build_training_set(data_dir, history, names)
        tt = pd.read_parquet(data_dir / "truth.parquet").set_index("client_id")
        ids = history["client_id"].to_numpy()
        tu = tt["p_treated"].reindex(ids).to_numpy() - tt["p_control"].reindex(ids).to_numpy()
        e = campaign_propensity(history)
        for split in (int(s) for s in args.split_seeds.split(",")):
            tr, te = grouped_split(len(X), strata_of(t, y), ids, float(model.test_size), split)
            t0 = time.perf_counter()
            fitted = UpliftModel(args.approach, params, split).fit(
                X.iloc[tr].reset_index(drop=True), t[tr], y[tr], int(model.dr_folds), propensity=e[tr])
            ratio = true_gain_ratio(fitted.predict(X.iloc[te]), tu[te])
            cases.append({"world_seed": w, "split_seed": split, "true_gain_ratio": ratio,
                          "seconds": time.perf_counter() - t0})
            print(f"world {w} split {split}: {args.approach} on {len(names)} factors, true-gain ratio {ratio:.4f} "
                  f"({cases[-1]['seconds']:.0f} s)", flush=True)
    mean = float(np.mean([c["true_gain_ratio"] for c in cases]))
    print(f"{args.approach}, {len(names)} factors: mean true-gain ratio {mean:.4f} over {len(cases)} cases", flush=True)
    print(json.dumps({"benchmark": "learners", "approach": args.approach, "factors": len(names), "added": args.add,
                      "dropped": args.drop, "lgbm": params, "true_gain_ratio_mean": mean, "cases": cases}))


if __name__ == "__main__":
    main()
