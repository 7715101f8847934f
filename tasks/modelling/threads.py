"""How many threads LightGBM may use to score, and setting them on a fitted model.

Training keeps ``n_jobs: 1`` (conf/model): boosting synchronises its threads at every split
and spins badly when the machine's cores are shared. Prediction is one parallel loop over
rows with no synchronisation inside, and every row's score is computed the same way on any
thread, so the scores are identical whatever the thread count (benchmarks/score_threads.py
measures it). :func:`free_cores` sizes the thread count from the cores this process may run
on and the load the other processes put on them.
"""
from __future__ import annotations

import os
import weakref
from contextlib import contextmanager
from typing import Any, Iterator

# the estimators found in a model, per model object (the walk visits every attribute, list
# and dict of the model, a fraction of a second for a large one; a campaign asks once per
# partition)
_found: dict[int, tuple[Any, list[Any]]] = {}


def free_cores(cores: int | None = None, load: float | None = None, own: float = 1.0) -> int:
    """Cores this process can use now: the CPUs of its affinity mask minus the one-minute
    load average of the other processes (``load`` minus ``own``, the caller's own running
    thread), rounded to the nearest whole core; at least 1, at most ``cores``."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    others = max(0.0, float(load) - float(own))
    return max(1, min(int(cores), int(cores - others + 0.5)))


def lgbm_estimators(model: Any) -> list[Any]:
    """Every LightGBM scikit-learn estimator inside a fitted model (members, arms, stages),
    found by walking its attributes, dicts and lists; remembered while the model object lives
    (a fitted model's members do not change)."""
    key = id(model)
    hit = _found.get(key)
    if hit is not None and hit[0]() is model:
        return list(hit[1])
    found = _walk_estimators(model)
    if not found or any(est.__dict__.get("_Booster") is None for est in found):
        return found  # not fitted (yet): its members may still change
    try:
        # the dict is bound now: at interpreter exit the module's globals may be gone first
        ref = weakref.ref(model, lambda _r, key=key, found=_found: found.pop(key, None))
    except TypeError:  # not weak-referenceable: not remembered
        return found
    _found[key] = (ref, found)
    return list(found)


def _walk_estimators(model: Any) -> list[Any]:
    from lightgbm import LGBMModel

    found: list[Any] = []
    seen: set[int] = set()
    stack = [model]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float, bool)):
            continue
        seen.add(id(obj))
        if isinstance(obj, LGBMModel):
            found.append(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple)):
            stack.extend(obj)
        elif hasattr(obj, "__dict__") and type(obj).__module__.split(".")[0] in ("tasks", "sklift", "sklearn"):
            stack.extend(vars(obj).values())
    return found


@contextmanager
def lgbm_threads(model: Any, threads: int) -> Iterator[int]:
    """Inside the block, every LightGBM estimator of ``model`` predicts on ``threads``
    threads (their ``n_jobs``); the previous settings come back afterwards."""
    estimators = lgbm_estimators(model)
    before = [est.n_jobs for est in estimators]
    try:
        for est in estimators:
            est.n_jobs = int(threads)
        yield len(estimators)
    finally:
        for est, n in zip(estimators, before):
            est.n_jobs = n
