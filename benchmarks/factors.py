"""Benchmark: the factor engine against one hand-written DuckDB query on a 1M-client world.

    python benchmarks/factors.py [--name bench1m] [--n-clients 1000000] [--artifacts artifacts]

Generates the synthetic world when it is missing (``python -m flows.generate``), then runs
two fresh subprocesses over the same Parquet files, as of the world's as-of date:

- ``ours``: ``factors.compute_factors(..., factor_set("default"))`` (every client);
- ``duckdb``: the query in :data:`HAND_SQL`, written out by hand (one scan and one
  ``GROUP BY`` per table, ``FILTER`` clauses for the windows), for the same factors.

Each subprocess reports its wall time (computation only, result as pandas) and its peak
RSS. The parent checks that both tables agree (same clients in the same order,
``allclose`` on every shared column), prints the figures and the ratio, and as the last
line one JSON object. Targets: ours <= 2x the hand-written query's time, peak <= 8 GiB.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

THREADS = os.cpu_count() or 1
MEMORY_LIMIT = "6GB"

# The hand-written query. AS_OF is replaced by the timestamp literal, PURCHASES, MESSAGES
# and CLIENTS by the read_parquet(...) sources.
HAND_SQL = r"""
WITH
p AS (
  SELECT client_id,
    max(timestamp) AS last_ts,
    min(timestamp) AS first_ts,
    max(timestamp) FILTER (WHERE promo) AS last_promo_ts,
    count(*) AS n_all,
    sum(amount) AS amt_all,
    count(*) FILTER (WHERE timestamp >= AS_OF - INTERVAL 30 DAY) AS n30,
    sum(amount) FILTER (WHERE timestamp >= AS_OF - INTERVAL 30 DAY) AS amt30,
    max(amount) FILTER (WHERE timestamp >= AS_OF - INTERVAL 30 DAY) AS max30,
    sum(quantity) FILTER (WHERE timestamp >= AS_OF - INTERVAL 30 DAY) AS q30,
    count(*) FILTER (WHERE timestamp >= AS_OF - INTERVAL 60 DAY) AS n60,
    sum(amount) FILTER (WHERE timestamp >= AS_OF - INTERVAL 60 DAY) AS amt60,
    count(*) FILTER (WHERE timestamp >= AS_OF - INTERVAL 90 DAY) AS n90,
    sum(amount) FILTER (WHERE timestamp >= AS_OF - INTERVAL 90 DAY) AS amt90,
    max(amount) FILTER (WHERE timestamp >= AS_OF - INTERVAL 90 DAY) AS max90,
    count(*) FILTER (WHERE timestamp >= AS_OF - INTERVAL 90 DAY AND promo) AS promo90,
    sum(quantity) FILTER (WHERE timestamp >= AS_OF - INTERVAL 90 DAY) AS q90,
    count(*) FILTER (WHERE timestamp >= AS_OF - INTERVAL 180 DAY) AS n180,
    sum(amount) FILTER (WHERE timestamp >= AS_OF - INTERVAL 180 DAY) AS amt180,
    max(amount) FILTER (WHERE timestamp >= AS_OF - INTERVAL 180 DAY) AS max180,
    sum(quantity) FILTER (WHERE timestamp >= AS_OF - INTERVAL 180 DAY) AS q180,
    count(*) FILTER (WHERE timestamp >= AS_OF - INTERVAL 365 DAY) AS n365,
    sum(amount) FILTER (WHERE timestamp >= AS_OF - INTERVAL 365 DAY) AS amt365,
    max(amount) FILTER (WHERE timestamp >= AS_OF - INTERVAL 365 DAY) AS max365,
    sum(quantity) FILTER (WHERE timestamp >= AS_OF - INTERVAL 365 DAY) AS q365,
    sum(amount) FILTER (WHERE timestamp >= AS_OF - INTERVAL 365 DAY AND category = 'grocery') AS amt_grocery,
    sum(amount) FILTER (WHERE timestamp >= AS_OF - INTERVAL 365 DAY AND category = 'household') AS amt_household,
    sum(amount) FILTER (WHERE timestamp >= AS_OF - INTERVAL 365 DAY AND category = 'beauty') AS amt_beauty,
    sum(amount) FILTER (WHERE timestamp >= AS_OF - INTERVAL 365 DAY AND category = 'electronics') AS amt_electronics,
    sum(amount) FILTER (WHERE timestamp >= AS_OF - INTERVAL 365 DAY AND category = 'clothing') AS amt_clothing,
    sum(amount) FILTER (WHERE timestamp >= AS_OF - INTERVAL 365 DAY AND category = 'kids') AS amt_kids,
    count(DISTINCT category) FILTER (WHERE timestamp >= AS_OF - INTERVAL 365 DAY) AS ncat365,
    count(*) FILTER (WHERE timestamp >= AS_OF - INTERVAL 365 DAY AND channel = 'online') AS online365,
    count(*) FILTER (WHERE timestamp >= AS_OF - INTERVAL 365 DAY AND promo) AS promo365,
    count(*) FILTER (WHERE promo) AS promo_all,
    min(timestamp) FILTER (WHERE timestamp >= AS_OF - INTERVAL 365 DAY) AS first365_ts
  FROM PURCHASES
  WHERE timestamp < AS_OF
  GROUP BY client_id
),
m AS (
  SELECT client_id,
    max(timestamp) FILTER (WHERE event = 'send') AS last_send,
    max(timestamp) FILTER (WHERE event = 'open') AS last_open,
    max(timestamp) FILTER (WHERE event = 'click') AS last_click,
    count(*) FILTER (WHERE event = 'send') AS sends,
    count(*) FILTER (WHERE event = 'open') AS opens,
    count(*) FILTER (WHERE event = 'click') AS clicks,
    count(*) FILTER (WHERE event = 'send' AND timestamp >= AS_OF - INTERVAL 90 DAY) AS sends90,
    count(*) FILTER (WHERE event = 'send' AND timestamp >= AS_OF - INTERVAL 30 DAY) AS sends30,
    count(*) FILTER (WHERE event = 'send' AND timestamp >= AS_OF - INTERVAL 28 DAY) AS sends28,
    count(*) FILTER (WHERE event = 'open' AND timestamp >= AS_OF - INTERVAL 28 DAY) AS opens28,
    count(*) FILTER (WHERE event = 'click' AND timestamp >= AS_OF - INTERVAL 28 DAY) AS clicks28,
    count(*) FILTER (WHERE event = 'send' AND timestamp >= AS_OF - INTERVAL 84 DAY) AS sends84,
    count(*) FILTER (WHERE event = 'open' AND timestamp >= AS_OF - INTERVAL 84 DAY) AS opens84,
    count(*) FILTER (WHERE event = 'click' AND timestamp >= AS_OF - INTERVAL 84 DAY) AS clicks84,
    count(*) FILTER (WHERE event = 'purchase') AS mpurchases,
    count(*) FILTER (WHERE event = 'unsubscribe') AS unsubs,
    count(*) FILTER (WHERE event = 'bounce') AS bounces,
    count(*) FILTER (WHERE channel = 'email' AND event = 'send') AS e_send,
    count(*) FILTER (WHERE channel = 'email' AND event = 'open') AS e_open,
    count(*) FILTER (WHERE channel = 'email' AND event = 'click') AS e_click,
    count(*) FILTER (WHERE channel = 'email' AND event = 'unsubscribe') AS e_unsub,
    count(*) FILTER (WHERE channel = 'email' AND event = 'bounce') AS e_bounce,
    count(*) FILTER (WHERE channel = 'mobile_push' AND event = 'send') AS p_send,
    count(*) FILTER (WHERE channel = 'mobile_push' AND event = 'open') AS p_open,
    count(*) FILTER (WHERE channel = 'mobile_push' AND event = 'click') AS p_click,
    count(*) FILTER (WHERE channel = 'mobile_push' AND event = 'unsubscribe') AS p_unsub,
    count(*) FILTER (WHERE channel = 'sms' AND event = 'send') AS s_send,
    count(*) FILTER (WHERE channel = 'sms' AND event = 'click') AS s_click,
    count(*) FILTER (WHERE channel = 'sms' AND event = 'unsubscribe') AS s_unsub,
    count(*) FILTER (WHERE channel = 'sms' AND event = 'bounce') AS s_bounce
  FROM MESSAGES
  WHERE timestamp < AS_OF
  GROUP BY client_id
),
c AS (
  SELECT * , row_number() OVER () AS pos FROM CLIENTS WHERE registration_date < AS_OF
)
SELECT
  c.client_id,
  c.age,
  CAST(c.gender = 'F' AS TINYINT) AS is_female,
  date_diff('second', CAST(c.registration_date AS TIMESTAMP), AS_OF) / 86400.0 AS tenure_days,
  LEAST(date_diff('second', CAST(c.registration_date AS TIMESTAMP), AS_OF) / 86400.0, 365.0) AS tenure_days_365,
  LEAST(date_diff('second', CAST(c.registration_date AS TIMESTAMP), AS_OF) / 86400.0, 1095.0) AS tenure_days_1095,
  CAST(c.email_opt_out AS TINYINT) AS email_opt_out,
  CAST(c.sms_opt_out AS TINYINT) AS sms_opt_out,
  CAST(c.push_opt_out AS TINYINT) AS push_opt_out,
  CAST(c.marketing_opt_out AS TINYINT) AS marketing_opt_out,
  CAST(CAST(c.region AS VARCHAR) = 'capital' AS TINYINT) AS region_capital,
  CAST(CAST(c.region AS VARCHAR) = 'north' AS TINYINT) AS region_north,
  CAST(CAST(c.region AS VARCHAR) = 'south' AS TINYINT) AS region_south,
  CAST(CAST(c.region AS VARCHAR) = 'east' AS TINYINT) AS region_east,
  CAST(CAST(c.region AS VARCHAR) = 'west' AS TINYINT) AS region_west,
  CAST(CAST(c.region AS VARCHAR) = 'central' AS TINYINT) AS region_central,
  COALESCE(date_diff('second', p.last_ts, AS_OF) / 86400.0, 9999.0) AS days_since_last_purchase,
  COALESCE(date_diff('second', p.first_ts, AS_OF) / 86400.0, 9999.0) AS days_since_first_purchase,
  COALESCE(p.n_all, 0) AS purchase_count_total,
  COALESCE(p.amt_all, 0.0) AS purchase_amount_total,
  COALESCE(p.n30, 0) AS purchase_count_30d,
  COALESCE(p.amt30, 0.0) AS purchase_amount_30d,
  COALESCE(p.n90, 0) AS purchase_count_90d,
  COALESCE(p.amt90, 0.0) AS purchase_amount_90d,
  COALESCE(p.n180, 0) AS purchase_count_180d,
  COALESCE(p.amt180, 0.0) AS purchase_amount_180d,
  COALESCE(p.n365, 0) AS purchase_count_365d,
  COALESCE(p.amt365, 0.0) AS purchase_amount_365d,
  COALESCE(p.amt30 / NULLIF(p.n30, 0), 0.0) AS avg_basket_30d,
  COALESCE(p.max30, 0.0) AS max_basket_30d,
  COALESCE(p.amt30 / NULLIF(p.q30, 0), 0.0) AS avg_item_price_30d,
  COALESCE(p.q30, 0) AS item_quantity_30d,
  COALESCE(p.amt90 / NULLIF(p.n90, 0), 0.0) AS avg_basket_90d,
  COALESCE(p.max90, 0.0) AS max_basket_90d,
  COALESCE(p.amt90 / NULLIF(p.q90, 0), 0.0) AS avg_item_price_90d,
  COALESCE(p.q90, 0) AS item_quantity_90d,
  COALESCE(p.amt180 / NULLIF(p.n180, 0), 0.0) AS avg_basket_180d,
  COALESCE(p.max180, 0.0) AS max_basket_180d,
  COALESCE(p.amt180 / NULLIF(p.q180, 0), 0.0) AS avg_item_price_180d,
  COALESCE(p.q180, 0) AS item_quantity_180d,
  COALESCE(p.amt365 / NULLIF(p.n365, 0), 0.0) AS avg_basket_365d,
  COALESCE(p.max365, 0.0) AS max_basket_365d,
  COALESCE(p.amt365 / NULLIF(p.q365, 0), 0.0) AS avg_item_price_365d,
  COALESCE(p.q365, 0) AS item_quantity_365d,
  COALESCE(p.n30, 0) - (COALESCE(p.n60, 0) - COALESCE(p.n30, 0)) AS purchase_count_diff_30d,
  COALESCE(p.amt30, 0.0) - (COALESCE(p.amt60, 0.0) - COALESCE(p.amt30, 0.0)) AS purchase_amount_diff_30d,
  COALESCE(p.n30 / NULLIF(p.n60, 0), 0.5) AS purchase_count_trend_30d,
  COALESCE(COALESCE(p.amt30, 0.0) / NULLIF(p.amt60, 0), 0.5) AS purchase_amount_trend_30d,
  COALESCE(p.amt_grocery / NULLIF(p.amt365, 0), 0.0) AS category_grocery_share_365d,
  COALESCE(p.amt_household / NULLIF(p.amt365, 0), 0.0) AS category_household_share_365d,
  COALESCE(p.amt_beauty / NULLIF(p.amt365, 0), 0.0) AS category_beauty_share_365d,
  COALESCE(p.amt_electronics / NULLIF(p.amt365, 0), 0.0) AS category_electronics_share_365d,
  COALESCE(p.amt_clothing / NULLIF(p.amt365, 0), 0.0) AS category_clothing_share_365d,
  COALESCE(p.amt_kids / NULLIF(p.amt365, 0), 0.0) AS category_kids_share_365d,
  COALESCE(p.ncat365, 0) AS distinct_categories_365d,
  COALESCE(p.online365 / NULLIF(p.n365, 0), 0.0) AS online_share_365d,
  COALESCE(p.promo365 / NULLIF(p.n365, 0), 0.0) AS promo_share_365d,
  COALESCE(date_diff('second', p.last_promo_ts, AS_OF) / 86400.0, 9999.0) AS days_since_last_promo_purchase,
  COALESCE(p.promo90 / NULLIF(p.n90, 0), 0.0) AS promo_share_90d,
  COALESCE(p.promo_all, 0) AS promo_purchase_count_total,
  COALESCE(p.promo_all / NULLIF(p.n_all, 0), 0.0) AS promo_share_total,
  (COALESCE(p.promo_all, 0) + 1.0) / (COALESCE(p.n_all, 0) + 2.0) AS promo_share_smoothed,
  CASE WHEN p.n_all >= 2 THEN date_diff('second', p.first_ts, p.last_ts) / 86400.0 / (p.n_all - 1)
       ELSE 9999.0 END AS avg_days_between_purchases,
  COALESCE(COALESCE(p.amt_all, 0.0)
           / NULLIF(date_diff('second', CAST(c.registration_date AS TIMESTAMP), AS_OF) / 86400.0, 0), 0.0)
    AS amount_per_tenure_day,
  COALESCE(date_diff('second', p.first365_ts, AS_OF) / 86400.0, 9999.0) AS days_since_first_purchase_365d,
  COALESCE(p.promo365, 0) AS promo_purchase_count_365d,
  (COALESCE(p.promo365, 0) + 1.0) / (COALESCE(p.n365, 0) + 2.0) AS promo_share_smoothed_365d,
  CASE WHEN p.n365 >= 2 THEN date_diff('second', p.first365_ts, p.last_ts) / 86400.0 / (p.n365 - 1)
       ELSE 9999.0 END AS avg_days_between_purchases_365d,
  COALESCE(COALESCE(p.amt365, 0.0)
           / NULLIF(LEAST(date_diff('second', CAST(c.registration_date AS TIMESTAMP), AS_OF) / 86400.0, 365.0), 0), 0.0)
    AS amount_per_tenure_day_365d,
  COALESCE(m.sends28, 0) AS message_send_count_28d,
  COALESCE(m.opens28, 0) AS message_open_count_28d,
  COALESCE(m.clicks28, 0) AS message_click_count_28d,
  COALESCE(m.sends84, 0) AS message_send_count_84d,
  COALESCE(m.opens84, 0) AS message_open_count_84d,
  COALESCE(m.clicks84, 0) AS message_click_count_84d,
  COALESCE(date_diff('second', m.last_send, AS_OF) / 86400.0, 9999.0) AS days_since_last_message,
  COALESCE(date_diff('second', m.last_open, AS_OF) / 86400.0, 9999.0) AS days_since_last_open,
  COALESCE(date_diff('second', m.last_click, AS_OF) / 86400.0, 9999.0) AS days_since_last_click,
  COALESCE(m.sends, 0) AS message_send_count,
  COALESCE(m.opens, 0) AS message_open_count,
  COALESCE(m.clicks, 0) AS message_click_count,
  COALESCE(m.sends90, 0) AS message_send_count_90d,
  COALESCE(m.mpurchases, 0) AS message_purchase_count,
  COALESCE(m.opens / NULLIF(m.sends, 0), 0.0) AS open_rate,
  COALESCE(m.clicks / NULLIF(m.sends, 0), 0.0) AS click_rate,
  COALESCE(m.sends30, 0) AS message_send_count_30d,
  COALESCE(m.clicks / NULLIF(m.opens, 0), 0.0) AS click_to_open_rate,
  CAST(COALESCE(m.unsubs, 0) > 0 AS TINYINT) AS ever_unsubscribed,
  CAST(COALESCE(m.bounces, 0) > 0 AS TINYINT) AS ever_bounced,
  COALESCE(m.e_send, 0) AS channel_email_count,
  COALESCE(m.e_open, 0) AS email_open_count,
  COALESCE(m.e_click, 0) AS email_click_count,
  COALESCE(m.e_open / NULLIF(m.e_send, 0), 0.0) AS email_open_rate,
  COALESCE(m.e_click / NULLIF(m.e_send, 0), 0.0) AS email_click_rate,
  CAST(COALESCE(m.e_unsub, 0) > 0 AS TINYINT) AS email_unsubscribed,
  CAST(COALESCE(m.e_bounce, 0) > 0 AS TINYINT) AS email_bounced,
  COALESCE(m.p_send, 0) AS channel_mobile_push_count,
  COALESCE(m.p_open, 0) AS mobile_push_open_count,
  COALESCE(m.p_click, 0) AS mobile_push_click_count,
  COALESCE(m.p_open / NULLIF(m.p_send, 0), 0.0) AS mobile_push_open_rate,
  COALESCE(m.p_click / NULLIF(m.p_send, 0), 0.0) AS mobile_push_click_rate,
  CAST(COALESCE(m.p_unsub, 0) > 0 AS TINYINT) AS mobile_push_unsubscribed,
  COALESCE(m.s_send, 0) AS channel_sms_count,
  COALESCE(m.s_click, 0) AS sms_click_count,
  COALESCE(m.s_click / NULLIF(m.s_send, 0), 0.0) AS sms_click_rate,
  CAST(COALESCE(m.s_unsub, 0) > 0 AS TINYINT) AS sms_unsubscribed,
  CAST(COALESCE(m.s_bounce, 0) > 0 AS TINYINT) AS sms_bounced,
  (COALESCE(m.clicks, 0) + 0.5) / (COALESCE(m.sends, 0) + 4.0) AS click_rate_smoothed,
  (COALESCE(m.e_open, 0) + COALESCE(m.p_open, 0) + 0.5)
    / (COALESCE(m.e_send, 0) + COALESCE(m.p_send, 0) + 2.0) AS trackable_open_rate_smoothed,
  (COALESCE(m.mpurchases, 0) + 0.3) / (COALESCE(m.clicks, 0) + 2.0) AS click_to_purchase_rate_smoothed
