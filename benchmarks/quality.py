"""Model quality and training speed.

    python benchmarks/quality.py [--only synthetic,hillstrom,ifood,speed] [--artifacts artifacts]

* synthetic: 200k-client worlds (``python -m flows.generate data.n_clients=200000
  data.seed=S data.name=bench200k_seedS``, generated here when missing); per world and per
  train/hold-out split (``--split-seeds``, each a full training with CV choice), the chosen
  model's held-out Qini AUC divided by the oracle's (ranking the same held-out rows by the
  true uplift from truth.parquet, same realised outcomes). One 30% hold-out has ~2,200
  responders, so that ratio moves by a few hundredths from split to split; two figures
  without that noise come beside it: the same ratio in expectation over the outcomes (each
  held-out client's response probability in its arm in place of its 0/1 response) and the
  share of the oracle's gain measured on the true uplift (no outcomes, no arms). Training
  never reads the truth. Beside them, the chosen model's uplift calibration on the hold-out:
  expected calibration error (size-weighted mean |observed - predicted| over score deciles) of
  the raw score and of the calibrated uplift, the calibration slope, and the error of the
  calibrated uplift against the true uplift (mean |calibrated - true| per held-out client).
  Training splits by client and also reports an out-of-time hold-out (the latest campaign,
  fitted on the earlier ones): its Qini AUC with CI and its true-gain ratio. The default worlds (seeds 101, 202, 303) were not used for any
  modelling or factor choice; seeds 7, 11 and 42 were (``--world-seeds 7,11,42``).
* hillstrom: Womens E-Mail vs No E-Mail, target visit, stratified (treatment x target) 70/30
  split, 5 seeds; candidates chosen by CV inside the training split; mean/sd of held-out
  uplift@30% (overall) and Qini AUC.
* ifood: Response, 5-fold x 3 repeated stratified CV ROC-AUC; in every outer fold the
  project's checks run on the training part (dropping constant and sum-of-others columns)
  and the grid is chosen by inner CV on the training part.
* speed: wall time of fitting the two-model approach on 500k rows.

Prints human lines, then one JSON object as the last line.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sklearn.model_selection import RepeatedStratifiedKFold  # noqa: E402

from tasks.analytics.metrics import response_metrics  # noqa: E402
from tasks.core.config import compose_config, to_dataclass  # noqa: E402
from tasks.data.datasets import TabularDataConfig, feature_frame, load_tabular_dataset  # noqa: E402
from tasks.modelling.checks import screen_features  # noqa: E402
from tasks.modelling.config import ModelConfig  # noqa: E402
from tasks.modelling.models import ResponseModel, UpliftModel  # noqa: E402
from tasks.modelling.selection import select_response  # noqa: E402
from tasks.modelling.training import train_uplift  # noqa: E402


def model_cfg(name: str, *overrides: str) -> ModelConfig:
    node = compose_config([f"model={name}", *overrides]).model
    return to_dataclass(node, ModelConfig, "model")


def data_cfg(name: str, shared: Path) -> TabularDataConfig:
    """conf/data/<name>.yaml (a table dataset) with its files under ``shared``."""
    node = compose_config([f"data={name}", f"paths.shared_data={shared}"]).data
    return to_dataclass(node, TabularDataConfig, "data")


def world_name(seed: int) -> str:
    """Name of the 200k benchmark world of a seed (seed 42 keeps its historical name)."""
    return "bench200k" if seed == 42 else f"bench200k_seed{seed}"


def bench_synthetic(artifacts: Path, name: str = "bench200k", n_clients: int = 200_000, seed: int = 42,
                    split_seeds: tuple[int, ...] = (42,)) -> dict:
    """One world: build the training set once, then per split seed train (CV choice inside the
    training part) and measure the chosen model on the held-out rows against the oracle."""
    from factors import factor_set
    from tasks.analytics.oracle import expected_qini_ratio, oracle_measures, true_gain_ratio
    from tasks.core.io import sha256_file
    from tasks.core.layout import Layout
    from tasks.data.tables import read_table
    from tasks.modelling.training_set import build_training_set, campaign_propensity

    layout = Layout(artifacts)
    data_dir = layout.dataset(name)
    manifest = layout.dataset_manifest(name)
    if not manifest.exists():
        print(f"generating {name} ({n_clients} clients) ...", flush=True)
        subprocess.run([sys.executable, "-m", "flows.generate", f"data.n_clients={n_clients}",
                        f"data.name={name}", f"data.seed={seed}", f"paths.artifacts={artifacts}"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL,
                       env={**os.environ, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600"})
    manifest_hash = sha256_file(manifest)
    truth = pd.read_parquet(data_dir / "truth.parquet").set_index("client_id")
    t0 = time.perf_counter()
    history = read_table(data_dir, "campaign_history")
    X, t, y = build_training_set(data_dir, history, factor_set("default"))
    t_build = time.perf_counter() - t0
    ids = history["client_id"].to_numpy()
    p_control = truth["p_control"].reindex(ids).to_numpy()
    p_treated = truth["p_treated"].reindex(ids).to_numpy()
    cfg = model_cfg("uplift")
    splits = []
    for split in split_seeds:
        t0 = time.perf_counter()
        res = train_uplift(X, t, y, cfg, seed=split, propensity=campaign_propensity(history),
                           groups=history["client_id"].to_numpy(), dates=history["campaign_date"].to_numpy())
        t_train = time.perf_counter() - t0
        rows = res.test_rows
        if sha256_file(manifest) != manifest_hash:
            raise SystemExit(f"{data_dir} was regenerated during the benchmark; run it again")
        tu = p_treated[rows] - p_control[rows]
        score = res.test_scores
        oracle = oracle_measures(res.test_y, res.test_treatment, tu, k=cfg.k)
        model_q = res.heldout["qini_auc"]["value"]
        expected = expected_qini_ratio(score, p_control[rows], p_treated[rows], res.test_treatment)
        cal = res.calibration or {}
        calibrated = res.model.calibrated(score) if hasattr(res.model, "calibrated") else score
        item = {
            "uplift_ece": cal.get("ece"), "uplift_ece_calibrated": cal.get("ece_calibrated"),
            "calibration_slope": cal.get("slope"),
            "true_uplift_mae_raw": float(np.mean(np.abs(score - tu))),
            "true_uplift_mae_calibrated": float(np.mean(np.abs(calibrated - tu))),
            "split_seed": split, "approach": res.approach, "heldout_rows": int(len(rows)),
            "model_qini_auc": model_q, "oracle_qini_auc": oracle["qini_auc"],
            "qini_ratio": model_q / oracle["qini_auc"],
            "expected_qini_ratio": expected["ratio"], "true_gain_ratio": true_gain_ratio(score, tu),
            "model_uplift_at_30": res.heldout["uplift_at_k"]["value"], "oracle_uplift_at_30": oracle["uplift_at_k"],
            "train_seconds": t_train,
            **out_of_time(res, p_treated, p_control),
            "cv": res.cv[["approach", "cv_qini_auc", "cv_uplift_at_k"]].to_dict(orient="records"),
        }
        splits.append(item)
        print(f"synthetic {name} split {split}: {len(X)} rows, chosen {res.approach}; held-out Qini AUC "
              f"{model_q:.4f} vs oracle {oracle['qini_auc']:.4f} -> ratio {item['qini_ratio']:.3f}; "
              f"expected over outcomes {item['expected_qini_ratio']:.3f}, on true uplift "
              f"{item['true_gain_ratio']:.3f} (train {t_train:.0f}s); calibration ECE raw "
              f"{item['uplift_ece'] or float('nan'):.4f}, calibrated {item['uplift_ece_calibrated'] or float('nan'):.4f}, "
              f"slope {item['calibration_slope'] or float('nan'):.3f}; mean |uplift - true| raw "
              f"{item['true_uplift_mae_raw']:.4f}, calibrated {item['true_uplift_mae_calibrated']:.4f}; "
              f"out of time ({item['oot_date']}, {item['oot_rows']} rows): Qini AUC {item['oot_qini_auc']:.4f} "
              f"[{item['oot_qini_ci'][0]:.4f}, {item['oot_qini_ci'][1]:.4f}], true-gain ratio "
              f"{item['oot_true_gain_ratio']:.3f}", flush=True)
    out = {"world_seed": seed, "rows": int(len(X)), "features": len(X.columns), "build_seconds": t_build,
           "splits": splits}
    for key in ("qini_ratio", "expected_qini_ratio", "true_gain_ratio", "oot_true_gain_ratio"):
        out[f"{key}_mean"] = float(np.mean([sp[key] for sp in splits]))
    for key in ("uplift_ece", "uplift_ece_calibrated"):
        vals = [sp[key] for sp in splits if sp[key] is not None]
        out[f"{key}_mean"] = float(np.mean(vals)) if vals else None
    return out


def out_of_time(res, p_treated: np.ndarray, p_control: np.ndarray) -> dict:
    """The out-of-time hold-out (the latest campaign, fitted on the earlier ones): its Qini AUC
    with CI as training reports it, and its true-gain ratio against the world's true uplift."""
    from tasks.analytics.oracle import true_gain_ratio

    oot = res.validation.get("out_of_time") or {}
    if "qini_auc" not in oot or res.out_of_time_scores is None:
        raise SystemExit(f"no out-of-time hold-out in this world ({oot or 'one campaign date'})")
    rows, scores = res.out_of_time_scores
    q = oot["qini_auc"]
    return {"oot_date": oot["date"], "oot_rows": int(len(rows)), "oot_train_rows": oot["train_rows"],
            "oot_qini_auc": q["value"], "oot_qini_ci": [q["ci_low"], q["ci_high"]],
            "oot_true_gain_ratio": true_gain_ratio(scores, p_treated[rows] - p_control[rows])}


