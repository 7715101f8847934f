"""Observable behaviour of the synthetic clients: message events and the client table
(purchases: :mod:`tasks.data.synthetic.purchases`)."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd

from tasks.core.config import SyntheticDataConfig
from tasks.core.contracts import CHANNELS, EVENTS
from tasks.data.synthetic.traits import DAY_SECONDS, REGIONS, history_window, rng_streams, to_timestamps

# Mailing schedule: channel -> (days between mailings, first mailing day, hour of day).
_MAILINGS = {"email": (7, 2, 10), "mobile_push": (7, 4, 18), "sms": (28, 10, 12)}

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
    """Message events of scheduled mailings, in time order, and who unsubscribed per channel
    (all of :func:`iter_messages` in one frame)."""
    unsubscribed: dict[str, np.ndarray] = {}
    frames = list(iter_messages(cfg, traits, unsubscribed))
    return pd.concat(frames, ignore_index=True), unsubscribed


def iter_messages(
    cfg: SyntheticDataConfig, traits: dict[str, np.ndarray], unsubscribed: dict[str, np.ndarray],
    batch_rows: int = 2_000_000,
) -> Iterator[pd.DataFrame]:
    """Message events of scheduled mailings, in time order, as frames of whole mailings
    (about ``batch_rows`` rows each; at least one frame, maybe empty). Once the frames are
    consumed, ``unsubscribed`` holds per channel who unsubscribed.

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
    unsubscribed.update({ch: np.zeros(n, dtype=bool) for ch in CHANNELS})
    send_p = {"email": t["send_email"], "mobile_push": t["send_push"], "sms": t["send_sms"]}
    eng = {"email": t["eng_email"], "mobile_push": t["eng_push"], "sms": t["eng_sms"]}
    bad = {"email": t["bad_email"], "mobile_push": np.zeros(n, dtype=bool), "sms": t["bad_phone"]}
    ev = {e: i for i, e in enumerate(EVENTS)}

    schedule = _mailing_schedule(cfg)
    ids, secs, events, mailing = [], [], [], []
    limit = days * DAY_SECONDS - 1.0
    channel_of = np.array([code for _, code, _ in schedule], dtype=np.int8)
    campaigns = [c for _, _, c in schedule]
    batched = 0
    for m, (when, code, _) in enumerate(schedule):
        if batched >= batch_rows:
            yield _message_frame(start, limit, channel_of, campaigns, ids, secs, events, mailing)
            ids, secs, events, mailing = [], [], [], []
            batched = 0
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
                batched += len(ids[-1])
    yield _message_frame(start, limit, channel_of, campaigns, ids, secs, events, mailing)


def _message_frame(start: pd.Timestamp, limit: float, channel_of: np.ndarray, campaigns: list[str],
                   ids: list, secs: list, events: list, mailing: list) -> pd.DataFrame:
    """The message rows of a run of mailings (parts in order) as a frame."""
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
    return pd.DataFrame(copy=False, data={
        "client_id": client_idx.astype(np.int64) + 1,
        "timestamp": to_timestamps(start, seconds),
        "channel": pd.Categorical.from_codes(channel_of[mailing_codes], categories=list(CHANNELS)),
        "event": pd.Categorical.from_codes(event_codes, categories=list(EVENTS)),
        "campaign_id": pd.Categorical.from_codes(mailing_codes, categories=campaigns),
    })


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

