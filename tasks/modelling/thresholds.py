"""Score cutoffs suggested at training time, measured on the held-out clients.

The cutoffs follow the campaign's offer policy (:mod:`tasks.campaign.policy`): the same count
for a top fraction, the same tie rule, the same per-client profit cutoff.
"""
from __future__ import annotations

import numpy as np

from tasks.campaign.policy import profit_cutoff, top_fraction_count, top_k_cutoff
from tasks.modelling.config import ModelConfig


def suggest_uplift_thresholds(y: np.ndarray, score: np.ndarray, t: np.ndarray, cfg: ModelConfig) -> dict:
    """Score cutoffs: for the top ``k`` fraction, and profit-optimal given margin and contact cost.

    Profit of offering the top fraction q (measured on held-out clients):
    ``N*q * uplift_in_top_q * margin - N*q * contact_cost``; the best q on a 1%-grid is
    reported with its score cutoff. The per-client rule ``uplift * margin > contact_cost``
    gives ``cutoff = contact_cost / margin``. Both profit suggestions appear only when the
    user's model config sets ``margin`` and ``contact_cost`` (never a default of other data).
    """
    order = np.argsort(-score, kind="stable")
    n = len(y)
    top_cutoff, _ = top_k_cutoff(score[order], max(1, top_fraction_count(cfg.k, n)))
    out: dict = {"top_fraction": {"fraction": cfg.k, "score_cutoff": top_cutoff}}
    if cfg.margin is None or cfg.contact_cost is None:
        out["profit"] = "no suggestion: set model.margin and model.contact_cost to get the profit-optimal cutoff"
        return out
    ys, ts, ss = y[order], t[order], score[order]
    best = {"fraction": 0.0, "profit": 0.0, "score_cutoff": float(ss[0]) + 1e-12}
    ct = np.cumsum(ts)
    cc = np.cumsum(1 - ts)
    yt = np.cumsum(ys * ts)
    yc = np.cumsum(ys * (1 - ts))
    for q in np.arange(0.01, 1.0001, 0.01):
        m = max(1, top_fraction_count(q, n))
        if ct[m - 1] == 0 or cc[m - 1] == 0:
            continue
        lift = yt[m - 1] / ct[m - 1] - yc[m - 1] / cc[m - 1]
        profit = m * (lift * cfg.margin - cfg.contact_cost)
        if profit > best["profit"]:
            best = {"fraction": float(round(q, 2)), "profit": float(profit), "score_cutoff": float(ss[m - 1])}
    return {
        **out,
        "profit_optimal": {**best, "margin": cfg.margin, "contact_cost": cfg.contact_cost,
                           "per_held_out_clients": int(n)},
        "per_client_rule": {"score_cutoff": profit_cutoff(cfg.margin, cfg.contact_cost),
                            "rule": "offer when predicted uplift x margin > contact cost"},
    }
