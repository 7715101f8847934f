"""Drift alarms and promotion decisions through the product's own path, on synthetic worlds.

Part 1, drift (false alarms and detection). Per world seed: generate a small world, train the
uplift model on its campaign history (the training set, model choice and registration of
``flows/train``, with the drift reference the flow stores: the eligible base at the latest
training date through the default campaign's filters), run the default campaign at the
world's as-of date (``tasks.campaign.run.run_campaign``: client base, filters, factors, score,
split, offers, freeze), and check the campaign's factor checkpoint against the champion's
reference with the monitor's own code and default limits (``conf/monitor/default.yaml``).
Unshifted worlds (nothing changed) should not alarm; the same worlds regenerated with
``data.shift`` > 0 (fewer purchases, more online, less engagement, older clients) and
campaigned on with the champion trained before the shift must alarm.

Part 2, promotion (``tasks.modelling.promotion``, the rule of training's promote=auto and of
monitoring's retraining). A pool of models is trained the same way on worlds of the same
generating process (other seeds); each trial scores a champion and a challenger on a fresh
world's campaign history (its factors as of each campaign date: held-out rows neither model
saw) and applies the rule. Equal quality: two pool models; the rule should promote in at most
5% of trials. Clearly better: the same challenger against a champion whose ranking no longer
carries information (the champion's scores shuffled: a decayed model).

    python benchmarks/drift.py [--seeds 20] [--clients 4000] [--trials 40] [--holdout-clients 8000]
                               [--shifts 0.25 0.5 1.0] [--quick]

Prints one line per world and trial, then the figures; the last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tasks.core.config import SyntheticDataConfig, from_conf  # noqa: E402

def make_world(art: Path, name: str, n: int, seed: int, shift: float = 0.0) -> Path:
    """A synthetic world written under ``<art>/data/<name>`` (what ``flows.generate`` writes)."""
    from tasks.core.layout import Layout
    from tasks.data.synthetic.world import generate_world, write_world

    cfg = from_conf(SyntheticDataConfig, "data/synthetic", n_clients=n, seed=seed, shift=shift, name=name)
    out = Layout(art).dataset(name)
    write_world(generate_world(cfg), out, cfg)
    return out


def model_config(args: argparse.Namespace):
    from tasks.modelling.config import ModelConfig

    # promote=always: each world's model is its champion, whose drift reference the campaign is
    # checked against; whether a 4,000-client world's model shows signal is not this benchmark's
    # question (the promotion rule is part 2's, applied to evidence directly)
    return from_conf(ModelConfig, "model/uplift", approaches=list(args.approaches), cv_folds=2, n_boot=50,
                     promote="always",
                     lgbm={**from_conf(ModelConfig, "model/uplift").lgbm, "n_estimators": args.trees})


def train_and_register(art: Path, data_name: str, model_name: str, mcfg, campaign_cfg, factors: list[str]):
    """What ``flows.train`` does for a synthetic world, without the orchestrator: the
    point-in-time training set, model choice, the eligible-base drift reference, registration."""
    from tasks.campaign.eligible import eligible_reference
    from tasks.core.layout import Layout
    from tasks.modelling.registry import ModelRegistry
    from tasks.modelling.training import register_version, train_on
    from tasks.modelling.training_set import load_training_set

    layout = Layout(art)
    ts = load_training_set({"kind": "synthetic", "name": data_name}, {"factors": factors}, layout, "")
    cfg = replace(mcfg, name=model_name)
    result = train_on(ts, cfg)
    result.reference, described = eligible_reference(layout.dataset(data_name), campaign_cfg.filters,
                                                     result.features, seed=result.seed)
    result.extras["drift_reference"] = described
    register_version(result, ModelRegistry(layout.models), model_name, cfg, data_name, None)
    return result


def campaign_drift(art: Path, data_name: str, model_name: str, campaign_cfg, dcfg, cid: str) -> dict:
    """Run the default campaign on ``data_name`` with the champion of ``model_name``, then the
    monitor's data-drift check of its factor checkpoint against the champion's reference."""
    from tasks.campaign.run import run_campaign
    from tasks.core.layout import Layout
    from tasks.modelling.registry import ModelRegistry
    from tasks.monitoring import decay as mon

    cfg = replace(campaign_cfg, id=cid, data=data_name, model=model_name)
    run_campaign(cfg, art)
    champion = ModelRegistry(Layout(art).models).load(model_name)
    return mon.campaign_data_drift(art, cid, champion.metadata["reference"], dcfg)


def drift_part(args: argparse.Namespace, art: Path, mcfg, campaign_cfg, dcfg, factors: list[str]) -> dict:
    unshifted, shifted, models = [], [], []
    for i in range(args.seeds):
        seed = 4000 + i
        t0 = time.perf_counter()
        make_world(art, f"w{seed}", args.clients, seed)
        res = train_and_register(art, f"w{seed}", f"m{seed}", mcfg, campaign_cfg, factors)
        models.append(f"m{seed}")
        s = campaign_drift(art, f"w{seed}", f"m{seed}", campaign_cfg, dcfg, f"c{seed}")
        unshifted.append({"seed": seed, "alarm": s["alarm"], "n_drifted": s["n_drifted"], "n_factors": s["n_factors"],
                          "share": s["drifted_share"], "max_psi": s["max_psi"], "drifted": s["drifted_factors"],
                          "approach": res.approach, "heldout_qini": res.heldout["qini_auc"]["value"]})
        print(f"unshifted world {seed}: trained {res.approach} (held-out Qini {res.heldout['qini_auc']['value']:.3f}); "
              f"campaign: {s['n_drifted']}/{s['n_factors']} factors drifted ({s['drifted_share']:.1%}, limit "
              f"{s['limit']:.0%}) {s['drifted_factors']}, max PSI {s['max_psi']:.3f}, alarm {s['alarm']} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    for j, shift in enumerate(args.shifts):
        seed = 4000 + j
        make_world(art, f"w{seed}_s{shift}", args.clients, seed, shift)
        s = campaign_drift(art, f"w{seed}_s{shift}", f"m{seed}", campaign_cfg, dcfg, f"c{seed}_s{shift}")
        shifted.append({"seed": seed, "shift": shift, "alarm": s["alarm"], "n_drifted": s["n_drifted"],
                        "share": s["drifted_share"], "max_psi": s["max_psi"]})
        print(f"shifted world {seed} (shift {shift}), champion trained before the shift: {s['n_drifted']}/"
              f"{s['n_factors']} factors drifted ({s['drifted_share']:.1%}), max PSI {s['max_psi']:.3f}, "
              f"alarm {s['alarm']}", flush=True)
    return {"unshifted": unshifted, "shifted": shifted, "models": models,
            "unshifted_alarms": sum(r["alarm"] for r in unshifted),
            "unshifted_max_share": max(r["share"] for r in unshifted),
            "unshifted_factor_flags": sum(r["n_drifted"] for r in unshifted)}


class ShuffledRanking:
    """A champion whose ranking carries no information any more (a model whose learned relation
    stopped holding): ``inner``'s scores of the same rows in a shuffled order."""

    def __init__(self, inner, seed: int) -> None:
        self.inner, self.seed, self.name = inner, seed, f"shuffled {inner.name}"

    def predict(self, X) -> np.ndarray:
        return np.random.default_rng(self.seed).permutation(np.asarray(self.inner.predict(X), dtype=float))


