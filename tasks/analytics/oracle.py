"""Oracle measures: what ranking clients by their true uplift achieves.

Synthetic worlds carry a truth table with each client's response probability with and
without the offer. Ranking a set of clients by the true uplift ``p_treated - p_control`` is
the best any model can hope for; scoring that ranking with the same metrics on the same
realised outcomes gives the yardstick a model is reported against
(``model Qini AUC / oracle Qini AUC``). Only evaluation code and benchmarks read the truth.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from tasks.analytics import metrics
from tasks.core.errors import DataValidationError, NotFoundError

TRUTH_COLUMNS = ("client_id", "p_control", "p_treated")


def true_uplift(truth: pd.DataFrame, client_ids: Any) -> np.ndarray:
    """True uplift ``p_treated - p_control`` of each client in ``client_ids``, in that order.

    Raises DataValidationError when the truth table lacks a column or repeats a client id,
    and NotFoundError naming a few ids that are not in it.
    """
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise DataValidationError("truth", missing[0], f"missing column(s) {missing}; the table has {list(truth.columns)}")
    ids = pd.Index(truth["client_id"].to_numpy())
    if not ids.is_unique:
        dup = ids[ids.duplicated()].unique()[:5].tolist()
        raise DataValidationError("truth", "client_id", f"client ids repeat, e.g. {dup}")
    wanted = client_ids.to_numpy() if isinstance(client_ids, (pd.Series, pd.Index)) else np.asarray(client_ids)
    if wanted.ndim != 1:
        raise DataValidationError("oracle input", "client_id", f"expected a 1-d list of client ids, got shape {wanted.shape}")
    pos = ids.get_indexer(wanted)
    unknown = pos < 0
    if unknown.any():
        examples = pd.unique(wanted[unknown])[:5].tolist()
        raise NotFoundError(
            f"table 'truth', column 'client_id': {int(unknown.sum())} client id(s) are not in the truth "
            f"table, e.g. {examples}"
        )
    diff = truth["p_treated"].to_numpy(dtype="float64") - truth["p_control"].to_numpy(dtype="float64")
    return diff[pos]


def oracle_measures(
    y: Any, treatment: Any, true_uplift: Any, k: float | int = 0.3, strategy: str = "overall"
) -> dict[str, float]:
    """Qini AUC, uplift AUC and uplift@k of ranking these clients by their true uplift.

    ``y`` and ``treatment`` are the realised 0/1 outcomes and arms; the measures use the same
    definitions as :mod:`tasks.analytics.metrics`, so a model scored on the same rows compares directly.
    """
    return {
        "qini_auc": metrics.qini_auc(y, true_uplift, treatment),
        "uplift_auc": metrics.uplift_auc(y, true_uplift, treatment),
        "uplift_at_k": metrics.uplift_at_k(y, true_uplift, treatment, k=k, strategy=strategy),
    }


def oracle_measures_for_clients(
    truth: pd.DataFrame, client_ids: Any, y: Any, treatment: Any, k: float | int = 0.3
) -> dict[str, float]:
    """:func:`oracle_measures` with the true uplift looked up in ``truth`` for ``client_ids``."""
    return oracle_measures(y, treatment, true_uplift(truth, client_ids), k=k)


def relative_to_oracle(model_measures: Mapping[str, float], oracle: Mapping[str, float]) -> dict[str, float]:
    """Each measure present in both as a fraction of the oracle's value (model / oracle).

    A ratio is NaN when the oracle's value is not positive or not finite, since the fraction
    is then meaningless. Raises DataValidationError when the two share no measure.
    """
    common = [key for key in model_measures if key in oracle]
    if not common:
        raise DataValidationError(
            "oracle input", None,
            f"model measures {sorted(model_measures)} and oracle measures {sorted(oracle)} share no name",
        )
    out: dict[str, float] = {}
    for key in common:
        ref, value = float(oracle[key]), float(model_measures[key])
        out[key] = value / ref if math.isfinite(ref) and ref > 0 else math.nan
    return out


def expected_qini_ratio(
    score: Any, p_control: Any, p_treated: Any, treatment: Any
) -> dict[str, float]:
    """A ranking's Qini gain as a share of the oracle's, in expectation over the outcomes.

    The realised ratio (``qini_auc`` of the model / of the oracle on the same outcomes) moves
    with the luck of one draw of rare responses; here each client's outcome is replaced by the
    probability of the arm they are in, which integrates that luck out for the same clients
    and the same assignment. Returns ``model_gain``, ``oracle_gain`` (see
    :func:`tasks.analytics.metrics.expected_qini_gain`) and ``ratio``; the oracle ranks by
    ``p_treated - p_control``.
    """
    pc = metrics.as_float_array(p_control, "p_control", "expected_qini_ratio input")
    pt = metrics.as_float_array(p_treated, "p_treated", "expected_qini_ratio input")
    tt = metrics.as_float_array(treatment, "treatment", "expected_qini_ratio input")
    if not (len(pc) == len(pt) == len(tt)):
        raise DataValidationError(
            "expected_qini_ratio input", None,
            f"inputs have different lengths (p_control {len(pc)}, p_treated {len(pt)}, treatment {len(tt)})",
        )
    p_arm = np.where(tt == 1, pt, pc)
    model_gain = metrics.expected_qini_gain(p_arm, score, tt)
    oracle_gain = metrics.expected_qini_gain(p_arm, pt - pc, tt)
    ratio = model_gain / oracle_gain if oracle_gain > 0 else math.nan
    return {"model_gain": model_gain, "oracle_gain": oracle_gain, "ratio": ratio}


def true_gain_ratio(score: Any, true_uplift: Any) -> float:
    """Share of the oracle's gain a ranking captures, measured on the true uplift itself.

    The gain curve of a ranking is the cumulative true uplift of the clients taken so far (the
    Qini curve of an experiment with infinitely many replications of each client); its area
    above the chord to the total, divided by the same area for the ranking by true uplift. No
    outcome and no arm assignment enters, so it has no sampling noise for the given clients.
    Tied scores are one step (the curve is linear across them, as for the Qini curve).
    """
    where = "true_gain_ratio input"
    ss = metrics.as_float_array(score, "score", where)
    tu = metrics.as_float_array(true_uplift, "true_uplift", where)
    if len(ss) != len(tu) or len(ss) == 0:
        raise DataValidationError(where, None, f"score has {len(ss)} values and true_uplift {len(tu)}; "
                                  "they must be equally long and not empty")
    ss = metrics.finite_float_array(ss, "score", where)
    tu = metrics.finite_float_array(tu, "true_uplift", where)

    def gain(rank_by: np.ndarray) -> float:
        order = np.argsort(-rank_by, kind="stable")
        ranked = rank_by[order]
        cut = np.r_[np.flatnonzero(np.diff(ranked)), ranked.size - 1]
        x = np.r_[0.0, cut + 1.0]
        g = np.r_[0.0, np.cumsum(tu[order])[cut]]
        return float(np.trapezoid(g, x) - 0.5 * x[-1] * g[-1])

    best = gain(tu)
    return gain(ss) / best if best > 0 else math.nan
