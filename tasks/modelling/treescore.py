"""Exact, fast scoring of fitted LightGBM boosters with numpy, block by block.

LightGBM's own predictor walks every tree for one row at a time. For the small trees of the
uplift models (a few leaves, hundreds of trees) a column-wise evaluation is several times
faster: each split is one comparison over a block of rows, each tree one ``np.where`` per
split, and the tree outputs are added in LightGBM's order, starting from 0.0, so the raw
score of every row is the same double. The probability of a binary model is
``1 / (1 + exp(-sigmoid * raw))`` with the C library's ``exp`` (``math.exp``), as in
LightGBM. Blocks run on a thread pool (numpy releases the GIL inside each operation).

Only what is reproduced exactly is compiled: numerical splits (any missing-value handling),
one tree per iteration, objectives ``binary`` and ``regression``; anything else (categorical
splits, linear trees, multiclass, other output transforms) returns None from
:func:`compile_booster` and is left to LightGBM. Inputs follow LightGBM's dense-matrix
rules: values with ``|v| <= 1e-35`` count as 0.0, NaN follows the split's missing type.
"""
from __future__ import annotations

import math
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from tasks.modelling.threads import lgbm_estimators

_ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float literal)
BLOCK_ROWS = 1 << 13              # rows per block: a block's columns stay in cache, its arrays in the heap
_exp = np.frompyfunc(math.exp, 1, 1)


