"""Train a model, register it, and promote it when it is better.

    python -m flows.train                                   # synthetic world -> synthetic_uplift
    python -m flows.train data=hillstrom model=hillstrom    # real uplift data
    python -m flows.train data=ifood model=ifood            # response model
    python -m flows.train data=one_click model=one_click    # activity decline + segmentation
    python -m flows.train data=table data.path=/data/bank.csv data.target=y data.positive=yes model=response
    python -m flows.train data=table data.path=/data/rct.csv data.target=response data.treatment=is_treatment model=uplift
    python -m flows.train ... model.promote=always          # always make the new version champion
    python -m flows.train +action=promote model.name=synthetic_uplift model.version=v0002

The synthetic world's training set is its campaign history joined with point-in-time
factors as of each campaign date (never the truth table); a table's is its feature columns
(see conf/data/table.yaml). The generic models (model=uplift, model=response) trained on a
table register as ``<dataset>_<kind>`` unless ``model.name`` is given. Versions land in
``<artifacts>/models/<name>/<version>/``. The work is done by plain functions in
``tasks/modelling``; this module wraps them as Prefect tasks and holds the CLI.
"""
from __future__ import annotations

import time
from typing import Any

from omegaconf import DictConfig, OmegaConf
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows._progress import heartbeat
from tasks.campaign.config import campaign_from_node
from tasks.campaign.eligible import eligible_reference
from tasks.core.config import from_conf, load_conf
from tasks.core.errors import ConfigError
from tasks.core.layout import Layout
from tasks.modelling import segmentation
from tasks.modelling.config import ModelConfig, name_for_dataset, validate_model_config
from tasks.modelling.guards import guard_messages
from tasks.modelling.registry import ModelRegistry
from tasks.modelling.reporting import render_summary
from tasks.modelling.training import TrainResult, register_version, train_on
from tasks.modelling.training_set import TrainingSet, load_training_set


@task(cache_policy=NO_CACHE, persist_result=False)
def load_training_data(data: dict[str, Any], factors: dict[str, Any], artifacts: str, shared_data: str) -> TrainingSet:
    """Features, target, treatment (uplift data), profit (one_click) and description of the configured dataset."""
    log, t0 = get_run_logger(), time.perf_counter()
    with heartbeat(log.info, "training set (point-in-time factors per past campaign)"):
        ts = load_training_set(data, factors, Layout(artifacts), shared_data)
    log.info("training set of %s: %s rows, %d features, %.1f s", ts.dataset, f"{len(ts.X):,}", ts.X.shape[1],
             time.perf_counter() - t0)
    return ts


@task(cache_policy=NO_CACHE, persist_result=False)
def fit_candidates(training_set: TrainingSet, model_cfg: ModelConfig) -> TrainResult:
    """Cross-validate the candidates, refit the best, measure it on held-out rows."""
    log, t0 = get_run_logger(), time.perf_counter()
    with heartbeat(log.info, "training"):
        result = train_on(training_set, model_cfg, progress=log.info)
    log.info("chose %s: fitted on %s training rows, measured on %s held-out rows, registered refitted on all "
             "%s rows; %.1f s", result.approach, f"{result.n_train:,}", f"{result.n_test:,}",
             f"{result.validation.get('refit_rows', result.n_train + result.n_test):,}", time.perf_counter() - t0)
    oot = result.validation.get("out_of_time") or {}
    key = "qini_auc" if result.kind == "uplift" else "roc_auc"
    if key in oot:
        log.info("out-of-time hold-out (the latest campaign, %s, %s rows): %s %.4f, CI [%.4f, %.4f]", oot["date"],
                 f"{oot['n']:,}", key, oot[key]["value"], oot[key]["ci_low"], oot[key]["ci_high"])
    return result


@task(cache_policy=NO_CACHE, persist_result=False)
def drift_reference(result: TrainResult, data: dict[str, Any], campaign: dict[str, Any], artifacts: str) -> None:
    """Point-in-time data: replace the training rows' reference with the eligible base at the
    latest training campaign date, through the campaign's base filters (what campaigns score)."""
    log, t0 = get_run_logger(), time.perf_counter()
    cfg = campaign_from_node(campaign)[1]
    data_dir = Layout(artifacts).dataset(str(data["name"]))
    result.reference, described = eligible_reference(data_dir, cfg.filters, result.features, seed=result.seed)
    result.extras["drift_reference"] = described
    log.info("drift reference: %s clients of the eligible base on %s (campaign %s's filters); %.1f s",
             f"{described['rows']:,}", described["date"], cfg.id, time.perf_counter() - t0)


