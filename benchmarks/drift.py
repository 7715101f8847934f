"""Drift detection and retraining on the synthetic world.

Part 1 (detector, pure functions): the reference is built the way training stores it
(``tasks.modelling.reference.reference_distributions``) from the factors of a reference world as of its
as-of date. Then worlds of other seeds, as of the same date, are compared with it: unshifted
worlds must raise no more alarms than the configured false discovery rate allows
(``fdr x seeds``), worlds generated with ``data.shift > 0`` must raise one.

Part 2 (pipeline, real flows): generate a world, train a champion, and run the campaign,
response, evaluation and monitor flows:
  A. the champion decays (its learned relation stops holding: a model version that keeps the
     champion's training figures but ranks clients at random); the evaluated campaign shows
     the drop, monitoring retrains, and the challenger, better on the held-out clients, is
     promoted;
  B. with the good challenger as champion, retraining is forced (drift share limit 0) with a
     challenger that cannot learn (LightGBM may not split: min_child_samples above the row
     count); it is worse on the held-out clients and is not promoted;
  C. the default monitoring limits on the unshifted campaign: no retraining.

    python benchmarks/drift.py [--seeds 20] [--clients 5000] [--pipeline-clients 20000] [--skip-pipeline]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tasks.monitoring import drift  # noqa: E402
from tasks.core.config import SyntheticDataConfig, compose_config, from_conf, to_dataclass  # noqa: E402
from tasks.monitoring.decay import MonitorConfig  # noqa: E402


class RandomRankingModel:
    """A model whose scores no longer carry information: the wrapped model's scores of the
    same clients in a shuffled order (the distribution of scores is unchanged)."""

    def __init__(self, inner, seed: int = 0) -> None:
        self.inner = inner
        self.seed = seed
        self.features = list(getattr(inner, "features", []))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        scores = np.asarray(self.inner.predict(X), dtype=float)
        return np.random.default_rng(self.seed).permutation(scores)


def world_factors(n: int, seed: int, shift: float, root: Path, names: list[str]) -> pd.DataFrame:
    """Factors of every client of a freshly generated world, as of its as-of date."""
    from factors import compute_factors
    from tasks.data.synthetic.world import generate_world, write_world

    cfg = from_conf(SyntheticDataConfig, "data/synthetic", n_clients=n, seed=seed, shift=shift)
    out = root / f"w{seed}_{shift}"
    write_world(generate_world(cfg), out, cfg)
    return compute_factors(out, cfg.end_date, names)


def detector_part(args: argparse.Namespace, dcfg: drift.DriftConfig, root: Path) -> dict:
    from factors import factor_set
    from tasks.modelling.reference import reference_distributions

    names = factor_set("default")
    ref_frame = world_factors(args.clients, 1000, 0.0, root, names).drop(columns="client_id")
    reference = reference_distributions(ref_frame, seed=0)
    null_rows = []
    for s in range(args.seeds):
        table = drift.drift_table(reference, world_factors(args.clients, 2000 + s, 0.0, root, names), dcfg)
        summ = drift.drift_summary(table, dcfg)
        null_rows.append({"seed": 2000 + s, "alarm": summ["alarm"], "n_drifted": summ["n_drifted"],
                          "share": summ["drifted_share"], "max_psi": summ["max_psi"],
                          "drifted": summ["drifted_factors"]})
        print(f"unshifted seed {2000 + s}: {summ['n_drifted']}/{summ['n_factors']} factors drifted "
              f"({summ['drifted_share']:.1%}), max PSI {summ['max_psi']:.3f}, alarm {summ['alarm']}")
    shifted = []
    for shift in args.shifts:
        table = drift.drift_table(reference, world_factors(args.clients, 3000, shift, root, names), dcfg)
        summ = drift.drift_summary(table, dcfg)
        shifted.append({"shift": shift, "alarm": summ["alarm"], "n_drifted": summ["n_drifted"],
                        "share": summ["drifted_share"], "max_psi": summ["max_psi"]})
        print(f"shifted world (shift {shift}): {summ['n_drifted']}/{summ['n_factors']} factors drifted "
              f"({summ['drifted_share']:.1%}), max PSI {summ['max_psi']:.3f}, alarm {summ['alarm']}")
    alarms = sum(r["alarm"] for r in null_rows)
    allowed = int(np.floor(dcfg.fdr * args.seeds))
    factor_false = sum(r["n_drifted"] for r in null_rows)
    print(f"unshifted: {alarms} alarm(s) in {args.seeds} seeds (allowed by fdr {dcfg.fdr}: {allowed}); "
          f"{factor_false} drifted factor verdicts over {args.seeds} x {len(reference)} comparisons")
    return {"factors": len(reference), "clients": args.clients, "unshifted_seeds": args.seeds,
            "unshifted_alarms": alarms, "allowed_alarms": allowed,
            "unshifted_factor_flags": factor_false,
            "unshifted_max_share": max(r["share"] for r in null_rows),
            "shifted": shifted}


def pipeline_part(args: argparse.Namespace, root: Path) -> dict:
    from omegaconf import OmegaConf
    from prefect.testing.utilities import prefect_test_harness

    from flows.campaign import campaign_flow
    from flows.evaluate import evaluate_campaign_flow
    from flows.generate import generate
    from flows.monitor import monitor_flow
    from flows.simulate_responses import simulate_responses_flow
    from flows.train import train_model
    from tasks.core.layout import Layout
    from tasks.modelling.registry import ModelRegistry

    art = str(root / "artifacts")
    cfg = compose_config([f"data.n_clients={args.pipeline_clients}", "data.seed=77", f"paths.artifacts={art}",
                          "model.approaches=[solo,class_transformation]", "model.n_boot=50",
                          "campaign.groups={targeted: 0.4, random_target: 0.3, control: 0.3}"])
    c = lambda node: OmegaConf.to_container(node, resolve=True)  # noqa: E731
    model = c(cfg.model)
    name = model["name"]
    reg = ModelRegistry(Layout(art).models)
    out: dict = {}
    with prefect_test_harness(server_startup_timeout=180):
        t0 = time.perf_counter()
        generate(c(cfg.data), art)
        info = train_model(c(cfg.data), model, c(cfg.factors), art)
        good = reg.load(name)
        train_qini = good.metadata["metrics"]["heldout"]["qini_auc"]["value"]
        print(f"champion {good.version} trained: held-out qini_auc {train_qini:.4f} ({time.perf_counter() - t0:.0f} s)")

        # A: the champion decays
        decayed = reg.save(name, RandomRankingModel(good.model, seed=5), dict(good.metadata))
        reg.promote(name, decayed)
        camp = dict(c(cfg.campaign), id="after_decay")
        campaign_flow(camp, art)
        simulate_responses_flow("after_decay", art)
        ev = evaluate_campaign_flow("after_decay", art, settings={"n_boot": 50})
        mq = ev["model_quality"]["qini_auc"]
        print(f"A: decayed champion {decayed}: evaluated qini_auc {mq['estimate']:.4f} "
              f"[{mq['ci_low']:.4f}, {mq['ci_high']:.4f}] vs training {train_qini:.4f}")
        settings = c(cfg.monitor)
        settings["retrain"]["holdout_fraction"] = 0.5
        rec_a = monitor_flow(art, settings, model)
        cmp_a = (rec_a.get("retrain") or {}).get("comparison") or {}
        print(f"A: retrain needed {rec_a['retrain_needed']} ({'; '.join(rec_a['reasons'])}); "
              f"{cmp_a.get('reason')}; champion after: {rec_a['champion_after']}")
        out["A_decayed"] = {
            "training_qini": train_qini, "evaluated_qini": mq, "decay": rec_a["decay"],
            "drift_share": rec_a["drift"]["drifted_share"], "retrain_needed": rec_a["retrain_needed"],
            "comparison": cmp_a, "champion_before": rec_a["champion_before"], "champion_after": rec_a["champion_after"],
            "challenger_promoted": rec_a["champion_after"] == (rec_a.get("retrain") or {}).get("challenger_version"),
        }

        # B: forced retraining with a challenger that cannot learn
        settings_b = json.loads(json.dumps(settings))
        settings_b["drift"]["max_drifted_share"] = 0.0
        crippled = dict(model, lgbm=dict(model["lgbm"], min_child_samples=10**7), approaches=["solo"])
        rec_b = monitor_flow(art, settings_b, crippled)
        cmp_b = (rec_b.get("retrain") or {}).get("comparison") or {}
        print(f"B: retrain needed {rec_b['retrain_needed']}; {cmp_b.get('reason')}; champion after: "
              f"{rec_b['champion_after']}")
        out["B_worse_challenger"] = {
            "retrain_needed": rec_b["retrain_needed"], "comparison": cmp_b,
            "champion_before": rec_b["champion_before"], "champion_after": rec_b["champion_after"],
            "challenger_promoted": rec_b["champion_after"] == (rec_b.get("retrain") or {}).get("challenger_version"),
        }

        # C: default limits, champion as it is now
        rec_c = monitor_flow(art, c(cfg.monitor), model)
        print(f"C: default limits: drift share {rec_c['drift']['drifted_share']:.1%} "
              f"(limit {rec_c['drift']['limit']:.0%}), decay {rec_c['decay'].get('relative_drop')}, "
              f"retrain needed {rec_c['retrain_needed']}")
        out["C_default_limits"] = {"drift_share": rec_c["drift"]["drifted_share"],
                                   "drifted_factors": rec_c["drift"]["drifted_factors"],
                                   "decay": rec_c["decay"], "retrain_needed": rec_c["retrain_needed"]}
        out["seconds"] = round(time.perf_counter() - t0, 1)
        out["train_info"] = {k: info.get(k) for k in ("version", "approach") if isinstance(info, dict)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--clients", type=int, default=5000)
    ap.add_argument("--shifts", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--pipeline-clients", type=int, default=20000)
    ap.add_argument("--skip-pipeline", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    mcfg = to_dataclass(compose_config([]).monitor, MonitorConfig, "monitor")
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        root = Path(tmp)
        det = detector_part(args, mcfg.drift, root)
        pipe = None if args.skip_pipeline else pipeline_part(args, root)
    checks = {
        "shifted_worlds_flagged": all(s["alarm"] for s in det["shifted"]),
        "unshifted_alarms_within_fdr": det["unshifted_alarms"] <= det["allowed_alarms"],
    }
    if pipe is not None:
        checks.update(
            decayed_model_triggers_retraining=bool(pipe["A_decayed"]["decay"].get("decayed")) and pipe["A_decayed"]["retrain_needed"],
            better_challenger_promoted=bool(pipe["A_decayed"]["challenger_promoted"]),
            worse_challenger_not_promoted=bool(pipe["B_worse_challenger"]["retrain_needed"])
            and not pipe["B_worse_challenger"]["challenger_promoted"],
        )
    print("checks: " + ", ".join(f"{k}={'PASS' if v else 'FAIL'}" for k, v in checks.items()))
    print(json.dumps({"benchmark": "drift", "drift_config": vars(mcfg.drift), "detector": det, "pipeline": pipe,
                      "checks": checks, "all_pass": all(checks.values()),
                      "seconds": round(time.perf_counter() - t0, 1)}, default=str))


if __name__ == "__main__":
    main()
