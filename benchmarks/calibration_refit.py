"""Does the uplift calibration fitted on the held-out split still hold for the registered model?

    python benchmarks/calibration_refit.py [--train-world 101] [--score-worlds 404,505] [--split-seed 42]
                                           [--artifacts artifacts]

Training fits the uplift calibration on the held-out rows' scores of the model fitted on the
training split, and registers the same configuration refitted on every row with that map
(``tasks.modelling.training.refit_uplift_on_all``). This benchmark trains on one 200k
synthetic world (``benchmarks/quality.py`` makes them), then scores the campaign histories of
other worlds of the same generating process, rows neither model saw, with the split model and
with the registered refit, each through the one calibration map, and compares the result with
the worlds' true uplift: per score decile the size-weighted mean |mean calibrated - mean true|
(ECE against the truth), the slope of the true uplift on the calibrated one (1 = right scale),
the means and the top decile. The raw scores are printed beside. The last line is JSON.
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

from benchmarks.quality import model_cfg, world_name  # noqa: E402
from tasks.core.layout import Layout  # noqa: E402


def world(artifacts: Path, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.DataFrame, np.ndarray]:
    """The training set of a benchmark world and each row's true uplift."""
    from factors import factor_set
    from tasks.data.tables import read_table
    from tasks.modelling.training_set import build_training_set

    folder = Layout(artifacts).dataset(world_name(seed))
    if not (folder / "truth.parquet").exists():
        print(f"error: no world {world_name(seed)} under {artifacts}/data; make it with "
              f"python benchmarks/quality.py --only synthetic --world-seeds {seed}", file=sys.stderr)
        sys.exit(2)
    truth = pd.read_parquet(folder / "truth.parquet").set_index("client_id")
    history = read_table(folder, "campaign_history")
    X, t, y = build_training_set(folder, history, factor_set("default"))
    ids = history["client_id"].to_numpy()
    true_uplift = truth["p_treated"].reindex(ids).to_numpy() - truth["p_control"].reindex(ids).to_numpy()
    return X, t, y, history, true_uplift


def against_truth(calibrated: np.ndarray, true_uplift: np.ndarray, score: np.ndarray) -> dict:
    """Calibrated uplift against the true uplift over the deciles of ``score``."""
    decile = pd.qcut(pd.Series(score).rank(method="first"), 10, labels=False)
    g = pd.DataFrame({"c": calibrated, "t": true_uplift, "d": decile}).groupby("d").agg(
        c=("c", "mean"), t=("t", "mean"), n=("c", "size"))
    return {"ece_true": round(float((g["n"] * (g["c"] - g["t"]).abs()).sum() / g["n"].sum()), 5),
            "slope_true_on_calibrated": round(float(np.polyfit(calibrated, true_uplift, 1)[0]), 3),
            "mean_calibrated": round(float(np.mean(calibrated)), 5), "mean_true": round(float(np.mean(true_uplift)), 5),
            "top_decile_calibrated": round(float(g["c"].iloc[-1]), 4), "top_decile_true": round(float(g["t"].iloc[-1]), 4)}


def main() -> None:
    from tasks.modelling.training import train_uplift
    from tasks.modelling.training_set import campaign_propensity

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-world", type=int, default=101)
    ap.add_argument("--score-worlds", default="404,505")
    ap.add_argument("--split-seed", type=int, default=42)
    ap.add_argument("--artifacts", default=str(ROOT / "artifacts"))
    args = ap.parse_args()
    try:
        scored = [int(s) for s in args.score_worlds.split(",") if s.strip()]
    except ValueError:
        print(f"error: --score-worlds {args.score_worlds!r} is not a list of world seeds; e.g. --score-worlds 404,505",
              file=sys.stderr)
        sys.exit(2)
    artifacts = Path(args.artifacts)
    X, t, y, history, true_uplift = world(artifacts, args.train_world)
    t0 = time.perf_counter()
    res = train_uplift(X, t, y, model_cfg("uplift"), seed=args.split_seed, propensity=campaign_propensity(history),
                       groups=history["client_id"].to_numpy(), dates=history["campaign_date"].to_numpy())
    seconds = time.perf_counter() - t0
    refit, split = res.model, res.split_model
    cal = res.calibration or {}
    out: dict = {"train_world": args.train_world, "split_seed": args.split_seed, "approach": res.approach,
                 "train_seconds": round(seconds, 1),
                 "calibration": {k: cal.get(k) for k in ("intercept", "slope", "ece", "ece_calibrated")},
                 "heldout_split_model": against_truth(split.calibrated(res.test_scores), true_uplift[res.test_rows],
                                                      res.test_scores)}
    print(f"world {args.train_world}: {res.approach}, trained in {seconds:.0f} s; calibration slope "
          f"{cal.get('slope', float('nan')):.3f}, intercept {cal.get('intercept', float('nan')):+.4f}")
    for w in scored:
        Xw, _, _, _, truth_w = world(artifacts, w)
        Xw = Xw[list(refit.features)]
        for name, model in (("split", split), ("refit", refit)):
            raw = model.predict(Xw)
            out[f"world{w}_{name}"] = {"calibrated": against_truth(model.calibrated(raw), truth_w, raw),
                                       "raw": against_truth(raw, truth_w, raw), "score_sd": round(float(np.std(raw)), 5)}
            r = out[f"world{w}_{name}"]
            print(f"world {w} {name:5s}: ECE vs truth calibrated {r['calibrated']['ece_true']:.4f} "
                  f"(raw {r['raw']['ece_true']:.4f}), slope of truth on calibrated "
                  f"{r['calibrated']['slope_true_on_calibrated']:.3f}, top decile {r['calibrated']['top_decile_calibrated']:.4f} "
                  f"vs true {r['calibrated']['top_decile_true']:.4f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