@dataclass(frozen=True)
class CompiledBooster:
    """A booster's trees as nested tuples: ``(feature, threshold, missing, default_left,
    left, right)`` for a split, a float for a leaf; ``sigmoid`` is None for raw output."""

    trees: tuple
    n_features: int
    sigmoid: float | None

    def __post_init__(self) -> None:
        # the features the splits read, and the trees over positions in that list, so a block
        # prepares only those columns (and only the forms of them the splits' missing types use)
        used: dict[int, None] = {}
        kinds: set[str] = set()
        for tree in self.trees:
            _features(tree, used, kinds)
        order = sorted(used)
        at = {f: i for i, f in enumerate(order)}
        object.__setattr__(self, "_used", np.asarray(order, dtype=np.intp))
        object.__setattr__(self, "_kinds", frozenset(kinds))
        object.__setattr__(self, "_local", tuple(_remap(t, at) for t in self.trees))

    def raw(self, X: np.ndarray, threads: int = 1) -> np.ndarray:
        """Raw scores (sum of tree outputs) of the rows of the 2-D float64 array ``X``."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} feature columns, got shape {X.shape}")
        out = np.empty(len(X))
        blocks = [(a, min(a + BLOCK_ROWS, len(X))) for a in range(0, len(X), BLOCK_ROWS)]

        def run(bounds: tuple[int, int]) -> None:
            a, b = bounds
            out[a:b] = self._raw_block(X[a:b])

        if threads > 1 and len(blocks) > 1:
            with ThreadPoolExecutor(max_workers=int(threads)) as pool:
                list(pool.map(run, blocks))
        else:
            for bounds in blocks:
                run(bounds)
        return out

    def predict(self, X: np.ndarray, threads: int = 1) -> np.ndarray:
        """What ``Booster.predict(X)`` returns: the probability for binary, else the raw score."""
        raw = self.raw(X, threads)
        if self.sigmoid is None:
            return raw
        return 1.0 / (1.0 + _exp(-self.sigmoid * raw).astype(np.float64))

    def _raw_block(self, block: np.ndarray) -> np.ndarray:
        # one contiguous row per used feature (the block's columns), as LightGBM reads them
        cols = block.T[self._used]
        nan = np.isnan(cols)
        kept = np.where(np.abs(cols) <= _ZERO, 0.0, cols)  # NaN stays NaN
        zeroed = np.where(nan, 0.0, kept) if self._kinds & {"Zero", "None"} else None
        acc = np.zeros(len(block))
        goes: dict[tuple, np.ndarray] = {}  # a split condition repeated across trees is compared once
        for tree in self._local:
            acc += _node(tree, kept, zeroed, nan, goes)
        return acc


def _features(node: Any, used: dict[int, None], kinds: set[str]) -> None:
    if isinstance(node, tuple):
        used[node[0]] = None
        kinds.add(node[2])
        _features(node[4], used, kinds)
        _features(node[5], used, kinds)


def _remap(node: Any, at: dict[int, int]) -> Any:
    if not isinstance(node, tuple):
        return node
    return (at[node[0]], *node[1:4], _remap(node[4], at), _remap(node[5], at))


def _go(feature: int, threshold: float, missing: str, default_left: bool, kept: np.ndarray,
        zeroed: np.ndarray | None, nan: np.ndarray | None) -> np.ndarray:
    """Which rows a split sends left (``kept``, ``zeroed``, ``nan``: one row per feature)."""
    if missing == "NaN":      # NaN goes the default way, anything else by the threshold
        go = kept[feature] <= threshold
        if default_left:
            go |= nan[feature]
        return go
    if missing == "Zero":     # NaN counts as 0, and 0 goes the default way
        col = zeroed[feature]
        return (col <= threshold) | (col == 0.0) if default_left else (col <= threshold) & (col != 0.0)
    return zeroed[feature] <= threshold  # NaN counts as 0


def _node(node: Any, kept: np.ndarray, zeroed: np.ndarray | None, nan: np.ndarray | None,
          goes: dict[tuple, np.ndarray]) -> Any:
    if not isinstance(node, tuple):
        return node
    cond = node[:4]
    go = goes.get(cond)
    if go is None:
        go = goes[cond] = _go(*cond, kept, zeroed, nan)
    return np.where(go, _node(node[4], kept, zeroed, nan, goes), _node(node[5], kept, zeroed, nan, goes))


def _compile_node(node: dict) -> Any:
    if "leaf_value" in node:
        return float(node["leaf_value"])
    if node.get("decision_type") != "<=":
        raise _Unsupported(f"split type {node.get('decision_type')!r}")
    return (int(node["split_feature"]), float(node["threshold"]), str(node["missing_type"]),
            bool(node["default_left"]), _compile_node(node["left_child"]), _compile_node(node["right_child"]))


class _Unsupported(Exception):
    pass


def compile_booster(booster: Any) -> CompiledBooster | None:
    """The trees of a fitted ``lightgbm.Booster`` (up to its best iteration, as ``predict``
    uses), or None when the booster has something this module does not reproduce exactly."""
    dump = booster.dump_model()
    objective = str(dump.get("objective", "")).split()
    if dump.get("num_tree_per_iteration", 1) != 1 or not objective:
        return None
    if objective[0] == "binary" and len(objective) == 2 and objective[1].startswith("sigmoid:"):
        sigmoid: float | None = float(objective[1].split(":", 1)[1])
    elif objective == ["regression"]:
        sigmoid = None
    else:
        return None
    infos = dump["tree_info"]
    best = int(getattr(booster, "best_iteration", 0) or 0)
    if 0 < best < len(infos):
        infos = infos[:best]
    try:
        if any(info.get("is_linear") or "leaf_coeff" in info.get("tree_structure", {}) for info in infos):
            return None
        trees = tuple(_compile_node(info["tree_structure"]) for info in infos)
    except _Unsupported:
        return None
    return CompiledBooster(trees, int(dump["max_feature_idx"]) + 1, sigmoid)


# --------------------------------------------------------------------------------------
# scoring a fitted model through compiled boosters

# prediction settings that change what LightGBM returns: with any of them set, LightGBM predicts
_CHANGES_OUTPUT = ("pred_early_stop", "predict_raw_score", "is_predict_raw_score", "raw_score",
                   "predict_leaf_index", "is_predict_leaf_index", "leaf_index", "predict_contrib",
                   "is_predict_contrib", "contrib", "start_iteration_predict", "num_iteration_predict")

_compiled: "weakref.WeakKeyDictionary[Any, CompiledBooster | None]" = weakref.WeakKeyDictionary()


def compiled(booster: Any) -> CompiledBooster | None:
    """:func:`compile_booster`, remembered per booster object."""
    try:
        return _compiled[booster]
    except KeyError:
        result = _compiled[booster] = compile_booster(booster)
        return result


def lightgbm_matrix(X: Any) -> np.ndarray | None:
    """The float64 matrix holding exactly the values LightGBM predicts ``X`` from, or None
    when LightGBM would encode something itself (categorical columns, other inputs)."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        if any(not (pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t))
               or isinstance(t, pd.CategoricalDtype) or pd.api.types.is_extension_array_dtype(t)
               for t in X.dtypes):
            return None
        target = np.result_type(*[t.type for t in X.dtypes], np.float32)  # as lightgbm.basic does
        return X.to_numpy(dtype=target).astype(np.float64, copy=False)
    if isinstance(X, np.ndarray) and X.ndim == 2:
        return X.astype(np.float64 if X.dtype == np.float64 else np.float32, copy=False).astype(np.float64, copy=False)
    return None


