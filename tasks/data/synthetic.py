"""The embedded synthetic retail world.

Every client gets latent traits (activity rate, basket scale, discount affinity, category
preferences, online propensity, per-channel engagement, unsubscribe tendency, time to lapse).
The traits drive everything observable: purchases (a Poisson process over the history window
that drops sharply once the client lapses), message events per channel (sends of scheduled
mailings; opens, clicks, purchases, unsubscribes and bounces with trait-dependent
probabilities), opt-outs, and the response to an offer with and without treatment.

The response is summarised in the ground-truth table (``p_control``, ``p_treated`` and the
uplift type). The true uplift is a mostly smooth function of traits that also show up in
behaviour (discount affinity, e-mail and push engagement, churn risk, purchase frequency,
unsubscribe tendency) plus modest idiosyncratic noise, so factors computed from purchases and
messages can recover it while no single raw column equals it.

Randomness: one ``numpy.random.SeedSequence(seed)`` is split into independent child streams,
one per table group, so each table depends only on the seed and the sizes.
Everything here is plain, vectorised numpy and pandas; nothing is written at import.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import SyntheticDataConfig
from tasks.core.contracts import (
    CATEGORIES,
    CHANNELS,
    CONTRACTS,
    EVENTS,
    PURCHASE_CHANNELS,
    UPLIFT_TYPES,
    validate_table,
)
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError
from tasks.core.io import atomic_write_json, atomic_write_parquet

TABLES = ("clients", "purchases", "messages", "campaign_history", "truth")
REGIONS = ("capital", "north", "south", "east", "west", "central")
REGION_SHARES = (0.30, 0.14, 0.18, 0.12, 0.12, 0.14)

# Child stream index of each table group inside the seed's SeedSequence.
_STREAMS = {"traits": 0, "clients": 1, "purchases": 2, "messages": 3, "history": 4, "truth": 5}

# Mailing schedule: channel -> (days between mailings, first mailing day, hour of day).
_MAILINGS = {"email": (7, 2, 10), "mobile_push": (7, 4, 18), "sms": (28, 10, 12)}

_DAY = 86_400
_US = 1_000_000
_LAPSED_ACTIVITY = 0.03  # share of the purchase rate left after a client lapses
_ROW_GROUP = 1_000_000

# Weights of the standardised traits in the latent uplift score (before noise).
UPLIFT_WEIGHTS = {"discount": 1.0, "engagement": 1.0, "churn_risk": 0.3, "activity": -0.35, "unsubscribe": -0.1}


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(children[i]) for name, i in _STREAMS.items()}


def _window(cfg: SyntheticDataConfig) -> tuple[pd.Timestamp, pd.Timestamp, float]:
    start = pd.Timestamp(cfg.start_date)
    end = pd.Timestamp(cfg.end_date)
    return start, end, (end - start) / pd.Timedelta(days=1)


def _zscore(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    sd = x.std()
    return (x - x.mean()) / (sd if sd > 0 else 1.0)


def _to_timestamps(start: pd.Timestamp, seconds: np.ndarray) -> np.ndarray:
    """Seconds after ``start`` (float) as datetime64[us], whole seconds."""
    base = np.datetime64(start.to_datetime64(), "s").astype(np.int64)
    stamps = np.asarray(seconds, dtype=np.float64).astype(np.int64)
    stamps += base
    stamps *= _US
    return stamps.view("datetime64[us]")


def validate_config(cfg: SyntheticDataConfig) -> None:
    """Reject inconsistent settings with a :class:`ConfigError` naming the key."""
    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"config 'data', key '{key}': {why}")

    if cfg.kind != "synthetic":
        raise bad("kind", f"flows.generate only builds synthetic worlds, got kind={cfg.kind!r}")
    if not isinstance(cfg.n_clients, int) or cfg.n_clients < 1:
        raise bad("n_clients", f"must be an integer >= 1, got {cfg.n_clients!r}")
    if not cfg.name or any(c in cfg.name for c in "/\\") or cfg.name.startswith("."):
        raise bad("name", f"must be a plain folder name, got {cfg.name!r}")
    for key in ("base_response_rate", "negative_uplift_share", "persuadable_share",
                "sure_thing_share", "past_campaign_fraction", "past_campaign_treated_share"):
        value = getattr(cfg, key)
        if not 0.0 <= float(value) <= 1.0:
            raise bad(key, f"must lie in [0, 1], got {value!r}")
    if not 0.0 < cfg.base_response_rate < 0.5:
        raise bad("base_response_rate", f"must lie in (0, 0.5), got {cfg.base_response_rate!r}")
    total = cfg.negative_uplift_share + cfg.persuadable_share + cfg.sure_thing_share
    if total > 1.0 + 1e-9:
        raise bad("negative_uplift_share",
                  f"negative_uplift_share + persuadable_share + sure_thing_share = {total:g} > 1")
    if cfg.uplift_noise < 0:
        raise bad("uplift_noise", f"must be >= 0, got {cfg.uplift_noise!r}")
    if cfg.shift < 0:
        raise bad("shift", f"must be >= 0, got {cfg.shift!r}")
    if cfg.response_window_days < 1:
        raise bad("response_window_days", f"must be >= 1, got {cfg.response_window_days!r}")
    try:
        start, end = pd.Timestamp(cfg.start_date), pd.Timestamp(cfg.end_date)
    except (ValueError, TypeError) as exc:
        raise bad("start_date", f"dates must be ISO dates: {exc}") from None
    if (end - start) < pd.Timedelta(days=60):
        raise bad("end_date", f"must be at least 60 days after start_date ({cfg.start_date}), got {cfg.end_date}")
    if not cfg.past_campaign_dates:
        raise bad("past_campaign_dates", "at least one past campaign date is needed")
    seen = set()
    for i, raw in enumerate(cfg.past_campaign_dates):
        try:
            day = pd.Timestamp(raw)
        except (ValueError, TypeError):
            raise bad(f"past_campaign_dates[{i}]", f"not a date: {raw!r}") from None
        if day in seen:
            raise bad(f"past_campaign_dates[{i}]", f"duplicate date {raw}")
        seen.add(day)
        last = end - pd.Timedelta(days=cfg.response_window_days)
        if not start < day <= last:
            raise bad(f"past_campaign_dates[{i}]",
                      f"{raw} must lie after start_date {cfg.start_date} and at least "
                      f"response_window_days={cfg.response_window_days} before end_date {cfg.end_date}")


# --------------------------------------------------------------------------------------
# latent traits


def simulate_traits(cfg: SyntheticDataConfig) -> dict[str, np.ndarray]:
    """Latent traits of every client (arrays of length ``n_clients``, float32 where possible).

    Times are in days after ``start_date`` (registration can be before it). ``shift`` drifts
    the traits: fewer purchases, more online, lower engagement, earlier lapse, older clients.
    """
    rng = _streams(cfg.seed)["traits"]
    n = cfg.n_clients
    _, _, days = _window(cfg)
    s = float(cfg.shift)

    pre = rng.random(n) < 0.55
    reg = np.where(
        pre,
        -rng.random(n) * 4 * 365.0,
        rng.random(n) * max(days - 14.0, 1.0),
    )
    reg = np.floor(reg)
    age = np.clip(rng.normal(41.0, 13.0, n), 18, 85) + 5.0 * s
    female = rng.random(n) < 0.56
    region = rng.choice(len(REGIONS), size=n, p=np.asarray(REGION_SHARES))

    activity = rng.gamma(2.0, 1.25, n) * np.exp(-0.4 * s)            # purchases per month while active
    basket = rng.lognormal(np.log(28.0), 0.65, n)                       # typical basket value
    discount = rng.beta(0.8, 1.2, n)                                    # discount affinity
    prefs = rng.dirichlet(np.full(len(CATEGORIES), 0.7), n)
    online = rng.beta(1.6, 2.6, n)
    online = online + (1.0 - online) * min(0.6, 0.35 * s)
    # one general engagement level, expressed per channel with some channel-specific spread
    engagement = rng.beta(1.2, 1.8, n) * (1.0 - min(0.6, 0.3 * s))
    eng_email = np.clip(engagement * rng.lognormal(0.0, 0.08, n), 0.0, 0.95)
    eng_push = np.clip(0.9 * engagement * rng.lognormal(0.0, 0.08, n), 0.0, 0.95)
    eng_sms = np.clip(0.5 * engagement * rng.lognormal(0.0, 0.08, n), 0.0, 0.95)
    send_email = rng.beta(2.0, 5.5, n)                                  # share of mailings received
    send_push = rng.beta(1.6, 5.0, n)
    send_sms = rng.beta(2.0, 4.0, n)
    unsub = rng.beta(0.6, 250.0, n)                                     # unsubscribe chance per message
    lapse = reg + rng.lognormal(np.log(2.5 * 365.0), 0.8, n) / (1.0 + s)  # day the client lapses
    has_app = rng.random(n) < (0.25 + 0.6 * online)
    bad_email = rng.random(n) < 0.03
    bad_phone = rng.random(n) < 0.02
    email_opt = rng.random(n) < 0.04 + 0.12 * (1 - eng_email) ** 3
    sms_opt = rng.random(n) < 0.30
    push_opt = ~has_app | (rng.random(n) < 0.10)
    marketing_opt = rng.random(n) < 0.03

    f32 = np.float32
    return {
        "reg": reg.astype(f32), "age": age.astype(f32), "female": female, "region": region.astype(np.int8),
        "activity": activity.astype(f32), "basket": basket.astype(f32), "discount": discount.astype(f32),
        "prefs": prefs.astype(f32), "online": online.astype(f32),
        "engagement": engagement.astype(f32), "eng_email": eng_email.astype(f32), "eng_push": eng_push.astype(f32), "eng_sms": eng_sms.astype(f32),
        "send_email": send_email.astype(f32), "send_push": send_push.astype(f32), "send_sms": send_sms.astype(f32),
        "unsub": unsub.astype(f32), "lapse": lapse.astype(f32),
        "bad_email": bad_email, "bad_phone": bad_phone,
        "email_opt": email_opt, "sms_opt": sms_opt, "push_opt": push_opt, "marketing_opt": marketing_opt,
    }


# --------------------------------------------------------------------------------------
# truth and past campaigns


def simulate_truth(cfg: SyntheticDataConfig, traits: dict[str, np.ndarray]) -> pd.DataFrame:
    """Each client's true response probability without and with the offer, and the uplift type.

    A latent uplift score (traits + noise) is ranked; the lowest ``negative_uplift_share``
    are sleeping dogs, the highest ``persuadable_share`` persuadables; the middle splits into
    sure things and lost causes by a baseline propensity score. Within a type the effect grows
    smoothly with the score. ``p_control`` is rescaled so its mean is ``base_response_rate``.
    """
    rng = _streams(cfg.seed)["truth"]
    n = cfg.n_clients
    t = traits
    churn_risk = -np.log(np.maximum(t["lapse"] - t["reg"], 1.0))
    log_act = np.log(t["activity"] + 0.05)
    w = UPLIFT_WEIGHTS
    score = (
        w["discount"] * _zscore(t["discount"])
        + w["engagement"] * _zscore(t["engagement"])
        + w["churn_risk"] * _zscore(churn_risk)
        + w["activity"] * _zscore(log_act)
        + w["unsubscribe"] * _zscore(np.sqrt(t["unsub"]))
    )
    score = score / (score.std() or 1.0) + cfg.uplift_noise * rng.standard_normal(n)
    propensity = _zscore(log_act) - 0.7 * _zscore(churn_risk) + 0.5 * rng.standard_normal(n)

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
    rng = _streams(cfg.seed)["history"]
    start, _, _ = _window(cfg)
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


# --------------------------------------------------------------------------------------
# purchases


def _sorted_uniforms(rng: np.random.Generator, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For group sizes ``counts``: the group of every row and sorted U(0,1) draws inside each
    group, built from normalised exponential spacings (no sort needed)."""
    n_groups = len(counts)
    sizes = counts.astype(np.int64) + 1
    ends = np.cumsum(sizes)
    starts = ends - sizes
    cs = np.cumsum(rng.standard_exponential(int(ends[-1]) if n_groups else 0))
    base = np.concatenate([[0.0], cs])[starts]
    total = cs[ends - 1] - base
    keep = np.ones(len(cs), dtype=bool)
    keep[ends - 1] = False
    group = np.repeat(np.arange(n_groups, dtype=np.int32), counts)
    values = cs[keep]
    values -= base[group]
    values /= total[group]
    return group, values


