"""Model guards: what keeps a model that learned the wrong thing from becoming champion.

* :func:`suspected_leaks` - the one home of the leak rule (training and the data profile use
  it): a column that alone predicts the target far better than every other column. Measured
  on the training split only; ``model.checks.allow`` acknowledges a column.
* :func:`check_known_after` - columns recorded only after the decision (``data.known_after``)
  are never features.
* :func:`signal_test` - whether the held-out figure shows any signal: an uplift model's Qini
  AUC CI covering 0 (a response model's ROC-AUC CI covering 0.5) means ``signal: none``.
* :func:`promotion_blockers` - the plain-words reasons why ``promote=auto`` must not make a
  version champion (an unacknowledged suspected leak, no signal).

The leak rule (figures from ``benchmarks/leak_rule.py`` on real tables, see docs/benchmarks.md):
a column is a suspected leak when its univariate ROC-AUC (``max(auc, 1 - auc)``) is at least
``LEAK_AUC`` and its edge over 0.5 is at least ``LEAK_RATIO`` times the strongest other
column's edge (near-copies of it, ``|r| > NEAR_COPY``, do not count as other columns), or
when its AUC is at least ``LEAK_AUC_CERTAIN`` whatever the others do.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from tasks.analytics import metrics as M
from tasks.core.errors import DataValidationError

LEAK_AUC = 0.75          # a column this predictive alone ...
LEAK_RATIO = 1.4         # ... and this many times the next column's edge over 0.5
LEAK_AUC_CERTAIN = 0.99  # a column this predictive alone is suspected whatever the others do
NEAR_COPY = 0.95         # |Pearson r| above which another column counts as a copy, not a rival


def column_auc(x: pd.Series | np.ndarray, y: np.ndarray) -> float:
    """ROC-AUC of ``x`` alone as a score for 0/1 ``y``, folded to ``max(auc, 1 - auc)``; rows
    with a missing or infinite value are skipped; NaN when the rest hold one class or one value."""
    xs = np.asarray(pd.to_numeric(pd.Series(np.asarray(x)), errors="coerce"), dtype="float64")
    ys = np.asarray(y, dtype="float64")
    ok = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[ok], ys[ok]
    if not (ys == 1).any() or not (ys == 0).any() or np.unique(xs).size < 2:
        return math.nan
    auc = float(M.roc_auc(ys, xs))
    return max(auc, 1.0 - auc)


def suspected_leaks(X: pd.DataFrame, y: np.ndarray, allow: Iterable[str] = (), max_rows: int | None = 20000,
                    seed: int = 0) -> list[dict[str, Any]]:
    """The columns of ``X`` that the leak rule (module docstring) suspects, strongest first:
    ``{column, auc, next_best_column, next_best_auc, ratio, acknowledged}``; ``ratio`` is the
    column's edge over 0.5 divided by the next best column's (None when there is none).
    ``allow`` lists acknowledged columns (still listed, with ``acknowledged: true``)."""
    y = np.asarray(y)
    if len(X) == 0 or X.shape[1] == 0 or np.unique(y[~pd.isna(y)]).size < 2:
        return []
    if max_rows is not None and len(X) > max_rows:
        pick = np.sort(np.random.default_rng(seed).choice(len(X), size=max_rows, replace=False))
        X, y = X.iloc[pick], y[pick]
    aucs = pd.Series({str(c): column_auc(X[c], y) for c in X.columns}, dtype="float64").dropna()
    aucs = aucs.sort_values(ascending=False, kind="mergesort")
    allowed = {str(a) for a in allow}
    out: list[dict[str, Any]] = []
    num = X.apply(pd.to_numeric, errors="coerce").astype("float64")
    num.columns = [str(c) for c in num.columns]
    for col, auc in aucs.items():
        if auc < LEAK_AUC:
            break
        others = aucs.drop(index=col)
        if len(others):
            r = num[others.index].corrwith(num[col]).abs().fillna(0.0)
            others = others[r.reindex(others.index).fillna(0.0) <= NEAR_COPY]
        nxt_col = str(others.index[0]) if len(others) else None
        nxt_auc = float(others.iloc[0]) if len(others) else None
        edge = auc - 0.5
        ratio = None if nxt_auc is None else (math.inf if nxt_auc <= 0.5 else edge / (nxt_auc - 0.5))
        if auc >= LEAK_AUC_CERTAIN or ratio is None or ratio >= LEAK_RATIO:
            out.append({"column": col, "auc": float(auc), "next_best_column": nxt_col, "next_best_auc": nxt_auc,
                        "ratio": None if ratio is None or not math.isfinite(ratio) else float(ratio),
                        "acknowledged": col in allowed})
    return out


def check_known_after(features: Iterable[str], known_after: Iterable[str]) -> None:
    """Raise when a column known only after the decision reached the features."""
    after = {str(c) for c in known_after}
    bad = [str(f) for f in features if str(f) in after]
    if bad:
        raise DataValidationError("training set", bad[0], f"column(s) {bad} are listed in data.known_after "
                                  "(recorded after the decision) but reached the features; they must never be "
                                  "features: check data.known_after and the feature set")


def signal_test(kind: str, heldout: dict[str, Any]) -> dict[str, Any]:
    """``{signal: present|none, metric, estimate, ci, no_signal_value}`` from the held-out
    figures: an uplift model's Qini AUC CI covering 0, a response model's ROC-AUC CI covering
    0.5 (or no CI at all) means no signal that a random score would not show."""
    metric, null = ("qini_auc", 0.0) if kind == "uplift" else ("roc_auc", 0.5)
    m = heldout.get(metric) or {}
    est, lo, hi = (float(m.get(k, math.nan)) for k in ("value", "ci_low", "ci_high"))
    present = bool(np.isfinite(lo) and np.isfinite(hi) and (lo > null or hi < null) and est > null)
    return {"signal": "present" if present else "none", "metric": metric, "estimate": est, "ci": [lo, hi],
            "no_signal_value": null}


def guard_messages(meta: dict[str, Any]) -> list[str]:
    """Plain-words warnings about a version's metadata (suspected leaks, no signal)."""
    out = []
    for leak in (meta.get("checks") or {}).get("suspected_leaks") or []:
        nxt = (f"the next best column {leak['next_best_column']!r} reaches {leak['next_best_auc']:.3f}"
               if leak.get("next_best_column") else "no other column predicts it")
        state = ("acknowledged with model.checks.allow" if leak.get("acknowledged") else
                 f"if it is known before the decision, acknowledge it with model.checks.allow=[{leak['column']}]; "
                 f"if it is recorded after, list it in data.known_after")
        out.append(f"SUSPECTED LEAK: column {leak['column']!r} alone predicts the target with ROC-AUC "
                   f"{leak['auc']:.3f} while {nxt}; {state}")
    test = meta.get("signal_test") or {}
    if meta.get("signal") == "none":
        lo, hi = test.get("ci", [math.nan, math.nan])
        out.append(f"NO SIGNAL: held-out {test.get('metric')} {test.get('estimate', math.nan):.4f}, CI "
                   f"[{lo:.4f}, {hi:.4f}] covers {test.get('no_signal_value')} (what a random score gets): "
                   "this model ranks clients no better than chance on the held-out rows")
    return out


def promotion_blockers(meta: dict[str, Any], allow: Iterable[str] | None = None) -> list[str]:
    """Why ``promote=auto`` must not make this version champion: unacknowledged suspected
    leaks and ``signal: none``. ``allow`` (None: the metadata's own ``checks.allow``) lists
    acknowledged columns. Empty when nothing blocks."""
    checks = meta.get("checks") or {}
    allowed = {str(a) for a in (checks.get("allow") or [] if allow is None else allow)}
    out = [f"suspected leak {leak['column']!r} (ROC-AUC {leak['auc']:.3f} alone) not acknowledged in "
           "model.checks.allow" for leak in checks.get("suspected_leaks") or []
           if leak["column"] not in allowed and not leak.get("acknowledged")]
    if meta.get("signal") == "none":
        test = meta.get("signal_test") or {}
        out.append(f"no signal: held-out {test.get('metric')} CI covers {test.get('no_signal_value')}")
    return out
