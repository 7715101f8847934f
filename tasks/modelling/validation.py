"""Validation that respects how a model is used: clients kept whole, forward in time.

* :func:`grouped_split` / :func:`grouped_folds` - train/test split and CV folds that keep
  every client's rows on one side (the same client appears in several past campaigns); with
  one row per client (``groups`` None or all distinct) they are the plain stratified ones;
* :func:`latest_date_rows` - the latest campaign date's rows: the out-of-time hold-out when
  the data holds two or more campaign dates;
* :func:`split_summary` - what the metadata says about the split.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split


def _repeated(groups: np.ndarray | None) -> bool:
    return groups is not None and pd.Series(groups).duplicated().any()


def stratified_split(n: int, strata: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row positions ``(train, test)`` of a train/test split stratified by ``strata``."""
    tr, te = train_test_split(np.arange(n), test_size=test_size, random_state=seed, stratify=strata)
    return np.sort(tr), np.sort(te)


def grouped_split(n: int, strata: np.ndarray, groups: np.ndarray | None, test_size: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row positions ``(train, test)``: whole groups (clients) go to the test side, in
    a seeded random order, until it holds ``test_size`` of the rows. Without repeated groups:
    the stratified split of rows (stratified by ``strata``)."""
    if not _repeated(groups):
        return stratified_split(n, strata, test_size, seed)
    idx = np.arange(n)
    codes, uniq = pd.factorize(pd.Series(groups))
    sizes = np.bincount(codes, minlength=len(uniq))
    order = np.random.default_rng(seed).permutation(len(uniq))
    cum = np.cumsum(sizes[order])
    n_test_groups = int(np.searchsorted(cum, test_size * n)) + 1
    test_groups = np.zeros(len(uniq), dtype=bool)
    test_groups[order[:min(n_test_groups, len(uniq) - 1)]] = True
    te = idx[test_groups[codes]]
    tr = idx[~test_groups[codes]]
    return tr, te


def grouped_folds(strata: np.ndarray, groups: np.ndarray | None, k: int,
                  seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` CV folds ``(fit rows, validation rows)`` stratified by ``strata``; no group in
    both sides of a fold (StratifiedGroupKFold) when groups repeat."""
    X0 = np.zeros((len(strata), 1))
    if not _repeated(groups):
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(X0, strata))
    return list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(X0, strata, pd.factorize(
        pd.Series(groups))[0]))


def latest_date_rows(dates: np.ndarray | None) -> tuple[np.ndarray, pd.Timestamp] | None:
    """``(mask of the rows at the latest date, that date)`` when the rows hold two or more
    dates, else None."""
    if dates is None:
        return None
    d = pd.to_datetime(pd.Series(np.asarray(dates)), errors="coerce")
    if d.isna().any() or d.nunique() < 2:
        return None
    latest = d.max()
    return (d == latest).to_numpy(), latest


def split_summary(groups: np.ndarray | None, tr: np.ndarray, te: np.ndarray) -> dict[str, Any]:
    """How the rows were split: by client (with the number of clients on each side and in
    both, which is 0) or by row."""
    if not _repeated(groups):
        return {"split": "by row (one row per client)", "train_rows": int(len(tr)), "test_rows": int(len(te))}
    g = pd.Series(groups)
    a, b = set(g.iloc[tr]), set(g.iloc[te])
    return {"split": "by client (a client's rows all on one side)", "train_rows": int(len(tr)),
            "test_rows": int(len(te)), "train_clients": len(a), "test_clients": len(b),
            "clients_in_both": len(a & b)}
