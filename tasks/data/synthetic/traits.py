"""Config validation, the seed's random streams and the latent traits of every client.

Each table group draws from its own child stream of ``numpy.random.SeedSequence(seed)``
(:func:`rng_streams`), so each table depends only on the seed and the sizes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.core.config import SyntheticDataConfig
from tasks.core.contracts import CATEGORIES
from tasks.core.errors import ConfigError

REGIONS = ("capital", "north", "south", "east", "west", "central")
REGION_SHARES = (0.30, 0.14, 0.18, 0.12, 0.12, 0.14)

# Child stream index of each table group inside the seed's SeedSequence.
_STREAMS = {"traits": 0, "clients": 1, "purchases": 2, "messages": 3, "history": 4, "truth": 5}

DAY_SECONDS = 86_400
_US = 1_000_000


def rng_streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(children[i]) for name, i in _STREAMS.items()}


def history_window(cfg: SyntheticDataConfig) -> tuple[pd.Timestamp, pd.Timestamp, float]:
    start = pd.Timestamp(cfg.start_date)
    end = pd.Timestamp(cfg.end_date)
    return start, end, (end - start) / pd.Timedelta(days=1)


def zscore(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    sd = x.std()
    return (x - x.mean()) / (sd if sd > 0 else 1.0)


def to_timestamps(start: pd.Timestamp, seconds: np.ndarray) -> np.ndarray:
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
    rng = rng_streams(cfg.seed)["traits"]
    n = cfg.n_clients
    _, _, days = history_window(cfg)
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

