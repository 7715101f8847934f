"""Benchmark: ways of scoring a large factor table with a LightGBM uplift model.

    python benchmarks/score_threads.py [--rows 1000000] [--features 90] [--approach two_models]

Builds a synthetic factor table (``--rows`` x ``--features`` float64 columns, a few NaN),
fits an uplift model of ``--approach`` with conf/model/uplift.yaml's LightGBM settings on
50,000 of its rows (random treatment and response, untimed), then times each way of scoring
all rows and checks each gives exactly the scores of today's way (one thread, one call on
the DataFrame):

- ``df_1thread``: ``model.predict(frame)``, LightGBM on one thread (today's score stage);
- ``df_1thread_8parts``: the same in 8 partitions (per-call overheads);
- ``df_threads_<k>``: ``model.predict(frame)`` with the model's LightGBM estimators on k threads;
- ``df_threads_2_8parts``: the same in 8 partitions;
- ``numpy_booster_2``: the boosters called directly on one float64 numpy array with
  ``num_threads=2`` and ``predict_disable_shape_check`` (two_models only; the lower bound
  of the pandas and scikit-uplift overhead);
- ``joblib_2proc``: two worker processes (loky) each scoring half the rows on one thread;
- ``compiled_<k>``: ``model.predict(frame)`` inside ``compiled_scoring(model, k)``
  (tasks/modelling/treescore.py: the trees evaluated column-wise with numpy on k threads);
  ``compiled_free_cores`` with k = ``free_cores()`` at the start (what the score stage does).

Prints one line per way (seconds, microseconds per row, max abs difference to today's),
the load average before and after, and last one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from tasks.core.config import compose_config  # noqa: E402
from tasks.modelling.models import UpliftModel  # noqa: E402
from tasks.modelling.threads import free_cores, lgbm_threads  # noqa: E402
from tasks.modelling.treescore import compiled_scoring  # noqa: E402


def synthetic_table(rows: int, features: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {"client_id": np.arange(1, rows + 1, dtype=np.int64)}
    for j in range(features):
        col = rng.standard_normal(rows) * (1 + j % 7) + (j % 3)
        if j % 10 == 0:
            col[rng.random(rows) < 0.05] = np.nan
        data[f"f{j:02d}"] = col
    return pd.DataFrame(data)


def fit_model(table: pd.DataFrame, approach: str, seed: int = 0) -> UpliftModel:
    rng = np.random.default_rng(seed + 1)
    train = table.drop(columns="client_id").iloc[:50_000]
    lin = train.iloc[:, 0].fillna(0).to_numpy() * 0.3 + train.iloc[:, 1].to_numpy() * 0.2
    t = (rng.random(len(train)) < 0.5).astype(int)
    p = 1 / (1 + np.exp(-(-2.5 + lin + t * (0.3 * np.tanh(train.iloc[:, 2].to_numpy())))))
    y = (rng.random(len(train)) < p).astype(int)
    lgbm = dict(compose_config([]).model.lgbm)
    return UpliftModel(approach, lgbm, seed).fit(train, t, y)


def timed(fn) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, np.asarray(out, dtype="float64")


def in_parts(model, frame: pd.DataFrame, parts: int) -> np.ndarray:
    bounds = np.linspace(0, len(frame), parts + 1).astype(int)
    return np.concatenate([model.predict(frame.iloc[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])


def _score_half(model, frame):
    with lgbm_threads(model, 1):
        return model.predict(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=90)
    parser.add_argument("--approach", default="two_models")
    parser.add_argument("--only", nargs="*", help="measure only these ways (df_1thread, the reference, always runs)")
    args = parser.parse_args()

    table = synthetic_table(args.rows, args.features)
    model = fit_model(table, args.approach)
    frame = table.drop(columns="client_id")
    cores = len(os.sched_getaffinity(0))
    print(f"{args.rows:,} rows x {args.features} features, {args.approach}, {cores} cores; "
          f"load average {os.getloadavg()}", flush=True)
    load_before = os.getloadavg()

    ways: dict = {}
    ways["df_1thread"] = lambda: _score_half(model, frame)
    ways["df_1thread_8parts"] = lambda: _in_threads(model, 1, lambda: in_parts(model, frame, 8))
    for k in sorted({2, cores}):
        ways[f"df_threads_{k}"] = (lambda k=k: _in_threads(model, k, lambda: model.predict(frame)))
    ways["df_threads_2_8parts"] = lambda: _in_threads(model, 2, lambda: in_parts(model, frame, 8))
    if args.approach == "two_models":
        est = model.estimator
        def raw() -> np.ndarray:
            X = frame.to_numpy(dtype=np.float64)
            kw = {"num_threads": 2, "predict_disable_shape_check": True}
            return (est.estimator_trmnt.booster_.predict(X, **kw) - est.estimator_ctrl.booster_.predict(X, **kw))
        ways["numpy_booster_2"] = raw

    def two_procs() -> np.ndarray:
        from joblib import Parallel, delayed
        half = len(frame) // 2
        parts = Parallel(n_jobs=2, backend="loky")(
            delayed(_score_half)(model, frame.iloc[a:b]) for a, b in ((0, half), (half, len(frame))))
        return np.concatenate(parts)
    ways["joblib_2proc"] = two_procs

    def compiled(threads: int, parts: int = 1):
        def run() -> np.ndarray:
            with compiled_scoring(model, threads):
                return in_parts(model, frame, parts) if parts > 1 else model.predict(frame)
        return run
    ways["compiled_1thread"] = compiled(1)
    ways["compiled_2threads"] = compiled(2)
    ways["compiled_2threads_8parts"] = compiled(2, 8)
    ways["compiled_free_cores"] = compiled(free_cores())

    results, ref = {}, None
    for name, fn in ways.items():
        if args.only and name != "df_1thread" and name not in args.only:
            continue
        seconds, scores = timed(fn)
        if ref is None:
            ref = scores
        diff = float(np.max(np.abs(scores - ref)))
        results[name] = {"seconds": round(seconds, 3), "us_per_row": round(1e6 * seconds / args.rows, 2),
                         "max_abs_diff": diff, "load_1m": round(os.getloadavg()[0], 2)}
        print(f"{name:22s} {seconds:7.2f} s  {1e6 * seconds / args.rows:6.2f} us/row  "
              f"max |diff| {diff:.3g}  load {os.getloadavg()[0]:.2f}", flush=True)
    print(json.dumps({"benchmark": "score_threads", "rows": args.rows, "features": args.features,
                      "approach": args.approach, "cores": cores, "results": results,
                      "loadavg_before": [round(x, 2) for x in load_before],
                      "loadavg_after": [round(x, 2) for x in os.getloadavg()]}))


def _in_threads(model, k: int, fn):
    with lgbm_threads(model, k):
        return fn()


if __name__ == "__main__":
    main()
