"""The one promotion rule: a challenger replaces the champion only on evidence.

Both models are scored on the same held-out rows; the paired bootstrap interval of
``challenger - champion`` (:func:`tasks.analytics.stats.paired_metric_difference`) must lie
above ``margin``: its lower bound, not the point difference, has to exceed it. A point
difference above 0 happens half the time between two models of equal quality; the lower
bound does so in about ``alpha / 2`` of such comparisons.

Training (``promote=auto``, :func:`tasks.modelling.training.decide_promotion`, margin
``model.promote_margin``) and monitoring's retraining (:mod:`tasks.monitoring.retrain`,
margin ``monitor.retrain.margin``) both decide with :func:`promotion_evidence`. When the
champion can only be judged by a figure measured on other rows, :func:`other_rows_decision`
says so and does not promote.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tasks.analytics import stats

ArrayLike = Any


def _fmt(x: float) -> str:
    return f"{x:+.4f}" if abs(x) < 10 else f"{x:+,.1f}"


def promotion_evidence(
    metric_name: str,
    metric: Callable[..., float],
    y: ArrayLike,
    champion_scores: ArrayLike,
    challenger_scores: ArrayLike,
    treatment: ArrayLike | None = None,
    margin: float = 0.0,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
    champion: str = "champion",
) -> dict[str, Any]:
    """Both models' ``metric`` on the same rows, the paired interval of the difference and the decision.

    ``promote`` is True only when the interval's lower bound exceeds ``margin``. ``reason`` states
    the numbers it was decided on, e.g. ``challenger - champion v0001 = +0.0120, 95% CI
    [-0.0040, +0.0290] on the same 1,234 held-out rows: lower bound not above margin 0``.
    """
    d = stats.paired_metric_difference(metric, y, champion_scores, challenger_scores, treatment,
                                       n_boot=n_boot, seed=seed, alpha=alpha)
    promote = bool(d["ci_low"] > margin)
    level = f"{1 - alpha:.0%}"
    verdict = "lower bound above" if promote else "lower bound not above"
    reason = (f"{metric_name}: challenger - {champion} = {_fmt(d['difference'])}, {level} CI "
              f"[{_fmt(d['ci_low'])}, {_fmt(d['ci_high'])}] on the same {d['n']:,} held-out rows: "
              f"{verdict} margin {margin:g}" + ("; promote" if promote else f"; keep {champion}"))
    return {"metric": metric_name, "champion": d["value_a"], "challenger": d["value_b"],
            "difference": d["difference"], "difference_ci_low": d["ci_low"], "difference_ci_high": d["ci_high"],
            "alpha": alpha, "n_holdout": d["n"], "margin": float(margin), "same_rows": True,
            "n_boot": int(n_boot), "promote": promote, "reason": reason}


def other_rows_decision(metric_name: str, challenger_value: float, champion_value: float | None,
                        champion: str = "champion") -> dict[str, Any]:
    """No paired comparison is possible (the champion cannot be scored on the challenger's
    held-out rows): the two figures come from different rows, so nothing is promoted automatically."""
    shown = "has no stored figure" if champion_value is None or not np.isfinite(champion_value) \
        else f"{champion_value:.4f} on the rows it was itself held out on"
    reason = (f"{metric_name}: challenger {challenger_value:.4f} on its held-out rows, {champion} {shown}; "
              f"not measured on the same rows, so not promoted automatically "
              f"(promote by hand: +action=promote model.version=<version>)")
    return {"metric": metric_name, "challenger": float(challenger_value), "champion": champion_value,
            "same_rows": False, "promote": False, "reason": reason}
