"""Validity of the campaign evaluation, through the product's own code.

For each world size, once (cached under ``--cache``, reused by later runs):
* a synthetic world (``tasks.data.synthetic.world``: clients, purchases, messages, campaign
  history and the ground truth);
* a LightGBM two-model uplift model fitted on its latest past campaign and registered
  (``tasks.modelling``);
* a frozen campaign computed by the product (``tasks.campaign.run.run_campaign``: client base,
  opt-out filter, factors, scores, ranking, split, offers, freeze).

Then many campaigns, each re-randomised cheaply from the frozen one: a new split seed through
the split stage's function (``tasks.campaign.transforms.assign_groups``), the offer stage's
policy (``tasks.campaign.policy.assign_offers``, top 30% of the targeted group, so the cutoff
moves with the split), the frozen table's builder, responses drawn from the truth
(``tasks.data.synthetic.truth.draw_responses``: Bernoulli responses, heavy-tailed revenue),
the responses checked and joined (``tasks.evaluation.responses.join_responses``) and evaluated
(``tasks.evaluation.readout.evaluate_campaign``: the function ``flows.evaluate`` runs).

Measured:
* coverage of every 95% interval (response and revenue; targeted vs control above the cutoff,
  random_target vs control, whole targeted group vs control, model value per offer) and the
  bias of each estimate in units of its standard error. True effects are expectations over
  the response draws for the clients and cutoff of each campaign: the mean of
  ``p_treated - p_control`` (response) and of ``(p_treated - p_control) * E[basket]``
  (revenue; ``E[basket] = basket_scale * exp(0.15 + 0.6^2 / 2) * 1.15`` for the
  lognormal x (1 + 0.3 Lomax(3)) basket) over the comparison's population. For revenue the
  coverage of Welch's interval (``evaluate.revenue_variance=welch``) is printed beside the
  product's default (variances from pooled amounts), to show why the default is what it is;
* the checks (sample ratio of the clients analysed, missing outcomes): how often they fire when
  5% of one group's outcome records are lost (each group in turn), and false alarms when no
  record is lost and when 3% of all records are lost at random (no group favoured).

    python benchmarks/evaluation_validity.py [--sizes 20000,100000] [--runs 1000] [--check-runs 500]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tasks.campaign.config import CampaignConfig, FilterSpec  # noqa: E402
from tasks.campaign.policy import PolicyConfig, assign_offers, offer_mask  # noqa: E402
from tasks.campaign.run import run_campaign  # noqa: E402
from tasks.campaign.transforms import assign_groups, build_campaign_table, derive_seed  # noqa: E402
from tasks.core.config import SyntheticDataConfig, from_conf  # noqa: E402
from tasks.core.io import read_json  # noqa: E402
from tasks.core.layout import Layout  # noqa: E402
from tasks.data.synthetic.truth import draw_responses  # noqa: E402
from tasks.data.tables import read_table  # noqa: E402
from tasks.evaluation import readout as ev  # noqa: E402
from tasks.evaluation.checks import run_checks  # noqa: E402
from tasks.evaluation.responses import join_responses  # noqa: E402

GROUPS = {"targeted": 0.8, "random_target": 0.1, "control": 0.1}
FEATURES = ["age", "tenure_days", "days_since_last_purchase", "purchase_count_90d", "purchase_amount_365d",
            "open_rate", "click_rate", "promo_share_365d", "days_since_last_promo_purchase", "ever_unsubscribed"]
BASKET_FACTOR = math.exp(0.15 + 0.6**2 / 2) * 1.15
COMPARISONS = ("targeted_vs_control", "random_target_vs_control", "targeted_group_vs_control", "model_value_per_offer")


def build_world(cache: Path, n: int, seed: int) -> tuple[Path, str]:
    """World, model and frozen campaign of ``n`` clients under ``cache`` (made once)."""
    import factors
    from tasks.data.synthetic.world import generate_world, write_world
    from tasks.modelling.models import UpliftModel
    from tasks.modelling.registry import ModelRegistry

    root = cache / f"n{n}_s{seed}"
    name, cid = f"bench{n}", f"bench{n}"
    layout = Layout(root)
    if not (layout.dataset(name) / "manifest.json").exists():
        cfg = from_conf(SyntheticDataConfig, "data/synthetic", n_clients=n, name=name, seed=seed)
        write_world(generate_world(cfg), layout.dataset(name), cfg)
    reg = ModelRegistry(root / "models")
    if not (root / "models" / name / "champion").exists():
        history = read_table(layout.dataset(name), "campaign_history")
        last = history.loc[history["campaign_date"] == history["campaign_date"].max()]
        features = FEATURES
        X = factors.compute_factors(layout.dataset(name), last["campaign_date"].iloc[0], features,
                                    last["client_id"].to_numpy())
        model = UpliftModel("two_models", {"n_estimators": 200, "num_leaves": 8, "learning_rate": 0.05,
                                           "min_child_samples": 200, "verbose": -1}, seed=1)
        model.fit(X[features], last["treatment"].to_numpy(), last["response"].to_numpy())
        reg.promote(name, reg.save(name, model, {"kind": "uplift", "features": features, "factor_set": None}))
    if not layout.campaign(cid).is_frozen():
        run_campaign(from_conf(
            CampaignConfig, "campaign/default", id=cid, data=name, model=name, groups=dict(GROUPS), seed=seed,
            filters=[FilterSpec("not_opted_out", "marketing_opt_out", "==", False)],
            policy={"kind": "top_fraction", "top_fraction": 0.3}), root)
    return root, cid


class World:
    """The frozen campaign of one world and what each re-randomised campaign needs."""

    def __init__(self, root: Path, cid: str) -> None:
        paths = Layout(root).campaign(cid)
        self.manifest = read_json(paths.manifest)
        table = pd.read_parquet(paths.table).sort_values("rank", kind="stable").reset_index(drop=True)
        self.ranked = table[["client_id", "score", "rank", "percentile"]]
        truth = read_table(Layout(root).dataset(self.manifest["data"]["name"]), "truth").set_index("client_id")
        self.truth = truth.reset_index()
        t = truth.loc[self.ranked["client_id"].to_numpy()]
        self.tau = (t["p_treated"] - t["p_control"]).to_numpy()
        self.tau_rev = self.tau * t["basket_scale"].to_numpy() * BASKET_FACTOR
        self.score = self.ranked["score"].to_numpy()
        self.policy = from_conf(PolicyConfig, "campaign/default:policy", kind="top_fraction", top_fraction=0.3)
        self.n = len(table)

    def campaign(self, seed: int) -> tuple[pd.DataFrame, dict]:
        """A re-randomised campaign table (ranked order) and its manifest."""
        assigned = assign_groups(self.ranked["client_id"].to_numpy(), GROUPS, derive_seed(seed, "split"))
        split = self.ranked.merge(assigned, on="client_id", how="left", validate="1:1")
        offers, threshold = assign_offers(split, self.policy)
        table = build_campaign_table(offers, self.manifest["model"]["version"], "bench")
        return table, dict(self.manifest, threshold=threshold, campaign_id="bench")

    def truth_effects(self, cutoff: float) -> dict[str, dict[str, float]]:
        above = offer_mask(self.score, cutoff)
        out = {}
        for outcome, tau in (("response", self.tau), ("revenue", self.tau_rev)):
            a, b = float(tau[above].mean()), float(tau.mean())
            out[outcome] = {"targeted_vs_control": a, "random_target_vs_control": b,
                            "targeted_group_vs_control": float((tau * above).mean()), "model_value_per_offer": a - b}
        return out

    def responses(self, table: pd.DataFrame, seed: int) -> pd.DataFrame:
        return draw_responses(self.truth, table["client_id"].to_numpy(), table["offer"].to_numpy(), seed)


def coverage(world: World, runs: int, seed: int, cfg: ev.EvaluateConfig) -> tuple[dict, int, float]:
    welch_cfg = from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", n_boot=0, revenue_variance="welch")
    rows, alarms = [], 0
    t0 = time.perf_counter()
    for r in range(runs):
        s = seed * 100_003 + r
        table, manifest = world.campaign(s)
        joined = join_responses(table, world.responses(table, s + 1), "observed")
        res = ev.evaluate_campaign(joined, manifest, cfg)
        alarms += bool(res["checks"]["failed"])
        truth = world.truth_effects(res["score_cutoff"])
        masks = ev.design_masks(joined, manifest, res["score_cutoff"])
        welch = ev.revenue_effects(joined["revenue"].to_numpy(), masks, welch_cfg)
        for comp in COMPARISONS:
            for outcome in ("response", "revenue"):
                e, true = res[comp][outcome], truth[outcome][comp]
                alt = welch[comp] if outcome == "revenue" else None
                rows.append({"key": f"{comp}.{outcome}", "estimate": e["estimate"], "se": e["se"],
                             "covered": e["ci_low"] <= true <= e["ci_high"], "error": e["estimate"] - true,
                             "welch_covered": alt.covers(true) if alt is not None else np.nan, "method": e["method"]})
    table = pd.DataFrame(rows)
    summary = {}
    for key, g in table.groupby("key", sort=False):
        mean_se = float(g["se"].mean())
        summary[key] = {"coverage": float(g["covered"].mean()), "bias_over_se": abs(float(g["error"].mean())) / mean_se,
                        "sd_over_mean_se": float(g["estimate"].std(ddof=1)) / mean_se,
                        "welch_coverage": None if g["welch_covered"].isna().all() else float(g["welch_covered"].mean()),
                        "small_cell_runs": int(g["method"].str.contains("Newcombe").sum())}
    return summary, alarms, time.perf_counter() - t0


def lose(responses: pd.DataFrame, table: pd.DataFrame, rng: np.random.Generator, group: str | None,
         share: float) -> pd.DataFrame:
    """Drop ``share`` of the outcome records of ``group`` (every group when None), at random."""
    pool = np.arange(len(responses)) if group is None else np.flatnonzero(table["group"].to_numpy() == group)
    lost = rng.choice(pool, size=int(round(share * len(pool))), replace=False)
    return responses.drop(index=responses.index[lost])


def check_rates(world: World, runs: int, seed: int, alpha: float, loss: float, background: float) -> dict:
    """How often the checks fire per scenario (the checks ``evaluate_campaign`` runs, on the same join)."""
    scenarios = [("no loss", None, 0.0), (f"{background:.0%} of all records lost at random", "all", background)]
    scenarios += [(f"{loss:.0%} of {g} records lost", g, loss) for g in GROUPS]
    out = {}
    for name, group, share in scenarios:
        rng = np.random.default_rng([seed, len(out)])
        fired = {"any": 0, "sample_ratio": 0, "missing_outcomes": 0}
        for r in range(runs):
            s = seed * 7_919 + 10_000 * len(out) + r
            table, manifest = world.campaign(s)
            resp = world.responses(table, s + 1)
            if share:
                resp = lose(resp, table, rng, None if group == "all" else group, share)
            joined = join_responses(table, resp, "observed")
            masks = ev.design_masks(joined, manifest, ev.score_cutoff(manifest, joined))
            checks = run_checks(joined, GROUPS, alpha, "observed", joined["has_outcome"].to_numpy(),
                                {"targeted": masks["t_above"], "random_target": masks["random_target"]})
            fired["any"] += bool(checks["failed"])
            for k in ("sample_ratio", "missing_outcomes"):
                fired[k] += checks["items"][k]["status"] == "fail"
        out[name] = {k: v / runs for k, v in fired.items()}
        print(f"  {name}: checks fired in {fired['any']}/{runs} runs (sample ratio {fired['sample_ratio']}, "
              f"missing outcomes {fired['missing_outcomes']})", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="20000,100000", help="world sizes (clients), comma-separated")
    ap.add_argument("--runs", type=int, default=1000, help="campaigns per world for coverage and bias")
    ap.add_argument("--check-runs", type=int, default=500, help="campaigns per loss scenario (largest world)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--cache", default=str(Path(__file__).resolve().parent.parent / "artifacts" / "bench_evaluation"))
    ap.add_argument("--loss", type=float, default=0.05)
    ap.add_argument("--background-loss", type=float, default=0.03)
    args = ap.parse_args()
    t0 = time.perf_counter()
    cfg = from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", n_boot=0)  # the Qini bootstrap is not under test here
    sizes = [int(s) for s in args.sizes.split(",")]
    report: dict = {"benchmark": "evaluation_validity", "runs": args.runs, "alpha": cfg.alpha,
                    "srm_alpha": cfg.srm_alpha, "revenue_variance": cfg.revenue_variance, "worlds": {}}
    checks_ok: dict[str, bool] = {}
    for n in sizes:
        tb = time.perf_counter()
        world = World(*build_world(Path(args.cache), n, args.seed))
        print(f"world of {n:,} clients: campaign of {world.n:,} clients ready in {time.perf_counter() - tb:.1f} s",
              flush=True)
        summary, alarms, secs = coverage(world, args.runs, args.seed + n, cfg)
        print(f"{args.runs} campaigns evaluated in {secs:.1f} s ({secs / args.runs:.3f} s each); "
              f"checks fired without loss in {alarms}/{args.runs}", flush=True)
        for key, v in summary.items():
            welch = "" if v["welch_coverage"] is None else f" (Welch's interval: {v['welch_coverage']:.3f})"
            print(f"  {key}: coverage {v['coverage']:.3f}{welch}, "
                  f"bias {v['bias_over_se']:.3f} SE, sd/SE {v['sd_over_mean_se']:.3f}, "
                  f"small-cell intervals in {v['small_cell_runs']} runs", flush=True)
            checks_ok[f"n{n}.{key}.coverage_in_0.93_0.97"] = 0.93 <= v["coverage"] <= 0.97
            checks_ok[f"n{n}.{key}.bias_under_0.1_se"] = v["bias_over_se"] < 0.1
        report["worlds"][str(n)] = {"campaign_clients": world.n, "effects": summary,
                                    "false_alarms_in_coverage_runs": alarms / args.runs, "seconds": round(secs, 1)}
    big = max(sizes)
    world = World(*build_world(Path(args.cache), big, args.seed))
    print(f"checks at {big:,} clients, {args.check_runs} campaigns per scenario, level {cfg.srm_alpha}:", flush=True)
    rates = check_rates(world, args.check_runs, args.seed + 1, cfg.srm_alpha, args.loss, args.background_loss)
    report["checks_by_scenario"] = rates
    lossy = {g: rates[f"{args.loss:.0%} of {g} records lost"]["any"] for g in GROUPS}
    checks_ok[f"detect_targeted_loss_at_{big}_at_least_0.95"] = lossy["targeted"] >= 0.95
    for g in ("random_target", "control"):
        checks_ok[f"detect_{g}_loss_at_{big}_at_least_0.80"] = lossy[g] >= 0.80
    nulls = [rates["no loss"]["any"], rates[f"{args.background_loss:.0%} of all records lost at random"]["any"]]
    nulls += [w["false_alarms_in_coverage_runs"] for w in report["worlds"].values()]
    checks_ok["false_alarms_at_most_0.015"] = max(nulls) <= 0.015
    failed = [k for k, v in checks_ok.items() if not v]
    print(f"checks: {sum(checks_ok.values())}/{len(checks_ok)} pass" + (f"; FAILED: {failed}" if failed else ""))
    report.update(checks=checks_ok, failed=failed, all_pass=not failed, seconds=round(time.perf_counter() - t0, 1))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
