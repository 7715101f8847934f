"""The ground truth of the synthetic world and the responses drawn from it.

The truth table holds each client's response probability without and with the offer and
the uplift type. Past randomised campaigns (``campaign_history``) and the outcomes of a new
offer (:func:`draw_responses`) are drawn from it. Only response simulation and oracle
measures read it; factor, training and campaign code never do.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.core.config import SyntheticDataConfig
from tasks.core.contracts import UPLIFT_TYPES
from tasks.core.errors import DataValidationError, NotFoundError
from tasks.data.synthetic.traits import history_window, rng_streams, zscore

# Weights of the standardised traits in the latent uplift score (before noise).
UPLIFT_WEIGHTS = {"discount": 1.0, "engagement": 1.0, "churn_risk": 0.3, "activity": -0.35, "unsubscribe": -0.1}


def simulate_truth(cfg: SyntheticDataConfig, traits: dict[str, np.ndarray]) -> pd.DataFrame:
    """Each client's true response probability without and with the offer, and the uplift type.

    A latent uplift score (traits + noise) is ranked; the lowest ``negative_uplift_share``
    are sleeping dogs, the highest ``persuadable_share`` persuadables; the middle splits into
    sure things and lost causes by a baseline propensity score. Within a type the effect grows
    smoothly with the score. ``p_control`` is rescaled so its mean is ``base_response_rate``.
    """
    rng = rng_streams(cfg.seed)["truth"]
    n = cfg.n_clients
    t = traits
    churn_risk = -np.log(np.maximum(t["lapse"] - t["reg"], 1.0))
    log_act = np.log(t["activity"] + 0.05)
    w = UPLIFT_WEIGHTS
    score = (
        w["discount"] * zscore(t["discount"])
        + w["engagement"] * zscore(t["engagement"])
        + w["churn_risk"] * zscore(churn_risk)
        + w["activity"] * zscore(log_act)
        + w["unsubscribe"] * zscore(np.sqrt(t["unsub"]))
    )
    score = score / (score.std() or 1.0) + cfg.uplift_noise * rng.standard_normal(n)
    propensity = zscore(log_act) - 0.7 * zscore(churn_risk) + 0.5 * rng.standard_normal(n)

    n_dog = int(round(cfg.negative_uplift_share * n))
    n_pers = int(round(cfg.persuadable_share * n))
    n_pers = min(n_pers, n - n_dog)
    order = np.argsort(score, kind="stable")
    kind = np.full(n, 1, dtype=np.int8)  # 0 persuadable, 1 sure_thing, 2 lost_cause, 3 sleeping_dog
    kind[order[:n_dog]] = 3
    kind[order[n - n_pers:]] = 0
    middle = order[n_dog:n - n_pers]
    n_sure = min(int(round(cfg.sure_thing_share * n)), len(middle))
    mid_order = middle[np.argsort(-propensity[middle], kind="stable")]
    kind[mid_order[n_sure:]] = 2

    # rank of the score inside the type, 0..1 (0 = weakest effect)
    within = np.zeros(n)
    pers = order[n - n_pers:]
    if n_pers:
        within[pers] = np.arange(n_pers) / max(n_pers - 1, 1)
    dogs = order[:n_dog]
    if n_dog:
        within[dogs] = 1.0 - np.arange(n_dog) / max(n_dog - 1, 1)

    mult = np.array([0.7, 3.0, 0.35, 1.6])[kind]
    raw = np.exp(0.6 * propensity) * mult
    p_control = raw * (cfg.base_response_rate / raw.mean())
    for _ in range(5):  # clipping moves the mean; a few rescalings bring it back
        p_control = np.clip(p_control, 0.001, 0.6)
        p_control = p_control * (cfg.base_response_rate / p_control.mean())
    p_control = np.clip(p_control, 0.001, 0.6)

    effect = np.zeros(n)
    is_pers = kind == 0
    effect[is_pers] = 0.03 + 0.15 * within[is_pers]
    is_dog = kind == 3
    effect[is_dog] = -np.minimum(0.75 * p_control[is_dog], 0.01 + 0.05 * within[is_dog])
    p_treated = np.clip(p_control + effect, 0.0, 0.95)

    return pd.DataFrame({
        "client_id": np.arange(1, n + 1, dtype=np.int64),
        "p_control": p_control.astype(np.float64),
        "p_treated": p_treated.astype(np.float64),
        "uplift_type": pd.Categorical.from_codes(kind, categories=list(UPLIFT_TYPES)),
        "basket_scale": t["basket"].astype(np.float64),
    })


def _revenue(rng: np.random.Generator, basket: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Heavy-tailed basket value of responders (zero for non-responders)."""
    value = basket * rng.lognormal(0.15, 0.6, len(basket)) * (1.0 + rng.pareto(3.0, len(basket)) * 0.3)
    return np.where(response == 1, np.round(value, 2), 0.0)


