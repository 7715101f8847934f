"""Train a model, register it, and promote it when it is better.

    python -m flows.train                                   # synthetic world -> synthetic_uplift
    python -m flows.train data=hillstrom model=hillstrom    # real uplift data
    python -m flows.train data=ifood model=ifood            # response model
    python -m flows.train data=one_click model=one_click    # activity decline + segmentation
    python -m flows.train ... model.promote=always          # always make the new version champion
    python -m flows.train +action=promote model.name=synthetic_uplift model.version=v0002

The synthetic world's training set is its campaign history joined with point-in-time
factors as of each campaign date (never the truth table). Versions land in
``<artifacts>/models/<name>/<version>/``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tasks.core.config import to_dataclass
from tasks.core.errors import ConfigError
from tasks.modelling.registry import ModelRegistry
from tasks.modelling.training import ModelConfig, TrainResult, register_version, train_response, train_uplift, validate_model_config


@task(cache_policy=NO_CACHE, persist_result=False)
def load_training_data(data: dict[str, Any], factors: dict[str, Any], artifacts: str, shared_data: str) -> dict[str, Any]:
    """Features, target, treatment (uplift data) and extras of the configured dataset."""
    kind = data.get("kind", "synthetic")
    if kind == "synthetic":
        from factors import factor_set
        from tasks.data.tables import dataset_dir, read_manifest, read_table
        from tasks.modelling.training import build_training_set

        data_dir = dataset_dir(artifacts, data.get("name", "synthetic"))
        read_manifest(data_dir)
        history = read_table(data_dir, "campaign_history")
        set_name = factors.get("name", "default")
        names = list(factors.get("factors") or []) or factor_set(set_name)
        X, t, y = build_training_set(data_dir, history, names)
        return {"X": X, "treatment": t, "y": y, "dataset": data.get("name"), "factor_set": set_name, "frame": None}
    from tasks.data.datasets import TabularDataConfig, feature_frame, load_tabular_dataset

    cfg = to_dataclass(data, TabularDataConfig, "data")
    ds = load_tabular_dataset(cfg, Path(shared_data))
    X = feature_frame(ds, engineer=cfg.feature_engineering)
    t = ds.frame[ds.treatment].to_numpy() if ds.treatment else None
    return {"X": X, "treatment": t, "y": ds.frame[ds.target].to_numpy(), "dataset": ds.name,
            "factor_set": None, "frame": ds.frame, "profit_column": cfg.profit_column if ds.kind == "one_click" else None}


@task(cache_policy=NO_CACHE, persist_result=False)
def fit_candidates(bundle: dict[str, Any], model_cfg: ModelConfig) -> TrainResult:
    """Cross-validate the candidates, refit the best, measure it on held-out rows."""
    if model_cfg.kind == "uplift":
        if bundle["treatment"] is None:
            raise ConfigError(f"config 'model': kind uplift needs a dataset with a treatment column; "
                              f"dataset {bundle['dataset']!r} has none (use a response model, e.g. model=response)")
        return train_uplift(bundle["X"], bundle["treatment"], bundle["y"], model_cfg,
                            progress=get_run_logger().info)
    return train_response(bundle["X"], bundle["y"], model_cfg)


@task(cache_policy=NO_CACHE, persist_result=False)
def segment_clients(bundle: dict[str, Any], result: TrainResult, model_cfg: ModelConfig) -> dict[str, Any]:
    """one_click: clients by out-of-fold probability of decline x profit (table + plot)."""
    from tasks.modelling.reporting import segmentation_plot, segmentation_table, _md_table
    from tasks.modelling.training import out_of_fold_proba

    X = bundle["X"][result.features]
    proba = out_of_fold_proba(X, bundle["y"], result.params, model_cfg)
    profit = bundle["frame"][bundle["profit_column"]].to_numpy(dtype=float)
    p_cut = float(np.quantile(proba, model_cfg.segment_quantile))
    profit_cut = float(np.median(profit))
    table = segmentation_table(proba, profit, p_cut, profit_cut)
    text = (f"Out-of-fold predicted probability of decline (cut at the {model_cfg.segment_quantile:.0%} quantile, "
            f"{p_cut:.3f}) x profit (cut at the median, {profit_cut:.2f}). Retain first: high risk / high profit.\n\n"
            + _md_table(table))
    return {"table": table, "text": text, "png": segmentation_plot(proba, profit, p_cut, profit_cut)}


@task(cache_policy=NO_CACHE, persist_result=False)
def register_model(result: TrainResult, model_cfg: ModelConfig, artifacts: str, dataset: str,
                   factor_set: str | None, extra_files: dict[str, Any]) -> dict[str, Any]:
    """Write the version into the registry and promote it per the config."""
    reg = ModelRegistry(Path(artifacts) / "models")
    version, promoted, reason = register_version(result, reg, model_cfg.name, model_cfg, dataset, factor_set, extra_files)
    return {"name": model_cfg.name, "version": version, "promoted": promoted, "reason": reason,
            "champion": reg.champion(model_cfg.name), "dir": str(reg.version_dir(model_cfg.name, version))}


def summary_markdown(info: dict[str, Any], result: TrainResult) -> str:
    """Short summary of a training run."""
    lines = [f"# Trained `{info['name']}` {info['version']}", "",
             f"Approach {result.approach}; {result.n_train} training rows, {result.n_test} held-out rows.",
             f"Champion: {info['champion']} ({info['reason']}).", ""]
    for k, v in result.heldout.items():
        if isinstance(v, dict):
            lines.append(f"- held-out {k}: {v['value']:.4f} [{v['ci_low']:.4f}, {v['ci_high']:.4f}]")
    if result.checks.dropped:
        lines.append(f"- dropped by checks: {result.checks.dropped}")
    return "\n".join(lines) + "\n"


@flow(name="train-model")
def train_model(data: dict[str, Any] | None = None, model: dict[str, Any] | None = None,
                factors: dict[str, Any] | None = None, artifacts: str = "artifacts",
                shared_data: str = "../shared/data") -> dict[str, Any]:
    """Train the configured model on the configured dataset and register it; return the version info."""
    model_cfg = to_dataclass(model or {}, ModelConfig, "model")
    validate_model_config(model_cfg)
    bundle = load_training_data(data or {}, factors or {}, artifacts, shared_data)
    result = fit_candidates(bundle, model_cfg)
    extra: dict[str, Any] = {}
    if bundle.get("profit_column"):
        seg = segment_clients(bundle, result, model_cfg)
        result.extras["report_sections"] = {"Segmentation: probability of decline x profit": seg["text"]}
        extra = {"segmentation.png": seg["png"], "segmentation.csv": seg["table"].to_csv(index=False)}
    info = register_model(result, model_cfg, artifacts, bundle["dataset"], bundle["factor_set"], extra)
    create_markdown_artifact(summary_markdown(info, result), key=f"train-{model_cfg.name.lower().replace('_', '-')}",
                             description="training summary")
    return info


@flow(name="promote-model")
def promote_model(name: str, version: str, artifacts: str = "artifacts") -> dict[str, Any]:
    """Make ``version`` the champion of model ``name``."""
    reg = ModelRegistry(Path(artifacts) / "models")
    reg.promote(name, version)
    return {"name": name, "champion": reg.champion(name)}


def _body(cfg: DictConfig) -> None:
    node = OmegaConf.to_container(cfg, resolve=True)
    action = node.get("action", "train")
    if action == "promote":
        m = node.get("model", {})
        if not m.get("version"):
            raise ConfigError("config 'model', key 'version': give the version to promote, e.g. model.version=v0002")
        info = promote_model(m["name"], m["version"], node["paths"]["artifacts"])
        print(f"model {info['name']}: champion is now {info['champion']}")
        return
    if action != "train":
        raise ConfigError(f"config 'action': {action!r}; use train (default) or promote")
    info = train_model(node.get("data"), node.get("model"), node.get("factors"),
                       node["paths"]["artifacts"], node["paths"]["shared_data"])
    state = "champion" if info["promoted"] else "not promoted"
    print(f"model {info['name']} {info['version']} ({state}: {info['reason']}) -> {info['dir']}")


def main() -> None:
    from flows._cli import run_cli

    run_cli(_body)


if __name__ == "__main__":
    main()