FROM c
LEFT JOIN p ON p.client_id = c.client_id
LEFT JOIN m ON m.client_id = c.client_id
ORDER BY c.pos
"""


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def peak_rss_mib() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_ours(data_dir: Path, as_of: str, out: Path) -> dict:
    from factors import compute_factors, factor_set

    names = factor_set("default")
    start, cpu = time.perf_counter(), cpu_seconds()
    table = compute_factors(data_dir, as_of, names)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    table.to_parquet(out, index=False)
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mib": peak_rss_mib(), "rows": len(table),
            "columns": table.shape[1] - 1}


def run_hand(data_dir: Path, as_of: str, out: Path) -> dict:
    import duckdb
    import pandas as pd

    ts = pd.Timestamp(as_of)
    sql = (HAND_SQL.replace("AS_OF", f"TIMESTAMP '{ts:%Y-%m-%d %H:%M:%S}'")
           .replace("PURCHASES", f"read_parquet('{data_dir / 'purchases.parquet'}')")
           .replace("MESSAGES", f"read_parquet('{data_dir / 'messages.parquet'}')")
           .replace("CLIENTS", f"read_parquet('{data_dir / 'clients.parquet'}')"))
    start, cpu = time.perf_counter(), cpu_seconds()
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {THREADS}")
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    table = con.execute(sql).fetch_df()
    con.close()
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    table.to_parquet(out, index=False)
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mib": peak_rss_mib(), "rows": len(table),
            "columns": table.shape[1] - 1}


def worker(kind: str, data_dir: Path, as_of: str, out: Path) -> None:
    result = (run_ours if kind == "ours" else run_hand)(data_dir, as_of, out)
    print(json.dumps(result))


def spawn(kind: str, data_dir: Path, as_of: str, out: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--data-dir", str(data_dir),
           "--as-of", as_of, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(ours_path: Path, hand_path: Path) -> dict:
    import numpy as np
    import pandas as pd

    ours = pd.read_parquet(ours_path)
    hand = pd.read_parquet(hand_path)
    if len(ours) != len(hand) or not (ours["client_id"].to_numpy() == hand["client_id"].to_numpy()).all():
        raise SystemExit("the two tables hold different clients or a different order")
    shared = [c for c in ours.columns if c in hand.columns and c != "client_id"]
    bad = [c for c in shared
           if not np.allclose(ours[c].to_numpy(dtype=float), hand[c].to_numpy(dtype=float), rtol=1e-9, atol=1e-9)]
    only_ours = [c for c in ours.columns if c not in hand.columns]
    return {"shared_columns": len(shared), "mismatched": bad, "only_in_ours": only_ours}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="bench1m")
    ap.add_argument("--n-clients", type=int, default=1_000_000)
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--worker", choices=["ours", "duckdb"])
    ap.add_argument("--data-dir")
    ap.add_argument("--as-of")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, Path(args.data_dir), args.as_of, Path(args.out))
        return

    # imported here, not at the top: the measured worker processes load only what they need
    from tasks.core.layout import Layout
    from tasks.data.tables import read_manifest

    layout = Layout(ROOT / args.artifacts)  # an absolute --artifacts wins
    data_dir = layout.dataset(args.name)
    if not layout.dataset_manifest(args.name).exists():
        print(f"generating the world {args.name} ({args.n_clients:,} clients) ...", flush=True)
        subprocess.run([sys.executable, "-m", "flows.generate", f"data.n_clients={args.n_clients}",
                        f"data.name={args.name}", f"paths.artifacts={layout.root}"],
                       check=True, cwd=str(ROOT))
    manifest = read_manifest(data_dir)
    as_of = str(manifest["as_of"])
    rows = manifest.get("row_counts", {})
    print(f"world {data_dir}: {manifest.get('n_clients')} clients, row counts {rows}, as of {as_of}")
    print(f"machine: {os.cpu_count()} cores; duckdb threads {THREADS}")

    with tempfile.TemporaryDirectory(prefix="factors_bench_") as tmp:
        ours_out, hand_out = Path(tmp) / "ours.parquet", Path(tmp) / "hand.parquet"
        print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
        hand = spawn("duckdb", data_dir, as_of, hand_out)
        ours = spawn("ours", data_dir, as_of, ours_out)
        check = compare(ours_out, hand_out)

    ratio = ours["seconds"] / hand["seconds"]
    print(f"hand-written DuckDB: {hand['seconds']:.2f} s ({hand['cpu_seconds']:.1f} CPU s), peak RSS {hand['peak_rss_mib']:.0f} MiB, "
          f"{hand['rows']:,} rows x {hand['columns']} factors")
    print(f"factor engine      : {ours['seconds']:.2f} s ({ours['cpu_seconds']:.1f} CPU s), peak RSS {ours['peak_rss_mib']:.0f} MiB, "
          f"{ours['rows']:,} rows x {ours['columns']} factors")
    print(f"time ratio ours/hand: {ratio:.2f} (target <= 2.0); peak memory target <= 8192 MiB")
    print(f"agreement: {check['shared_columns']} shared columns, mismatched {check['mismatched']}, "
          f"only in ours {check['only_in_ours']}")
    result = {
        "benchmark": "factors",
        "world": args.name,
        "clients": ours["rows"],
        "purchases": rows.get("purchases"),
        "messages": rows.get("messages"),
        "factors": ours["columns"],
        "shared_columns": check["shared_columns"],
        "agree": not check["mismatched"],
        "ours_seconds": round(ours["seconds"], 3),
        "hand_seconds": round(hand["seconds"], 3),
        "time_ratio": round(ratio, 3),
        "ours_cpu_seconds": round(ours["cpu_seconds"], 2),
        "hand_cpu_seconds": round(hand["cpu_seconds"], 2),
        "cpu_ratio": round(ours["cpu_seconds"] / hand["cpu_seconds"], 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "ours_peak_rss_mib": round(ours["peak_rss_mib"], 1),
        "hand_peak_rss_mib": round(hand["peak_rss_mib"], 1),
        "time_target_met": ratio <= 2.0,
        "memory_target_met": ours["peak_rss_mib"] <= 8192,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