def hillstrom_baseline(X_plain, t: np.ndarray, y: np.ndarray, seed: int, test_size: float) -> float:
    """What a user gets by hand on the same split: scikit-uplift's SoloModel around a
    default LightGBM on the raw (one-hot) columns; uplift@30% (overall) on the test rows."""
    import warnings

    from lightgbm import LGBMClassifier
    from sklift.models import SoloModel

    from tasks.analytics.metrics import uplift_at_k
    from tasks.modelling.selection import strata_of, stratified_split

    tr, te = stratified_split(len(X_plain), strata_of(t, y), test_size, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = SoloModel(LGBMClassifier(verbose=-1, n_jobs=1))
        m.fit(X_plain.iloc[tr], y[tr], t[tr])
        score = m.predict(X_plain.iloc[te])
    return float(uplift_at_k(y[te], score, t[te], k=0.3, strategy="overall"))


def bench_hillstrom(shared: Path, seeds: list[int]) -> dict:
    ds = load_tabular_dataset(data_cfg("hillstrom", shared), shared)
    X = feature_frame(ds)
    X_plain = feature_frame(ds, engineer=False)
    t = ds.frame[ds.treatment].to_numpy()
    y = ds.frame[ds.target].to_numpy()
    cfg = model_cfg("hillstrom")
    per = []
    for seed in seeds:
        t0 = time.perf_counter()
        base = hillstrom_baseline(X_plain, t, y, seed, cfg.test_size)
        res = train_uplift(X, t, y, cfg, seed=seed)
        best = res.cv.sort_values(f"cv_{cfg.select_metric}", ascending=False).iloc[0]
        per.append({"seed": seed, "uplift_at_30": res.heldout["uplift_at_k"]["value"], "baseline_uplift_at_30": base,
                    "qini_auc": res.heldout["qini_auc"]["value"], "approach": res.approach,
                    "uplift_ece": (res.calibration or {}).get("ece"),
                    "uplift_ece_calibrated": (res.calibration or {}).get("ece_calibrated"),
                    "candidate": int(best["candidate"]), "seconds": time.perf_counter() - t0})
        print(f"hillstrom seed {seed}: uplift@30% {per[-1]['uplift_at_30']:.4f} (plain SoloModel {base:.4f}), "
              f"Qini AUC {per[-1]['qini_auc']:.4f} "
              f"({res.approach}, candidate {per[-1]['candidate']}, {per[-1]['seconds']:.0f}s)", flush=True)
    u = np.array([p["uplift_at_30"] for p in per])
    q = np.array([p["qini_auc"] for p in per])
    b = np.array([p["baseline_uplift_at_30"] for p in per])
    ece = [p["uplift_ece"] for p in per if p["uplift_ece"] is not None]
    out = {"seeds": seeds, "uplift_ece_mean": float(np.mean(ece)) if ece else None,
           "uplift_at_30_mean": float(u.mean()), "uplift_at_30_sd": float(u.std(ddof=1)),
           "baseline_uplift_at_30_mean": float(b.mean()), "baseline_uplift_at_30_sd": float(b.std(ddof=1)),
           "qini_auc_mean": float(q.mean()), "qini_auc_sd": float(q.std(ddof=1)), "per_seed": per}
    print(f"hillstrom: uplift@30% {u.mean():.4f} +/- {u.std(ddof=1):.4f}, Qini AUC {q.mean():.4f} +/- "
          f"{q.std(ddof=1):.4f}; plain SoloModel on the same splits {b.mean():.4f} +/- {b.std(ddof=1):.4f}", flush=True)
    return out


def bench_ifood(shared: Path) -> dict:
    ds = load_tabular_dataset(data_cfg("ifood", shared), shared)
    X = feature_frame(ds)
    y = ds.frame[ds.target].to_numpy()
    cfg = model_cfg("ifood")
    aucs, dropped = [], set()
    for i, (tr, te) in enumerate(RepeatedStratifiedKFold(n_splits=5, n_repeats=3, random_state=0).split(X, y)):
        Xtr, ytr = X.iloc[tr].reset_index(drop=True), y[tr]
        Xtr, rep = screen_features(Xtr, ytr, cfg.checks, seed=i)
        dropped |= set(rep.dropped)
        _, params, _ = select_response(Xtr, ytr, cfg, seed=i)
        m = ResponseModel(params, i, cfg.class_weight).fit(Xtr, ytr)
        aucs.append(response_metrics(y[te], m.predict(X.iloc[te]))["roc_auc"])
    a = np.array(aucs)
    out = {"roc_auc_mean": float(a.mean()), "roc_auc_sd": float(a.std(ddof=1)), "folds": len(a),
           "dropped_by_checks": sorted(dropped)}
    print(f"ifood: 5x3 CV ROC-AUC {a.mean():.4f} +/- {a.std(ddof=1):.4f}; checks dropped {sorted(dropped)} "
          f"(baseline 0.910)", flush=True)
    return out


def bench_speed(n: int = 500_000, n_features: int = 40) -> dict:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(n, n_features)).astype("float32"),
                     columns=[f"f{i}" for i in range(n_features)])
    t = rng.integers(0, 2, n)
    logit = -3 + 0.5 * X["f0"].to_numpy() + t * (0.4 * X["f1"].to_numpy())
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    cfg = model_cfg("uplift")
    t0 = time.perf_counter()
    UpliftModel("two_models", cfg.lgbm, seed=0).fit(X, t, y)
    sec = time.perf_counter() - t0
    print(f"speed: two-model fit on {n} rows x {n_features} features: {sec:.1f}s (limit 120s)", flush=True)
    return {"rows": n, "features": n_features, "two_models_fit_seconds": sec, "n_jobs": cfg.lgbm.get("n_jobs")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="synthetic,hillstrom,ifood,speed")
    ap.add_argument("--artifacts", default=str(ROOT / "artifacts"))
    ap.add_argument("--shared-data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--seeds", default="42,0,1,2,3")
    ap.add_argument("--world-seeds", default="101,202,303",
                    help="seeds of the 200k synthetic worlds (7, 11 and 42 were used for modelling choices)")
    ap.add_argument("--split-seeds", default="42,1,2",
                    help="train/hold-out splits per synthetic world (each one a full training)")
    args = ap.parse_args()
    parts = args.only.split(",")
    shared = Path(args.shared_data)
    result: dict = {}
    if "speed" in parts:
        result["speed"] = bench_speed()
    if "ifood" in parts:
        result["ifood"] = bench_ifood(shared)
    if "hillstrom" in parts:
        result["hillstrom"] = bench_hillstrom(shared, [int(s) for s in args.seeds.split(",")])
    if "synthetic" in parts:
        seeds = [int(s) for s in args.world_seeds.split(",")]
        split_seeds = tuple(int(s) for s in args.split_seeds.split(","))
        worlds = [bench_synthetic(Path(args.artifacts), name=world_name(s), seed=s, split_seeds=split_seeds)
                  for s in seeds]
        summary: dict = {"world_seeds": seeds, "split_seeds": list(split_seeds), "worlds": worlds}
        for key in ("qini_ratio", "expected_qini_ratio", "true_gain_ratio", "oot_true_gain_ratio",
                    "uplift_ece", "uplift_ece_calibrated"):
            values = np.array([sp[key] for w in worlds for sp in w["splits"]], dtype=float)
            summary[f"{key}_mean"] = float(values.mean())
            summary[f"{key}_min"] = float(values.min())
            summary[f"{key}_sd"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
        result["synthetic"] = summary
        n = len(seeds) * len(split_seeds)
        print(f"synthetic: held-out Qini AUC / oracle over {len(seeds)} world(s) {seeds} x {len(split_seeds)} "
              f"split(s) {list(split_seeds)}: realised mean {summary['qini_ratio_mean']:.3f} "
              f"(sd {summary['qini_ratio_sd']:.3f}, min {summary['qini_ratio_min']:.3f}, n {n}); "
              f"expected over outcomes {summary['expected_qini_ratio_mean']:.3f}; "
              f"on true uplift {summary['true_gain_ratio_mean']:.3f} (target 0.8); chosen model's uplift "
              f"calibration error {summary['uplift_ece_mean']:.4f} raw, {summary['uplift_ece_calibrated_mean']:.4f} "
              f"calibrated; out of time (the latest campaign, fitted on the earlier ones) on true uplift "
              f"{summary['oot_true_gain_ratio_mean']:.3f}", flush=True)
    print(json.dumps(result, default=float))


if __name__ == "__main__":
    main()
