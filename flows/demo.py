"""The main job end to end on the embedded synthetic world, in one process:
generate -> train -> campaign -> simulate_responses -> evaluate.

    python -m flows.demo [hydra overrides, e.g. paths.artifacts=/tmp/a data.n_clients=50000]

Each step is the same flow a user runs on its own (``python -m flows.<name>``), here as a
subflow of one ``demo`` run, so one Prefect server serves them all. A rerun with the same
settings reuses what is already there: the same world, a model version that is only promoted
when it is better, and a frozen campaign that is a no-op.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from prefect import flow

from flows.deployments import run_campaign, run_evaluate, run_generate, run_simulate_responses, run_train
from tasks.core.config import compose_config


@flow(name="demo")
def demo_flow(overrides: list[str] | None = None) -> dict[str, Any]:
    """Run the five steps with the same overrides; return where each output went."""
    overrides = list(overrides or [])
    cfg = compose_config(overrides)
    artifacts = Path(str(cfg.paths.artifacts)).resolve()
    world = run_generate(overrides)
    model = run_train(overrides)
    campaign = run_campaign(overrides)
    cid = campaign["campaign_id"]
    responses = run_simulate_responses([*overrides, f"campaign_id={cid}"])
    metrics = run_evaluate([*overrides, f"campaign_id={cid}"])
    return {
        "data": str(artifacts / "data" / world["name"]),
        "model": f"{model['name']} {model['version']} ({'champion' if model['promoted'] else 'not promoted'}: {model['reason']})",
        "model_dir": str(model["dir"]),
        "campaign": campaign["folder"],
        "responses": responses["path"],
        "evaluation": str(artifacts / "evaluations" / cid / "report.md"),
        "metrics": metrics,
    }


def _headline(metrics: dict[str, Any]) -> list[str]:
    def eff(key: str) -> str:
        r = metrics[key]["response"]
        return f"{r['estimate']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}], p={r['p_value']:.2g}"

    q = metrics["model_quality"]["qini_auc"]
    checks = metrics["checks"]
    passed = [k for k, v in checks["items"].items() if v["status"] == "pass"]
    return [
        f"  primary: offered targeted vs control above the cutoff (response rate): {eff('targeted_vs_control')}",
        f"  random_target vs control (response rate):                              {eff('random_target_vs_control')}",
        f"  model Qini AUC on random_target + control:                             {q['estimate']:.4f}"
        + (f" [{q['ci_low']:.4f}, {q['ci_high']:.4f}]" if q.get("ci_low") is not None else ""),
        f"  checks: {'FAILED ' + ', '.join(checks['failed']) if checks['failed'] else 'passed'} "
        f"({', '.join(passed) or 'none run'} passed at p >= {checks['alpha']})",
    ]


def main() -> None:
    """Command-line entry: ``python -m flows.demo [overrides]``."""
    from omegaconf import OmegaConf

    from flows._cli import parse_args, report_errors
    from flows._help import help_text
    from tasks.core.config import compose_config

    args = parse_args(sys.argv[1:])
    if args.help:
        print(help_text("python -m flows.demo"))
        return
    with report_errors(debug=args.debug, command="python -m flows.demo"):
        cfg = compose_config(args.overrides)  # bad overrides fail here, before any run starts
        if args.show_config:
            print(OmegaConf.to_yaml(cfg), end="")
            return
        out = demo_flow(args.overrides)
    print("\ndemo finished")
    print(f"  synthetic world:  {out['data']}")
    print(f"  model:            {out['model']} -> {out['model_dir']}")
    print(f"  campaign:         {out['campaign']}")
    print(f"  responses:        {out['responses']}")
    print(f"  evaluation:       {out['evaluation']} (and report.html beside it)")
    print("\n".join(_headline(out["metrics"])))


if __name__ == "__main__":
    main()
