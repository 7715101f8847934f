"""Validity of the campaign evaluation: interval coverage, bias and the sample-ratio check.

One synthetic truth table (each client's true response probability with and without the
offer) and one fixed imperfect model score; then many simulated campaigns, each a fresh
seeded random three-way split plus outcome draws, evaluated with ``tasks.evaluation.readout``.

True effects (expectation over the assignment distribution):
* targeted vs control above the cutoff: mean of (p_treated - p_control) over every client
  with score >= cutoff (both groups are random samples of that population);
* random_target vs control: mean of (p_treated - p_control) over all clients;
* model value per offer: the difference of the two.

Sample-ratio check: at the same size, each client of one group is lost with chance 5% before
evaluation (an injected imbalance), for each group in turn; the check must flag it at
``srm_alpha``. The pass criterion uses a loss in the targeted group (the default split
0.8/0.1/0.1 puts most clients there); the detection rates of a loss in the 10% groups are
printed beside it (a 5% loss of a 10% group is about 500 clients, a weaker signal).

    python benchmarks/evaluation_validity.py [--runs 1000] [--clients 100000] [--srm-runs 500]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tasks.evaluation import readout as ev  # noqa: E402
from tasks.core.config import SyntheticDataConfig, from_conf  # noqa: E402
from tasks.data.synthetic.traits import simulate_traits  # noqa: E402
from tasks.data.synthetic.truth import draw_responses, simulate_truth  # noqa: E402

GROUP_SHARES = {"targeted": 0.8, "random_target": 0.1, "control": 0.1}
TOP_FRACTION = 0.3


def build_world(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, float]:
    """Truth table, a noisy model score (true uplift + noise of the same spread) and the cutoff."""
    cfg = from_conf(SyntheticDataConfig, "data/synthetic", n_clients=n, seed=seed)
    truth = simulate_truth(cfg, simulate_traits(cfg))
    tau = (truth["p_treated"] - truth["p_control"]).to_numpy()
    rng = np.random.default_rng(seed + 1)
    score = tau + rng.normal(0.0, tau.std(), n)
    cutoff = float(np.quantile(score, 1.0 - TOP_FRACTION))
    return truth, score, cutoff


def simulate_campaign(truth: pd.DataFrame, score: np.ndarray, cutoff: float, seed: int,
                      drop_control_share: float = 0.0) -> pd.DataFrame:
    """One campaign: random split, offers by the cutoff, outcomes drawn from the truth."""
    rng = np.random.default_rng(seed)
    n = len(truth)
    names = np.array(list(GROUP_SHARES))
    group = names[rng.choice(len(names), size=n, p=list(GROUP_SHARES.values()))]
    offer = (group == "random_target") | ((group == "targeted") & (score >= cutoff))
    ids = truth["client_id"].to_numpy()
    resp = draw_responses(truth, ids, offer, seed=seed + 7)
    df = pd.DataFrame({"client_id": ids, "group": group, "offer": offer, "score": score,
                       "response": resp["response"].to_numpy(), "revenue": resp["revenue"].to_numpy()})
    if drop_control_share > 0:
        ctrl = np.flatnonzero(group == "control")
        lost = rng.choice(ctrl, size=int(round(drop_control_share * len(ctrl))), replace=False)
        df = df.drop(index=lost).reset_index(drop=True)
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--srm-runs", type=int, default=500)
    ap.add_argument("--clients", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--srm-alpha", type=float, default=0.001)
    ap.add_argument("--imbalance", type=float, default=0.05)
    args = ap.parse_args()

    t0 = time.perf_counter()
    truth, score, cutoff = build_world(args.clients, args.seed)
    tau = (truth["p_treated"] - truth["p_control"]).to_numpy()
    true = {"targeted_vs_control": float(tau[score >= cutoff].mean()),
            "random_target_vs_control": float(tau.mean())}
    true["model_value_per_offer"] = true["targeted_vs_control"] - true["random_target_vs_control"]
    print(f"world: {args.clients} clients, cutoff {cutoff:.4f} (top {TOP_FRACTION:.0%} by score), "
          f"true effects {json.dumps({k: round(v, 5) for k, v in true.items()})}")

    manifest = {"campaign_id": "bench", "groups": GROUP_SHARES, "threshold": {"score_cutoff": cutoff},
                "policy": {"kind": "score_cutoff", "params": {"margin": 20.0, "contact_cost": 0.5}}}
    cfg = from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", alpha=args.alpha, srm_alpha=args.srm_alpha, n_boot=0)
    rows = []
    srm_null_flags = 0
    for r in range(args.runs):
        joined = simulate_campaign(truth, score, cutoff, seed=args.seed * 1000 + r)
        res = ev.evaluate_campaign(joined, manifest, cfg)
        srm_null_flags += bool(res["srm"]["mismatch"])
        for key, truth_value in true.items():
            e = res[key]["response"]
            rows.append({"estimand": key, "run": r, "estimate": e["estimate"], "se": e["se"],
                         "covered": e["ci_low"] <= truth_value <= e["ci_high"], "error": e["estimate"] - truth_value})
    t_eff = time.perf_counter() - t0
    table = pd.DataFrame(rows)
    summary = {}
    for key, g in table.groupby("estimand", sort=False):
        bias = float(g["error"].mean())
        mean_se = float(g["se"].mean())
        summary[key] = {"runs": int(len(g)), "true_effect": true[key], "coverage": float(g["covered"].mean()),
                        "bias": bias, "mean_se": mean_se, "bias_over_se": abs(bias) / mean_se,
                        "sd_of_estimates_over_mean_se": float(g["estimate"].std(ddof=1)) / mean_se}
        print(f"{key}: coverage {summary[key]['coverage']:.4f} of nominal {1 - args.alpha:.2f}, "
              f"bias {bias:+.6f} = {summary[key]['bias_over_se']:.3f} SE, "
              f"sd(estimates)/mean(SE) {summary[key]['sd_of_estimates_over_mean_se']:.3f}")
    print(f"{args.runs} campaigns evaluated in {t_eff:.1f} s; sample-ratio false alarms without imbalance: "
          f"{srm_null_flags}/{args.runs}")

    # Only group sizes matter for the sample-ratio test, so draw them directly: the split is
    # multinomial and each lost row is an independent 5% chance inside the affected group.
    t1 = time.perf_counter()
    rng = np.random.default_rng(args.seed + 99)
    detection: dict[str, float] = {}
    for lost_group in GROUP_SHARES:
        caught = 0
        for _ in range(args.srm_runs):
            counts = dict(zip(GROUP_SHARES, rng.multinomial(args.clients, list(GROUP_SHARES.values()))))
            counts[lost_group] -= int(rng.binomial(counts[lost_group], args.imbalance))
            caught += bool(ev.srm_check(counts, GROUP_SHARES, args.srm_alpha)["mismatch"])
        detection[lost_group] = caught / args.srm_runs
        print(f"sample-ratio check, {args.imbalance:.0%} of the {lost_group} group lost, {args.clients} clients, "
              f"shares {GROUP_SHARES}: flagged in {caught}/{args.srm_runs} runs ({detection[lost_group]:.3f}) "
              f"at p < {args.srm_alpha}")
    print(f"sample-ratio simulations: {time.perf_counter() - t1:.1f} s")

    checks = {
        "coverage_targeted_in_range": 0.93 <= summary["targeted_vs_control"]["coverage"] <= 0.97,
        "coverage_random_in_range": 0.93 <= summary["random_target_vs_control"]["coverage"] <= 0.97,
        "bias_targeted_under_0.1_se": summary["targeted_vs_control"]["bias_over_se"] < 0.1,
        "bias_random_under_0.1_se": summary["random_target_vs_control"]["bias_over_se"] < 0.1,
        "srm_detection_targeted_loss_at_least_0.95": detection["targeted"] >= 0.95,
    }
    print("checks: " + ", ".join(f"{k}={'PASS' if v else 'FAIL'}" for k, v in checks.items()))
    print(json.dumps({
        "benchmark": "evaluation_validity", "clients": args.clients, "runs": args.runs, "alpha": args.alpha,
        "effects": summary, "srm": {"runs_per_case": args.srm_runs, "lost_share": args.imbalance,
                                    "srm_alpha": args.srm_alpha, "detection_rate_by_lost_group": detection,
                                    "false_alarms_without_imbalance": srm_null_flags / args.runs},
        "checks": checks, "all_pass": all(checks.values()), "seconds": round(time.perf_counter() - t0, 1),
    }))


if __name__ == "__main__":
    main()