def simulate_purchases(
    cfg: SyntheticDataConfig,
    traits: dict[str, np.ndarray],
    history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Purchase transactions over [start_date, end_date), sorted by client and time.

    Each client buys at their activity rate from registration (or start_date) until they
    lapse, then at a small fraction of it. Baskets are lognormal around the client's basket
    scale, promo use follows discount affinity, the category follows the client's
    preferences and the channel their online propensity. Responders of past campaigns make
    an extra promo purchase inside the response window.
    """
    rng = _streams(cfg.seed)["purchases"]
    start, _, days = _window(cfg)
    t = traits
    lam = t["activity"].astype(np.float64) / 30.44           # per day
    a = np.maximum(t["reg"].astype(np.float64), 0.0)
    lapse = t["lapse"].astype(np.float64)
    seg1_end = np.clip(lapse, a, days)
    m1 = lam * (seg1_end - a)
    m2 = lam * _LAPSED_ACTIVITY * (days - seg1_end)
    counts = rng.poisson(m1 + m2)
    group, v = _sorted_uniforms(rng, counts)
    del counts

    x = v * (m1 + m2)[group]
    del v
    m1g = m1[group]
    before = x < m1g
    day = np.where(
        before,
        a[group] + x / lam[group],
        seg1_end[group] + (x - m1g) / (lam[group] * _LAPSED_ACTIVITY),
    )
    del x, m1g, before
    np.minimum(day, np.nextafter(days, 0.0), out=day)
    # purchase times inside opening hours (08:00-22:00) of the drawn day
    day_floor = np.floor(day)
    seconds = day_floor * _DAY + 8 * 3600 + (day - day_floor) * 14 * 3600
    del day, day_floor

    rows = len(group)
    promo = rng.random(rows, dtype=np.float32) < 0.03 + 0.9 * t["discount"][group]
    amount = t["basket"][group] * rng.lognormal(0.0, 0.45, rows).astype(np.float32)
    amount = np.where(promo, amount * np.float32(0.85), amount)
    amount = np.maximum(np.round(amount.astype(np.float64), 2), 0.5)
    # items at a typical price of about 14 per item; a uniform factor spreads it cheaply
    quantity = 1 + (amount / 14.0 * rng.random(rows, dtype=np.float32) * 1.6).astype(np.int64)
    u = rng.random(rows, dtype=np.float32)
    cum = np.cumsum(t["prefs"], axis=1)
    category = np.zeros(rows, dtype=np.int8)
    for k in range(len(CATEGORIES) - 1):
        category += (u >= cum[:, k][group]).astype(np.int8)
    channel = (rng.random(rows, dtype=np.float32) >= t["online"][group]).astype(np.int8)  # 0 online

    frame = {
        "client_id": group.astype(np.int64) + 1,
        "seconds": seconds,
        "amount": amount,
        "quantity": quantity.astype(np.int64),
        "category": category,
        "channel": channel,
        "promo": promo,
    }
    if history is not None and len(history):
        frame = _add_response_purchases(cfg, rng, traits, history, frame)
    n_rows = len(frame["client_id"])
    return pd.DataFrame(copy=False, data={
        "client_id": frame["client_id"],
        "timestamp": _to_timestamps(start, frame["seconds"]),
        "transaction_id": np.arange(1, n_rows + 1, dtype=np.int64),
        "amount": frame["amount"],
        "quantity": frame["quantity"],
        "category": pd.Categorical.from_codes(frame["category"], categories=list(CATEGORIES)),
        "channel": pd.Categorical.from_codes(frame["channel"], categories=list(PURCHASE_CHANNELS)),
        "promo": frame["promo"],
    })


def _add_response_purchases(
    cfg: SyntheticDataConfig,
    rng: np.random.Generator,
    traits: dict[str, np.ndarray],
    history: pd.DataFrame,
    frame: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Add one promo purchase per past-campaign responder, keeping rows sorted by client and time."""
    start, _, _ = _window(cfg)
    resp = history[history["response"].to_numpy() == 1]
    if not len(resp):
        return frame
    k = len(resp)
    cid = resp["client_id"].to_numpy()
    day0 = ((resp["campaign_date"] - start) / pd.Timedelta(days=1)).to_numpy()
    day = np.floor(day0 + rng.random(k) * cfg.response_window_days)
    seconds = day * _DAY + 8 * 3600 + rng.random(k) * 14 * 3600
    amount = np.maximum(resp["revenue"].to_numpy(), 0.5)
    prefs = np.cumsum(traits["prefs"][cid - 1], axis=1)
    category = (rng.random(k)[:, None] >= prefs[:, :-1]).sum(axis=1).astype(np.int8)
    channel = (rng.random(k) >= traits["online"][cid - 1]).astype(np.int8)
    extra = {
        "client_id": cid.astype(np.int64), "seconds": seconds, "amount": amount,
        "quantity": (1 + rng.poisson(amount / 14.0)).astype(np.int64),
        "category": category, "channel": channel, "promo": np.ones(k, dtype=bool),
    }
    # the base rows are sorted by (client, time): insert the extra rows in place, no full sort
    span = float(_window(cfg)[2] + 400) * _DAY
    base_key = frame["client_id"] * span + frame["seconds"]
    pos = np.searchsorted(base_key, extra["client_id"] * span + extra["seconds"])
    del base_key
    return {key: np.insert(frame[key], pos, extra[key]) for key in frame}


# --------------------------------------------------------------------------------------
# messages and clients


def _mailing_schedule(cfg: SyntheticDataConfig) -> list[tuple[float, int, str]]:
    """(day offset, channel code, campaign id) of every mailing, in time order."""
    start, _, days = _window(cfg)
    out = []
    for code, ch in enumerate(CHANNELS):
        every, first, hour = _MAILINGS[ch]
        for d in np.arange(first, days - 3, every):
            when = float(d) + hour / 24.0
            out.append((when, code, f"{ch}-{start + pd.Timedelta(days=float(d)):%Y-%m-%d}"))
    out.sort()
    return out


def simulate_messages(
    cfg: SyntheticDataConfig, traits: dict[str, np.ndarray]
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Message events of scheduled mailings, in time order, and who unsubscribed per channel.

    For each mailing, subscribed registered clients receive it with their per-channel send
    propensity. A send may bounce (bad address), be opened (engagement, much lower after the
    client lapsed; no opens for SMS), clicked (engagement and discount affinity; no clicks
    for push without an open), lead to a purchase, or make the client unsubscribe from the
    channel, which stops later sends and sets the client's opt-out flag.
    """
    rng = _streams(cfg.seed)["messages"]
    start, end, days = _window(cfg)
    t = traits
    n = cfg.n_clients
    blocked = t["marketing_opt"]
    subscribed = {
        "email": ~(t["email_opt"] | blocked),
        "mobile_push": ~(t["push_opt"] | blocked),
        "sms": ~(t["sms_opt"] | blocked),
    }
    unsubscribed = {ch: np.zeros(n, dtype=bool) for ch in CHANNELS}
    send_p = {"email": t["send_email"], "mobile_push": t["send_push"], "sms": t["send_sms"]}
    eng = {"email": t["eng_email"], "mobile_push": t["eng_push"], "sms": t["eng_sms"]}
    bad = {"email": t["bad_email"], "mobile_push": np.zeros(n, dtype=bool), "sms": t["bad_phone"]}
    ev = {e: i for i, e in enumerate(EVENTS)}

    schedule = _mailing_schedule(cfg)
    ids, secs, events, mailing = [], [], [], []
    limit = days * _DAY - 1.0
    for m, (when, code, _) in enumerate(schedule):
        ch = CHANNELS[code]
        eligible = subscribed[ch] & (t["reg"] < np.floor(when))
        draw = rng.random(n, dtype=np.float32)
        idx = np.flatnonzero(eligible & (draw < send_p[ch]))
        k = len(idx)
        if not k:
            continue
        r = rng.random((6, k), dtype=np.float32)
        sent = when * _DAY + r[0] * 7200.0
        lapsed = t["lapse"][idx] < when
        e = eng[ch][idx] * np.where(lapsed, np.float32(0.85), np.float32(1.0))
        bounce = r[1] < np.where(bad[ch][idx], np.float32(0.9), np.float32(0.004))
        if ch == "mobile_push":
            bounce[:] = False
        ok = ~bounce
        if ch == "sms":
            opened = np.zeros(k, dtype=bool)
            clicked = ok & (r[2] < 0.4 * e)
        else:
            opened = ok & (r[2] < e)
            p_click = (0.08 + 0.35 * e) * (0.6 + 0.8 * t["discount"][idx])
            clicked = opened & (r[3] < p_click)
        bought = clicked & (r[4] < 0.05 + 0.25 * t["discount"][idx])
        quit_p = t["unsub"][idx] * np.where(lapsed, np.float32(2.5), np.float32(1.0))
        quit_p = quit_p * np.where(ch == "sms", np.float32(2.0), np.float32(1.0))
        quit = ok & (r[5] < quit_p)
        if quit.any():
            subscribed[ch][idx[quit]] = False
            unsubscribed[ch][idx[quit]] = True

        gap = rng.exponential(1.0, (4, k)).astype(np.float32)
        t_open = sent + gap[0] * 6 * 3600.0
        t_click = (t_open if ch != "sms" else sent) + gap[1] * 900.0
        t_buy = t_click + gap[2] * 2700.0
        t_quit = sent + gap[3] * 24 * 3600.0
        parts = [
            (np.ones(k, dtype=bool), sent, "send"),
            (bounce, sent + 60.0, "bounce"),
            (opened, t_open, "open"),
            (clicked, t_click, "click"),
            (bought, t_buy, "purchase"),
            (quit, t_quit, "unsubscribe"),
        ]
        for mask, when_s, name in parts:
            if mask.any():
                ids.append(idx[mask])
                secs.append(when_s[mask])
                events.append(np.full(int(mask.sum()), ev[name], dtype=np.int8))
                mailing.append(np.full(int(mask.sum()), m, dtype=np.int16))

    if ids:
        client_idx = np.concatenate(ids)
        seconds = np.minimum(np.concatenate(secs).astype(np.float64), limit)
        event_codes = np.concatenate(events)
        mailing_codes = np.concatenate(mailing)
    else:
        client_idx = np.zeros(0, dtype=np.int64)
        seconds = np.zeros(0)
        event_codes = np.zeros(0, dtype=np.int8)
        mailing_codes = np.zeros(0, dtype=np.int16)
    channel_of = np.array([code for _, code, _ in schedule], dtype=np.int8)
    frame = pd.DataFrame(copy=False, data={
        "client_id": client_idx.astype(np.int64) + 1,
        "timestamp": _to_timestamps(start, seconds),
        "channel": pd.Categorical.from_codes(channel_of[mailing_codes], categories=list(CHANNELS)),
        "event": pd.Categorical.from_codes(event_codes, categories=list(EVENTS)),
        "campaign_id": pd.Categorical.from_codes(mailing_codes, categories=[c for _, _, c in schedule]),
    })
    return frame, unsubscribed


def simulate_clients(
    cfg: SyntheticDataConfig, traits: dict[str, np.ndarray], unsubscribed: dict[str, np.ndarray]
) -> pd.DataFrame:
    """The client table: registration, demographics and opt-out flags as of end_date
    (initial refusals plus unsubscribes during the history)."""
    start, _, _ = _window(cfg)
    t = traits
    n = cfg.n_clients
    reg = np.datetime64(start.to_datetime64(), "D") + t["reg"].astype(np.int64).astype("timedelta64[D]")
    return pd.DataFrame({
        "client_id": np.arange(1, n + 1, dtype=np.int64),
        "registration_date": reg.astype("datetime64[us]"),
        "age": np.floor(t["age"]).astype(np.int64),
        "gender": pd.Categorical.from_codes(np.where(t["female"], 0, 1).astype(np.int8), categories=["F", "M"]),
        "region": pd.Categorical.from_codes(t["region"], categories=list(REGIONS)),
        "email_opt_out": t["email_opt"] | unsubscribed["email"],
        "sms_opt_out": t["sms_opt"] | unsubscribed["sms"],
        "push_opt_out": t["push_opt"] | unsubscribed["mobile_push"],
        "marketing_opt_out": t["marketing_opt"].copy(),
    })


# --------------------------------------------------------------------------------------
# whole world


def generate_world(cfg: SyntheticDataConfig) -> dict[str, pd.DataFrame]:
    """All tables of a world (clients, purchases, messages, campaign_history, truth).

    Deterministic in ``cfg.seed`` and the sizes; every table passes its contract with
    as_of = ``cfg.end_date``.
    """
    validate_config(cfg)
    traits = simulate_traits(cfg)
    truth = simulate_truth(cfg, traits)
    history = simulate_campaign_history(cfg, traits, truth)
    purchases = simulate_purchases(cfg, traits, history)
    messages, unsubscribed = simulate_messages(cfg, traits)
    clients = simulate_clients(cfg, traits, unsubscribed)
    return {
        "clients": clients,
        "purchases": purchases,
        "messages": messages,
        "campaign_history": history,
        "truth": truth,
    }


def check_table(name: str, df: pd.DataFrame, cfg: SyntheticDataConfig) -> None:
    """Validate one generated table against its contract as of ``cfg.end_date``.

    Event tables may be empty (a world of a handful of clients can lack purchases); the
    client and truth tables never are.
    """
    validate_table(df, CONTRACTS[name], as_of=cfg.end_date,
                   allow_empty=name in ("purchases", "messages", "campaign_history"))


def write_table(name: str, df: pd.DataFrame, out_dir: str | Path, cfg: SyntheticDataConfig) -> Path:
    """Validate and write one table as ``<out_dir>/<name>.parquet`` (atomic, pyarrow)."""
    check_table(name, df, cfg)
    return atomic_write_parquet(df, Path(out_dir) / f"{name}.parquet", engine="pyarrow",
                                row_group_size=_ROW_GROUP)


def build_manifest(cfg: SyntheticDataConfig, row_counts: dict[str, int],
                   tables_dir: str | Path | None = None) -> dict[str, Any]:
    """The manifest.json content of a synthetic world.

    With ``tables_dir``, the manifest also holds the sha256 of every table file, so anything
    keyed on the manifest (campaign checkpoints) notices a world regenerated with other content.
    """
    from tasks.core.io import sha256_file

    hashes = {}
    if tables_dir is not None:
        hashes = {t: sha256_file(Path(tables_dir) / f"{t}.parquet") for t in TABLES
                  if (Path(tables_dir) / f"{t}.parquet").exists()}
    return {
        "name": cfg.name,
        "kind": "synthetic",
        "seed": cfg.seed,
        "n_clients": cfg.n_clients,
        "schema_version": cfg.schema_version,
        "as_of": str(pd.Timestamp(cfg.end_date).date()),
        "start_date": str(pd.Timestamp(cfg.start_date).date()),
        "past_campaigns": past_campaign_ids(cfg),
        "row_counts": {k: int(row_counts[k]) for k in TABLES if k in row_counts},
        "config": asdict(cfg),
        "table_sha256": hashes,
    }


def staging_dir(out_dir: str | Path) -> Path:
    """A fresh private folder next to ``out_dir`` to build a world in before publishing it."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.staging-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    return stage


def publish_dir(stage: str | Path, out_dir: str | Path) -> Path:
    """Replace ``out_dir`` by the completed ``stage`` folder (the old world is removed only
    after the new one is in place, so readers never see a mix)."""
    stage, out = Path(stage), Path(out_dir)
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


GROUPS: dict[str, tuple[str, ...]] = {
    "purchases": ("truth", "campaign_history", "purchases"),
    "contacts": ("clients", "messages"),
}


def generate_group(group: str, cfg: SyntheticDataConfig, out_dir: str | Path) -> dict[str, int]:
    """Generate and write one group of tables (see :data:`GROUPS`) into ``out_dir``.

    Groups are independent (each rebuilds the cheap latent traits from the seed), so a flow
    can run them as separate steps and never hold every big table in memory at once. The
    tables are identical to those of :func:`generate_world`. Returns row counts.
    """
    if group not in GROUPS:
        raise ConfigError(f"unknown table group {group!r}; known groups: {sorted(GROUPS)}")
    traits = simulate_traits(cfg)
    counts: dict[str, int] = {}

    def write(name: str, df: pd.DataFrame) -> None:
        write_table(name, df, out_dir, cfg)
        counts[name] = len(df)

    if group == "contacts":
        messages, unsubscribed = simulate_messages(cfg, traits)
        write("messages", messages)
        del messages
        write("clients", simulate_clients(cfg, traits, unsubscribed))
    else:
        # truth and history are small; written first so only purchases is big in memory
        truth = simulate_truth(cfg, traits)
        history = simulate_campaign_history(cfg, traits, truth)
        write("truth", truth)
        write("campaign_history", history)
        del truth
        write("purchases", simulate_purchases(cfg, traits, history))
    return counts


def write_world(tables: dict[str, pd.DataFrame], out_dir: str | Path, cfg: SyntheticDataConfig) -> dict[str, Any]:
    """Validate and write every table as Parquet plus manifest.json; return the manifest.

    Tables are written to a staging folder first and the folder is swapped in at the end, so
    a failed run leaves the previous world untouched.
    """
    missing = [t for t in TABLES if t not in tables]
    if missing:
        raise DataValidationError(missing[0], None, f"world lacks table(s) {missing}")
    stage = staging_dir(out_dir)
    try:
        counts = {}
        for name in TABLES:
            write_table(name, tables[name], stage, cfg)
            counts[name] = len(tables[name])
        manifest = build_manifest(cfg, counts, stage)
        atomic_write_json(manifest, stage / "manifest.json")
        publish_dir(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return manifest


# --------------------------------------------------------------------------------------
# documentation

CONTRACTS_BEGIN = "<!-- contracts:begin (generated from tasks.core.contracts.contract_markdown) -->"
CONTRACTS_END = "<!-- contracts:end -->"


def render_contracts_doc(text: str) -> str:
    """``text`` (docs/data_contracts.md) with the tables block replaced by the current contracts."""
    from tasks.core.contracts import contract_markdown

    if CONTRACTS_BEGIN not in text or CONTRACTS_END not in text:
        raise DataValidationError("docs", None, f"markers {CONTRACTS_BEGIN!r} and {CONTRACTS_END!r} not found")
    head, rest = text.split(CONTRACTS_BEGIN, 1)
    _, tail = rest.split(CONTRACTS_END, 1)
    return f"{head}{CONTRACTS_BEGIN}\n\n{contract_markdown()}\n{CONTRACTS_END}{tail}"


def update_contracts_doc(path: str | Path | None = None) -> Path:
    """Regenerate the tables block of docs/data_contracts.md from tasks/core/contracts.py."""
    from tasks.core.config import PROJECT_ROOT
    from tasks.core.io import atomic_write_text

    doc = Path(path) if path is not None else PROJECT_ROOT / "docs" / "data_contracts.md"
    return atomic_write_text(render_contracts_doc(doc.read_text(encoding="utf-8")), doc)
