"""Observable behaviour of the synthetic clients: purchases, message events and the client table."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.core.config import SyntheticDataConfig
from tasks.core.contracts import CATEGORIES, CHANNELS, EVENTS, PURCHASE_CHANNELS
from tasks.data.synthetic.traits import DAY_SECONDS, REGIONS, history_window, rng_streams, to_timestamps

# Mailing schedule: channel -> (days between mailings, first mailing day, hour of day).
_MAILINGS = {"email": (7, 2, 10), "mobile_push": (7, 4, 18), "sms": (28, 10, 12)}

_LAPSED_ACTIVITY = 0.03  # share of the purchase rate left after a client lapses


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
    rng = rng_streams(cfg.seed)["purchases"]
    start, _, days = history_window(cfg)
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
    seconds = day_floor * DAY_SECONDS + 8 * 3600 + (day - day_floor) * 14 * 3600
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
        "timestamp": to_timestamps(start, frame["seconds"]),
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
    start, _, _ = history_window(cfg)
    resp = history[history["response"].to_numpy() == 1]
    if not len(resp):
        return frame
    k = len(resp)
    cid = resp["client_id"].to_numpy()
    day0 = ((resp["campaign_date"] - start) / pd.Timedelta(days=1)).to_numpy()
    day = np.floor(day0 + rng.random(k) * cfg.response_window_days)
    seconds = day * DAY_SECONDS + 8 * 3600 + rng.random(k) * 14 * 3600
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
    span = float(history_window(cfg)[2] + 400) * DAY_SECONDS
    base_key = frame["client_id"] * span + frame["seconds"]
    pos = np.searchsorted(base_key, extra["client_id"] * span + extra["seconds"])
    del base_key
    return {key: np.insert(frame[key], pos, extra[key]) for key in frame}


# --------------------------------------------------------------------------------------
# messages and clients


def _mailing_schedule(cfg: SyntheticDataConfig) -> list[tuple[float, int, str]]:
    """(day offset, channel code, campaign id) of every mailing, in time order."""
    start, _, days = history_window(cfg)
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
    rng = rng_streams(cfg.seed)["messages"]
    start, end, days = history_window(cfg)
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
    limit = days * DAY_SECONDS - 1.0
    for m, (when, code, _) in enumerate(schedule):
        ch = CHANNELS[code]
        eligible = subscribed[ch] & (t["reg"] < np.floor(when))
        draw = rng.random(n, dtype=np.float32)
        idx = np.flatnonzero(eligible & (draw < send_p[ch]))
        k = len(idx)
        if not k:
            continue
        r = rng.random((6, k), dtype=np.float32)
        sent = when * DAY_SECONDS + r[0] * 7200.0
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
        "timestamp": to_timestamps(start, seconds),
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
    start, _, _ = history_window(cfg)
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