def promotion_part(args: argparse.Namespace, art: Path, mcfg, campaign_cfg, factors: list[str]) -> dict:
    from tasks.analytics import metrics
    from tasks.core.layout import Layout
    from tasks.data.tables import read_table
    from tasks.modelling.promotion import promotion_evidence
    from tasks.modelling.registry import ModelRegistry
    from tasks.modelling.training_set import build_training_set

    reg = ModelRegistry(Layout(art).models)
    pool = []
    for i in range(args.pool_models):
        seed = 5000 + i
        t0 = time.perf_counter()
        make_world(art, f"p{seed}", args.pool_clients, seed)
        res = train_and_register(art, f"p{seed}", f"p{seed}", replace(mcfg, approaches=list(args.pool_approaches)),
                                 campaign_cfg, factors)
        pool.append(reg.load(f"p{seed}"))
        print(f"pool model p{seed}: {res.approach} on {res.n_train + res.n_test:,} rows, held-out Qini "
              f"{res.heldout['qini_auc']['value']:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    rng = np.random.default_rng(7)
    equal, better = [], []
    for trial in range(args.trials):
        seed = 6000 + trial
        data_dir = make_world(art, f"h{seed}", args.holdout_clients, seed)
        rows = read_table(data_dir, "campaign_history")
        X, t, y = build_training_set(data_dir, rows, factors)
        a, b = rng.choice(len(pool), size=2, replace=False)
        champ, chall = pool[a], pool[b]
        ev = promotion_evidence("qini_auc", metrics.qini_auc, y, champ.predict(X), chall.predict(X), t,
                                n_boot=args.n_boot, seed=trial, champion=f"champion {champ.name}")
        equal.append({"trial": trial, "champion": champ.name, "challenger": chall.name, "difference": ev["difference"],
                      "ci_low": ev["difference_ci_low"], "ci_high": ev["difference_ci_high"], "promote": ev["promote"],
                      "point_rule": bool(ev["difference"] > 0)})
        weak = ShuffledRanking(champ, seed)
        ev2 = promotion_evidence("qini_auc", metrics.qini_auc, y, weak.predict(X), chall.predict(X), t,
                                 n_boot=args.n_boot, seed=trial, champion=f"champion {weak.name}")
        better.append({"trial": trial, "champion": weak.name, "challenger": chall.name, "difference": ev2["difference"],
                       "ci_low": ev2["difference_ci_low"], "ci_high": ev2["difference_ci_high"],
                       "promote": ev2["promote"]})
        print(f"trial {trial} ({len(y):,} held-out rows, {int(y.sum())} responders): equal: {ev['reason']} | "
              f"better: difference {ev2['difference']:+.4f} CI [{ev2['difference_ci_low']:+.4f}, "
              f"{ev2['difference_ci_high']:+.4f}] promote {ev2['promote']}", flush=True)
    n = len(equal)
    return {"trials": n, "pool_models": args.pool_models, "pool_clients": args.pool_clients,
            "holdout_clients": args.holdout_clients, "n_boot": args.n_boot,
            "equal_promoted": sum(r["promote"] for r in equal), "equal_promoted_share": sum(r["promote"] for r in equal) / n,
            "equal_point_rule_share": sum(r["point_rule"] for r in equal) / n,
            "better_promoted": sum(r["promote"] for r in better), "better_promoted_share": sum(r["promote"] for r in better) / n,
            "equal": equal, "better": better}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20, help="unshifted worlds (each trained, campaigned, monitored)")
    ap.add_argument("--clients", type=int, default=4000)
    ap.add_argument("--shifts", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--trials", type=int, default=40, help="promotion trials (equal and clearly better)")
    ap.add_argument("--holdout-clients", type=int, default=8000, help="clients of each trial's fresh world")
    ap.add_argument("--pool-models", type=int, default=5, help="models (one world each) the trials pair up")
    ap.add_argument("--pool-clients", type=int, default=15000)
    ap.add_argument("--pool-approaches", nargs="+", default=["x_learner"])
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--approaches", nargs="+", default=["solo"], help="candidates of the part-1 worlds' models")
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="5 worlds, 1 shift, 10 trials, 3 pool models")
    ap.add_argument("--keep", default=None, help="folder for the artifacts (default: a temporary one)")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.shifts, args.trials, args.pool_models = 5, [1.0], 10, 3
    from factors import factor_set
    from tasks.campaign.config import CampaignConfig
    from tasks.monitoring.decay import MonitorConfig

    t0 = time.perf_counter()
    load_before = os.getloadavg()
    mon_cfg = from_conf(MonitorConfig, "monitor/default")
    campaign_cfg = from_conf(CampaignConfig, "campaign/default")
    mcfg = model_config(args)
    factors = factor_set("default")
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        art = Path(args.keep or tmp)
        d = drift_part(args, art, mcfg, campaign_cfg, mon_cfg.drift, factors)
        d.pop("models")
        p = promotion_part(args, art, mcfg, campaign_cfg, factors)
    checks = {
        "unshifted_at_most_1_alarm": d["unshifted_alarms"] <= 1,
        "shifted_worlds_alarm": all(s["alarm"] for s in d["shifted"]),
        "equal_promoted_at_most_5pct": p["equal_promoted_share"] <= 0.05,
        "better_promoted_at_least_80pct": p["better_promoted_share"] >= 0.8,
    }
    seconds = time.perf_counter() - t0
    print(f"drift through the real path: {d['unshifted_alarms']} alarm(s) in {args.seeds} unshifted worlds of "
          f"{args.clients:,} clients (largest drifted share {d['unshifted_max_share']:.1%}, "
          f"{d['unshifted_factor_flags']} drifted-factor verdicts in all); shifted worlds "
          + ", ".join(f"{s['shift']}: {s['share']:.0%} {'alarm' if s['alarm'] else 'no alarm'}" for s in d["shifted"]))
    print(f"promotion: equal-quality challenger promoted in {p['equal_promoted']}/{p['trials']} trials "
          f"({p['equal_promoted_share']:.1%}; the point difference > 0 in {p['equal_point_rule_share']:.0%}), "
          f"clearly better in {p['better_promoted']}/{p['trials']} ({p['better_promoted_share']:.0%})")
    print("checks: " + ", ".join(f"{k}={'PASS' if v else 'FAIL'}" for k, v in checks.items())
          + f"; {seconds:.0f} s, load {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}")
    print(json.dumps({"benchmark": "drift", "drift_config": vars(mon_cfg.drift), "drift": d, "promotion": p,
                      "checks": checks, "all_pass": all(checks.values()), "seconds": round(seconds, 1),
                      "load_avg_start": load_before[0], "load_avg_end": os.getloadavg()[0]}, default=str))


if __name__ == "__main__":
    main()