class _CompiledBooster:
    """Stands in for an estimator's ``lightgbm.Booster`` while :func:`compiled_scoring` is
    active: plain predictions go through the compiled trees, anything else to the booster."""

    def __init__(self, booster: Any, trees: CompiledBooster, threads: int, last: dict | None = None) -> None:
        self.booster, self.trees, self.threads = booster, trees, threads
        # the last input and its matrix, shared by the model's estimators inside one
        # compiled_scoring block (the arms of an uplift model predict the same frame)
        self.last = last if last is not None else {}

    def _matrix(self, data: Any) -> np.ndarray | None:
        if self.last.get("data") is data:
            return self.last["X"]
        X = lightgbm_matrix(data)
        self.last.clear()
        self.last.update(data=data, X=X)
        return X

    def predict(self, data: Any, start_iteration: int = 0, num_iteration: int | None = None,
                raw_score: bool = False, pred_leaf: bool = False, pred_contrib: bool = False,
                **kwargs: Any) -> Any:
        plain = (start_iteration == 0 and num_iteration is None and not pred_leaf and not pred_contrib
                 and not any(kwargs.get(k) for k in _CHANGES_OUTPUT))
        X = self._matrix(data) if plain else None
        if X is None or X.shape[1] != self.trees.n_features or not len(X):
            return self.booster.predict(data, start_iteration=start_iteration, num_iteration=num_iteration,
                                        raw_score=raw_score, pred_leaf=pred_leaf, pred_contrib=pred_contrib, **kwargs)
        return self.trees.raw(X, self.threads) if raw_score else self.trees.predict(X, self.threads)

    def __getattr__(self, name: str) -> Any:
        if name in ("booster", "trees", "threads", "last"):
            raise AttributeError(name)
        return getattr(self.booster, name)


@contextmanager
def compiled_scoring(model: Any, threads: int) -> Iterator[int]:
    """Inside the block, every LightGBM estimator of ``model`` predicts through its compiled
    trees on ``threads`` threads (same results, see the module docstring); estimators whose
    booster cannot be compiled predict with LightGBM on ``threads`` threads. Yields how many
    estimators were compiled; everything is put back afterwards."""
    estimators = lgbm_estimators(model)
    saved = [(est, est.__dict__.get("_Booster"), est.n_jobs) for est in estimators]
    count = 0
    last: dict = {}
    try:
        for est, booster, _ in saved:
            est.n_jobs = int(threads)
            trees = compiled(booster) if booster is not None else None
            if trees is not None:
                est._Booster = _CompiledBooster(booster, trees, int(threads), last)
                count += 1
        yield count
    finally:
        last.clear()
        for est, booster, n_jobs in saved:
            est._Booster = booster
            est.n_jobs = n_jobs