def draw_responses(
    truth: pd.DataFrame,
    client_ids: np.ndarray | pd.Series | list,
    treated: np.ndarray | pd.Series | list,
    seed: int,
) -> pd.DataFrame:
    """Outcomes of an offer drawn from the truth table.

    ``treated[i]`` says whether ``client_ids[i]`` got the offer; the response is Bernoulli
    with ``p_treated`` or ``p_control`` and responders' revenue is a heavy-tailed basket
    value driven by the client's basket trait (``basket_scale``; 40 when the truth table
    lacks it). Returns client_id, response (0/1) and revenue in the input order.
    """
    ids = np.asarray(client_ids)
    treat = np.asarray(treated)
    if treat.dtype != bool:
        if not np.isin(treat, [0, 1]).all():
            raise DataValidationError("responses", "treated", "treatment flags must be boolean or 0/1")
        treat = treat.astype(bool)
    if len(ids) != len(treat):
        raise DataValidationError(
            "responses", "treated", f"{len(treat)} treatment flags for {len(ids)} client ids"
        )
    for col in ("client_id", "p_control", "p_treated"):
        if col not in truth.columns:
            raise DataValidationError("truth", col, "missing column")
    lookup = pd.Index(truth["client_id"].to_numpy())
    pos = lookup.get_indexer(ids)
    if (pos < 0).any():
        missing = ids[pos < 0]
        raise NotFoundError(
            f"table 'truth', column 'client_id': {len(missing)} client id(s) not in the truth table, "
            f"e.g. {missing[:5].tolist()}"
        )
    p = np.where(treat, truth["p_treated"].to_numpy()[pos], truth["p_control"].to_numpy()[pos])
    basket = (truth["basket_scale"].to_numpy()[pos] if "basket_scale" in truth.columns
              else np.full(len(ids), 40.0))
    rng = np.random.default_rng(seed)
    response = (rng.random(len(ids)) < p).astype(np.int64)
    revenue = _revenue(rng, basket.astype(np.float64), response)
    return pd.DataFrame({"client_id": ids.astype(np.int64), "response": response, "revenue": revenue})


def past_campaign_ids(cfg: SyntheticDataConfig) -> list[dict[str, str]]:
    """Id and date of every past campaign, in date order."""
    days = sorted(pd.Timestamp(d) for d in cfg.past_campaign_dates)
    return [{"campaign_id": f"past-{d:%Y-%m-%d}", "campaign_date": f"{d:%Y-%m-%d}"} for d in days]


def simulate_campaign_history(
    cfg: SyntheticDataConfig, traits: dict[str, np.ndarray], truth: pd.DataFrame
) -> pd.DataFrame:
    """Past randomised campaigns: a random share of clients registered before each date,
    treatment ~ Bernoulli(past_campaign_treated_share), response drawn from truth."""
    rng = rng_streams(cfg.seed)["history"]
    start, _, _ = history_window(cfg)
    n = cfg.n_clients
    frames = []
    for item in past_campaign_ids(cfg):
        day = (pd.Timestamp(item["campaign_date"]) - start) / pd.Timedelta(days=1)
        eligible = (traits["reg"] < day) & ~traits["marketing_opt"]
        chosen = np.flatnonzero(eligible & (rng.random(n) < cfg.past_campaign_fraction))
        treated = rng.random(len(chosen)) < cfg.past_campaign_treated_share
        p = np.where(treated, truth["p_treated"].to_numpy()[chosen], truth["p_control"].to_numpy()[chosen])
        response = (rng.random(len(chosen)) < p).astype(np.int64)
        revenue = _revenue(rng, traits["basket"][chosen].astype(np.float64), response)
        frames.append(pd.DataFrame({
            "client_id": (chosen + 1).astype(np.int64),
            "campaign_id": item["campaign_id"],
            "campaign_date": np.full(len(chosen), np.datetime64(item["campaign_date"], "us")),
            "treatment": treated.astype(np.int64),
            "response": response,
            "revenue": revenue,
        }))
    out = pd.concat(frames, ignore_index=True)
    out["campaign_id"] = out["campaign_id"].astype(
        pd.CategoricalDtype([c["campaign_id"] for c in past_campaign_ids(cfg)])
    )
    return out

