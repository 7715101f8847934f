"""Purchase transactions of the synthetic clients, generated in client chunks.

The purchases of a world are one sequence of calls on the seed's ``purchases`` stream: the
number of purchases of every client (Poisson), exponential spacings that place every
purchase in time, then one call over all rows each for the promo flags, basket factors,
quantities, categories and channels, and last the draws of the past-campaign responders'
extra purchases. A chunk of clients needs its slice of every one of those calls.

:func:`iter_purchases` therefore first walks the stream once to find where each call
begins (a uniform float32 always uses half a 64-bit output, so those calls are jumped
over with ``advance``; exponential and normal draws use a varying number of outputs, so
those calls are drawn and dropped), gives every call its own generator started there, and
lets the chunks take their slices from those generators in client order. Numpy draws an
array call value after value from the bit generator, so a call cut into consecutive
pieces yields the same values; the cumulative sum behind the spacings is carried from one
chunk to the next. The rows are the same as one call over all clients, whatever the chunk
size.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd

from tasks.core.config import SyntheticDataConfig
from tasks.core.contracts import CATEGORIES, PURCHASE_CHANNELS
from tasks.data.synthetic.traits import DAY_SECONDS, history_window, rng_streams, to_timestamps

_LAPSED_ACTIVITY = 0.03  # share of the purchase rate left after a client lapses
_AMOUNT_SIGMA = 0.45     # sd of the log basket factor of a purchase

CHUNK_CLIENTS = 250_000  # clients per chunk: about 7M purchase rows, ~1 GiB of working arrays
_PIECE = 1 << 23         # values drawn at a time when a call is only skipped


def fork(rng: np.random.Generator) -> np.random.Generator:
    """A new generator at ``rng``'s current position (each then moves on independently)."""
    bits = type(rng.bit_generator)()
    bits.state = rng.bit_generator.state
    return np.random.Generator(bits)