@task(cache_policy=NO_CACHE, persist_result=False)
def segment_clients(training_set: TrainingSet, result: TrainResult, model_cfg: ModelConfig) -> segmentation.Segmentation:
    """one_click: clients by out-of-fold probability of decline x profit (table + plot)."""
    return segmentation.segment_clients(training_set.X, training_set.y, training_set.profit, result, model_cfg)


@task(cache_policy=NO_CACHE, persist_result=False)
def register_model(result: TrainResult, model_cfg: ModelConfig, artifacts: str, dataset: str | None,
                   factor_set: str | None, extra_files: dict[str, Any]) -> dict[str, Any]:
    """Write the version into the registry and promote it per the config."""
    reg = ModelRegistry(Layout(artifacts).models)
    log, t0 = get_run_logger(), time.perf_counter()
    with heartbeat(log.info, "registering (report, plots, champion comparison)"):
        version, promoted, reason = register_version(result, reg, model_cfg.name, model_cfg, dataset, factor_set,
                                                     extra_files)
    log.info("registered %s %s (%s: %s); %.1f s", model_cfg.name, version, "champion" if promoted else "not promoted",
             reason, time.perf_counter() - t0)
    warnings = guard_messages(reg.metadata(model_cfg.name, version))
    for message in warnings:
        log.warning(message)
    return {"name": model_cfg.name, "version": version, "promoted": promoted, "reason": reason, "warnings": warnings,
            "champion": reg.champion(model_cfg.name), "dir": str(reg.version_dir(model_cfg.name, version))}


@flow(name="train-model")
def train_model(data: dict[str, Any] | None = None, model: dict[str, Any] | None = None,
                factors: dict[str, Any] | None = None, artifacts: str = "artifacts",
                shared_data: str = "../shared/data", campaign: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the configured model on the configured dataset and register it; return the version info.

    ``model`` overrides conf/model/uplift.yaml key by key; ``data``, ``factors`` and ``campaign``
    are the composed nodes (None: conf/data/synthetic.yaml, conf/factors/default.yaml and
    conf/campaign/default.yaml). The CLI passes all of them as composed. On a dataset of
    point-in-time factors (the synthetic world) the model's drift reference is the campaign's
    eligible base at the latest training date (:func:`drift_reference`).
    """
    model_cfg = from_conf(ModelConfig, "model/uplift", **(model or {}))
    validate_model_config(model_cfg)
    if data is None:
        data = OmegaConf.to_container(load_conf("data/synthetic"), resolve=True)
    if factors is None:
        factors = OmegaConf.to_container(load_conf("factors/default"), resolve=True)
    training_set = load_training_data(data, factors, artifacts, shared_data)
    model_cfg = name_for_dataset(model_cfg, training_set.dataset, data.get("kind"))
    result = fit_candidates(training_set, model_cfg)
    if data.get("kind") == "synthetic":
        if campaign is None:
            campaign = OmegaConf.to_container(load_conf("campaign/default"), resolve=True)
        drift_reference(result, data, campaign, artifacts)
    extra: dict[str, Any] = {}
    if training_set.profit is not None:
        seg = segment_clients(training_set, result, model_cfg)
        result.extras["report_sections"] = {segmentation.SECTION_TITLE: seg.text}
        extra = seg.files()
    info = register_model(result, model_cfg, artifacts, training_set.dataset, training_set.factor_set, extra)
    create_markdown_artifact(render_summary(info["name"], info["version"], info["champion"], info["reason"], result),
                             key=f"train-{model_cfg.name.lower().replace('_', '-')}", description="training summary")
    return info


@flow(name="promote-model")
def promote_model(name: str, version: str, artifacts: str = "artifacts") -> dict[str, Any]:
    """Make ``version`` the champion of model ``name``."""
    reg = ModelRegistry(Layout(artifacts).models)
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
                       node["paths"]["artifacts"], node["paths"]["shared_data"], node.get("campaign"))
    for message in info.get("warnings") or []:
        print(f"WARNING {message}")
    state = "champion" if info["promoted"] else "not promoted"
    print(f"model {info['name']} {info['version']} ({state}: {info['reason']}) -> {info['dir']}")


def main() -> None:
    from flows._cli import run_cli

    run_cli(_body)


if __name__ == "__main__":
    main()
