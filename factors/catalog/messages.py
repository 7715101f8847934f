"""Message factors: recency of contact and engagement, sends/opens/clicks and rates per
channel, unsubscribe and bounce flags."""
from __future__ import annotations

from factors.base import Factor
from factors.catalog.purchases import NO_EVENT_DAYS
from factors.registry import register_all
from tasks.core.contracts import CHANNELS

RECENT_WINDOW = 90


def _agg(name: str, description: str, sql: str, columns: tuple[str, ...], window: int | None = None,
         dtype: str = "int64", default: float | int = 0, theme: str = "engagement") -> Factor:
    return Factor(name, description, "aggregate", sql, table="messages", columns=columns,
                  window=window, dtype=dtype, default=default, theme=theme)


def _rate(name: str, description: str, num: str, den: str, theme: str = "engagement") -> Factor:
    return Factor(name, description, "derived", f"{num} / NULLIF({den}, 0)", inputs=(num, den),
                  dtype="float64", default=0.0, theme=theme)


def _smoothed(name: str, description: str, num: tuple[str, ...], den: tuple[str, ...], prior_num: float,
              prior_den: float) -> Factor:
    """``(sum(num) + prior_num) / (sum(den) + prior_den)``; the prior mean shows for a client
    without messages (the default)."""
    sql = f"({' + '.join(num)} + {prior_num!r}) / ({' + '.join(den)} + {prior_den!r})"
    return Factor(name, description, "derived", sql, inputs=(*num, *den), dtype="float64",
                  default=prior_num / prior_den, theme="engagement")


def _days_since(event: str) -> Factor:
    return _agg(f"days_since_last_{'message' if event == 'send' else event}",
                f"Days from the last message {event} to the as-of date (fractional); "
                f"{NO_EVENT_DAYS:g} when none.",
                f"date_diff('second', max(timestamp) FILTER (WHERE event = '{event}'), {{as_of}}) / 86400.0",
                ("timestamp", "event"), dtype="float64", default=NO_EVENT_DAYS, theme="recency")


def _flag(name: str, description: str, cond: str) -> Factor:
    return _agg(name, description, f"CAST(count(*) FILTER (WHERE {cond}) > 0 AS TINYINT)",
                ("event", "channel"), dtype="int8", theme="unsubscribe_bounce")


FACTORS: list[Factor] = [_days_since("send"), _days_since("open"), _days_since("click")]
for _ev, _plural in (("send", "sends"), ("open", "opens"), ("click", "clicks")):
    FACTORS.append(_agg(f"message_{_ev}_count", f"Number of message {_plural} over all channels, all history.",
                        f"count(*) FILTER (WHERE event = '{_ev}')", ("event",)))
FACTORS += [
    _agg(f"message_send_count_{RECENT_WINDOW}d",
         f"Number of messages sent to the client in the last {RECENT_WINDOW} days (contact pressure).",
         "count(*) FILTER (WHERE event = 'send')", ("event",), window=RECENT_WINDOW),
    _agg("message_send_count_30d",
         "Number of messages sent to the client in the last 30 days (recent contact pressure).",
         "count(*) FILTER (WHERE event = 'send')", ("event",), window=30),
    # whole weeks: the weekly mailing puts the same number of sends in every 28 or 84 days,
    # whatever the weekday of the as-of date (a 30- or 90-day count depends on it)
    *[_agg(f"message_{ev}_count_{w}d", f"Number of message {ev}s over all channels in the last {w} days "
           f"({w // 7} whole weeks).", f"count(*) FILTER (WHERE event = '{ev}')", ("event",), window=w)
      for w in (28, 84) for ev in ("send", "open", "click")],
    _agg("message_purchase_count", "Number of purchases attributed to a message, all history.",
         "count(*) FILTER (WHERE event = 'purchase')", ("event",)),
    _rate("open_rate", "Opens per message sent, all channels; 0 when nothing was sent.",
          "message_open_count", "message_send_count"),
    _rate("click_rate", "Clicks per message sent, all channels; 0 when nothing was sent.",
          "message_click_count", "message_send_count"),
    _rate("click_to_open_rate", "Clicks per opened message, all channels; 0 when nothing was opened.",
          "message_click_count", "message_open_count"),
    _flag("ever_unsubscribed", "1 when the client ever unsubscribed from any channel, else 0.",
          "event = 'unsubscribe'"),
    _flag("ever_bounced", "1 when a message to the client ever bounced, else 0.", "event = 'bounce'"),
]

for ch in CHANNELS:
    FACTORS += [
        _agg(f"channel_{ch}_count", f"Number of {ch} messages sent to the client, all history.",
             f"count(*) FILTER (WHERE channel = '{ch}' AND event = 'send')", ("channel", "event")),
        _agg(f"{ch}_open_count", f"Number of {ch} messages opened, all history.",
             f"count(*) FILTER (WHERE channel = '{ch}' AND event = 'open')", ("channel", "event")),
        _agg(f"{ch}_click_count", f"Number of clicks in {ch} messages, all history.",
             f"count(*) FILTER (WHERE channel = '{ch}' AND event = 'click')", ("channel", "event")),
        _rate(f"{ch}_open_rate", f"{ch} opens per {ch} message sent; 0 when none was sent.",
              f"{ch}_open_count", f"channel_{ch}_count"),
        _rate(f"{ch}_click_rate", f"{ch} clicks per {ch} message sent; 0 when none was sent.",
              f"{ch}_click_count", f"channel_{ch}_count"),
        _flag(f"{ch}_unsubscribed", f"1 when the client unsubscribed from {ch}, else 0.",
              f"channel = '{ch}' AND event = 'unsubscribe'"),
        _flag(f"{ch}_bounced", f"1 when a {ch} message to the client bounced, else 0.",
              f"channel = '{ch}' AND event = 'bounce'"),
    ]

# Smoothed rates: a prior worth a few messages is added to each count, so clients with few
# messages sit near the prior instead of at 0 or 1 (a tree cannot tell 1 of 1 from 30 of 30
# in a plain ratio). Prior means are typical values of retail mailings (1 in 8 sends clicked,
# 1 in 4 trackable sends opened, 15% of clicks ending in a purchase).
FACTORS += [
    _smoothed("click_rate_smoothed",
              "Clicks per message sent, all channels, smoothed: (clicks + 0.5) / (sends + 4).",
              ("message_click_count",), ("message_send_count",), 0.5, 4.0),
    _smoothed("trackable_open_rate_smoothed",
              "Opens per message sent in the channels that report opens (email, mobile_push), "
              "smoothed: (opens + 0.5) / (sends + 2). SMS reports no opens, so it would only "
              "dilute the rate.",
              ("email_open_count", "mobile_push_open_count"), ("channel_email_count", "channel_mobile_push_count"),
              0.5, 2.0),
    _smoothed("click_to_purchase_rate_smoothed",
              "Purchases attributed to a message per click, smoothed: (purchases + 0.3) / (clicks + 2).",
              ("message_purchase_count",), ("message_click_count",), 0.3, 2.0),
]

register_all(FACTORS)