def skip_float32(rng: np.random.Generator, count: int) -> None:
    """Move ``rng`` past ``count`` draws of ``rng.random(..., dtype=np.float32)`` without drawing them.

    A float32 uses 32 bits; PCG64 hands them out as the halves of one 64-bit output, keeping
    the unused half in its state (``has_uint32``/``uinteger``).
    """
    if count <= 0:
        return
    bits = rng.bit_generator
    state = bits.state
    if state["has_uint32"]:
        count -= 1
    state["has_uint32"], state["uinteger"] = 0, 0
    bits.state = state
    bits.advance(count // 2)
    state = bits.state
    state["has_uint32"], state["uinteger"] = 0, 0
    bits.state = state
    if count % 2:
        rng.random(1, dtype=np.float32)


def skip_draws(rng: np.random.Generator, draw: str, count: int) -> None:
    """Move ``rng`` past ``count`` values of ``standard_exponential`` or ``standard_normal``
    (whose use of the stream varies per value) by drawing them in bounded pieces."""
    fn = {"exponential": rng.standard_exponential, "normal": rng.standard_normal}[draw]
    done = 0
    while done < count:
        k = min(_PIECE, count - done)
        fn(k)
        done += k


def _rates(traits: dict[str, np.ndarray], lo: int, hi: int, days: float):
    """Purchase rate per day, active start, lapse day and expected purchases before and after
    the lapse of clients ``lo:hi``."""
    lam = traits["activity"][lo:hi].astype(np.float64) / 30.44
    a = np.maximum(traits["reg"][lo:hi].astype(np.float64), 0.0)
    lapse = traits["lapse"][lo:hi].astype(np.float64)
    seg1_end = np.clip(lapse, a, days)
    m1 = lam * (seg1_end - a)
    m2 = lam * _LAPSED_ACTIVITY * (days - seg1_end)
    return lam, a, seg1_end, m1, m2


def _sorted_uniforms(rng: np.random.Generator, counts: np.ndarray, carry: float) -> tuple[np.ndarray, np.ndarray, float]:
    """For group sizes ``counts``: the group of every row and sorted U(0,1) draws inside each
    group, built from normalised exponential spacings (no sort needed).

    The spacings' running sum starts at ``carry`` (the sum reached by the previous chunk),
    so chunks reproduce one running sum over all clients exactly; returns the new carry.
    """
    n_groups = len(counts)
    sizes = counts.astype(np.int64) + 1
    ends = np.cumsum(sizes)
    starts = ends - sizes
    spacing = rng.standard_exponential(int(ends[-1]) if n_groups else 0)
    if len(spacing):
        spacing[0] += carry  # exactly the addition the running sum over all chunks makes
    cs = np.cumsum(spacing)
    base = np.concatenate([[carry], cs])[starts]
    total = cs[ends - 1] - base
    keep = np.ones(len(cs), dtype=bool)
    keep[ends - 1] = False
    group = np.repeat(np.arange(n_groups, dtype=np.int32), counts)
    values = cs[keep]
    values -= base[group]
    values /= total[group]
    return group, values, (float(cs[-1]) if len(cs) else carry)


def iter_purchases(
    cfg: SyntheticDataConfig,
    traits: dict[str, np.ndarray],
    history: pd.DataFrame | None = None,
    chunk_clients: int = CHUNK_CLIENTS,
) -> Iterator[pd.DataFrame]:
    """Purchase transactions over [start_date, end_date), sorted by client and time, as
    frames of ``chunk_clients`` clients each (at least one frame, maybe empty).

    Each client buys at their activity rate from registration (or start_date) until they
    lapse, then at a small fraction of it. Baskets are lognormal around the client's basket
    scale, promo use follows discount affinity, the category follows the client's
    preferences and the channel their online propensity. Responders of past campaigns make
    an extra promo purchase inside the response window. The rows do not depend on
    ``chunk_clients``.
    """
    rng = rng_streams(cfg.seed)["purchases"]
    start, _, days = history_window(cfg)
    t = traits
    n = len(t["activity"])
    bounds = [(lo, min(lo + max(int(chunk_clients), 1), n)) for lo in range(0, n, max(int(chunk_clients), 1))]

    # where each call over all clients / all rows begins in the stream
    counts = np.concatenate([rng.poisson(np.add(*_rates(t, lo, hi, days)[3:])) for lo, hi in bounds])
    rows = int(counts.sum())
    spacing = fork(rng)
    skip_draws(rng, "exponential", rows + n)
    promo_rng = fork(rng)
    skip_float32(rng, rows)
    amount_rng = fork(rng)
    skip_draws(rng, "normal", rows)  # a lognormal draw is exp of one normal draw
    quantity_rng = fork(rng)
    skip_float32(rng, rows)
    category_rng = fork(rng)
    skip_float32(rng, rows)
    channel_rng = fork(rng)
    skip_float32(rng, rows)
    extra = _response_purchases(cfg, rng, traits, history)

    carry, written = 0.0, 0
    for lo, hi in bounds:
        lam, a, seg1_end, m1, m2 = _rates(t, lo, hi, days)
        group, v, carry = _sorted_uniforms(spacing, counts[lo:hi], carry)
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

        k = len(group)
        promo = promo_rng.random(k, dtype=np.float32) < 0.03 + 0.9 * t["discount"][lo:hi][group]
        amount = t["basket"][lo:hi][group] * amount_rng.lognormal(0.0, _AMOUNT_SIGMA, k).astype(np.float32)
        amount = np.where(promo, amount * np.float32(0.85), amount)
        amount = np.maximum(np.round(amount.astype(np.float64), 2), 0.5)
        # items at a typical price of about 14 per item; a uniform factor spreads it cheaply
        quantity = 1 + (amount / 14.0 * quantity_rng.random(k, dtype=np.float32) * 1.6).astype(np.int64)
        u = category_rng.random(k, dtype=np.float32)
        cum = np.cumsum(t["prefs"][lo:hi], axis=1)
        category = np.zeros(k, dtype=np.int8)
        for j in range(len(CATEGORIES) - 1):
            category += (u >= cum[:, j][group]).astype(np.int8)
        channel = (channel_rng.random(k, dtype=np.float32) >= t["online"][lo:hi][group]).astype(np.int8)  # 0 online

        frame = {
            "client_id": group.astype(np.int64) + (lo + 1),
            "seconds": seconds,
            "amount": amount,
            "quantity": quantity.astype(np.int64),
            "category": category,
            "channel": channel,
            "promo": promo,
        }
        del group
        if extra is not None:
            mine = (extra["client_id"] > lo) & (extra["client_id"] <= hi)
            if mine.any():
                frame = _insert_sorted(cfg, frame, {key: col[mine] for key, col in extra.items()})
        n_rows = len(frame["client_id"])
        yield pd.DataFrame(copy=False, data={
            "client_id": frame["client_id"],
            "timestamp": to_timestamps(start, frame["seconds"]),
            "transaction_id": np.arange(written + 1, written + n_rows + 1, dtype=np.int64),
            "amount": frame["amount"],
            "quantity": frame["quantity"],
            "category": pd.Categorical.from_codes(frame["category"], categories=list(CATEGORIES)),
            "channel": pd.Categorical.from_codes(frame["channel"], categories=list(PURCHASE_CHANNELS)),
            "promo": frame["promo"],
        })
        written += n_rows


def simulate_purchases(
    cfg: SyntheticDataConfig,
    traits: dict[str, np.ndarray],
    history: pd.DataFrame | None = None,
    chunk_clients: int = CHUNK_CLIENTS,
) -> pd.DataFrame:
    """All purchase transactions as one frame (see :func:`iter_purchases`)."""
    return pd.concat(list(iter_purchases(cfg, traits, history, chunk_clients)), ignore_index=True)


def _response_purchases(
    cfg: SyntheticDataConfig,
    rng: np.random.Generator,
    traits: dict[str, np.ndarray],
    history: pd.DataFrame | None,
) -> dict[str, np.ndarray] | None:
    """One promo purchase per past-campaign responder (in history order), or None."""
    if history is None or not len(history):
        return None
    start, _, _ = history_window(cfg)
    resp = history[history["response"].to_numpy() == 1]
    if not len(resp):
        return None
    k = len(resp)
    cid = resp["client_id"].to_numpy()
    day0 = ((resp["campaign_date"] - start) / pd.Timedelta(days=1)).to_numpy()
    day = np.floor(day0 + rng.random(k) * cfg.response_window_days)
    seconds = day * DAY_SECONDS + 8 * 3600 + rng.random(k) * 14 * 3600
    amount = np.maximum(resp["revenue"].to_numpy(), 0.5)
    prefs = np.cumsum(traits["prefs"][cid - 1], axis=1)
    category = (rng.random(k)[:, None] >= prefs[:, :-1]).sum(axis=1).astype(np.int8)
    channel = (rng.random(k) >= traits["online"][cid - 1]).astype(np.int8)
    return {
        "client_id": cid.astype(np.int64), "seconds": seconds, "amount": amount,
        "quantity": (1 + rng.poisson(amount / 14.0)).astype(np.int64),
        "category": category, "channel": channel, "promo": np.ones(k, dtype=bool),
    }


def _insert_sorted(cfg: SyntheticDataConfig, frame: dict[str, np.ndarray],
                   extra: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Insert ``extra`` rows into ``frame`` (both sorted by client and time), no full sort."""
    span = float(history_window(cfg)[2] + 400) * DAY_SECONDS
    base_key = frame["client_id"] * span + frame["seconds"]
    pos = np.searchsorted(base_key, extra["client_id"] * span + extra["seconds"])
    del base_key
    return {key: np.insert(frame[key], pos, extra[key]) for key in frame}
