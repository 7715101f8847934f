"""Scoring with the champion model, and swapping in a new champion while serving.

:class:`Scorer` wraps a registry :class:`~tasks.modelling.registry.LoadedModel`. For the common
models (LightGBM response models and scikit-uplift solo / two-model / class-transformation
models with LightGBM inside) it scores a float matrix straight through the LightGBM
boosters, skipping the per-call DataFrame work; the fast path is used only after it gave
the same scores as ``LoadedModel.predict`` on a probe sample at load time.

:class:`ChampionWatcher` checks the registry's champion pointer at most once per interval
and loads a new champion in a background thread; the new model replaces the old one in a
single assignment, so requests in flight finish on the model they started with. A version
whose checksum does not match is refused: the old one keeps serving and the refusal is kept
for /health.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from api.features import FeatureSchema, schema_from_metadata
from tasks.core.errors import UpliftError
from tasks.modelling.registry import CHAMPION_FILE, LoadedModel, ModelRegistry

log = logging.getLogger("uplift.api")


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _raw_booster(est: Any) -> Any | None:
    """The LightGBM Booster inside a fitted LGBMClassifier / LGBMRegressor, else None."""
    try:
        import lightgbm as lgb
    except ImportError:  # pragma: no cover - lightgbm is a dependency
        return None
    if isinstance(est, lgb.Booster):
        return est
    if isinstance(est, (lgb.LGBMClassifier, lgb.LGBMRegressor)) and getattr(est, "fitted_", False):
        if isinstance(est, lgb.LGBMClassifier) and getattr(est, "n_classes_", 2) != 2:
            return None
        return est.booster_
    return None


class _Single:
    """Booster.predict on one OpenMP thread.

    With LightGBM's default thread pool a one-row prediction costs ~10 ms on a busy 2-core
    machine (threads spin up and wait for a core) against ~0.4 ms on one thread; request-level
    concurrency is the server's job.
    """

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.booster.predict(X, num_threads=1)


def _booster(est: Any) -> "_Single | None":
    raw = _raw_booster(est)
    return _Single(raw) if raw is not None else None


def _fast_function(model: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """A numpy scoring function for known LightGBM-based model shapes, or None."""
    booster = _booster(model)
    est = getattr(model, "estimator", None)
    if booster is not None:  # a bare LightGBM model stored directly
        return lambda X: booster.predict(X)
    approach = getattr(model, "approach", None)
    if approach == "response":
        b = _booster(est)
        cal = getattr(model, "calibration", None)  # Platt scaling of a class-weighted model
        if b is None:
            return None
        return (lambda X: cal.apply(b.predict(X))) if cal is not None else (lambda X: b.predict(X))
    if approach == "solo":
        b = _booster(getattr(est, "estimator", None))
        if b is None or getattr(est, "method", "dummy") != "dummy":
            return None

        def solo(X: np.ndarray) -> np.ndarray:
            n = X.shape[0]
            both = np.empty((2 * n, X.shape[1] + 1), dtype=np.float64)
            both[:n, :-1] = X
            both[n:, :-1] = X
            both[:n, -1] = 1.0
            both[n:, -1] = 0.0
            p = b.predict(both)
            return p[:n] - p[n:]
        return solo
    if approach == "two_models":
        bt = _booster(getattr(est, "estimator_trmnt", None))
        bc = _booster(getattr(est, "estimator_ctrl", None))
        if bt is None or bc is None or getattr(est, "method", "vanilla") != "vanilla":
            return None
        return lambda X: bt.predict(X) - bc.predict(X)
    if approach == "class_transformation":
        b = _booster(getattr(est, "estimator", None))
        return (lambda X: 2.0 * b.predict(X) - 1.0) if b is not None else None
    if approach == "x_learner" and isinstance(est, dict):
        b0, b1, g = _booster(est.get("tau0")), _booster(est.get("tau1")), est.get("g")
        if b0 is None or b1 is None or g is None:
            return None
        return lambda X: g * b0.predict(X) + (1.0 - g) * b1.predict(X)
    if approach == "dr_learner" and isinstance(est, dict):
        b = _booster(est.get("tau"))
        return (lambda X: b.predict(X)) if b is not None else None
    return None


def probe_matrix(metadata: dict, features: tuple[str, ...], n: int = 64, seed: int = 0) -> np.ndarray:
    """Rows to compare fast and reference scoring: reference samples where known, else spread values."""
    rng = np.random.default_rng(seed)
    ref = metadata.get("reference") or {}
    cols = []
    for f in features:
        sample = (ref.get(f) or {}).get("sample") if isinstance(ref.get(f), dict) else None
        vals = None
        if sample:
            try:
                vals = np.asarray(sample, dtype=float)
                vals = vals[np.isfinite(vals)]
            except (TypeError, ValueError):
                vals = None
        if vals is None or len(vals) == 0:
            vals = np.concatenate([np.arange(0.0, 8.0), rng.normal(0, 50, 16), [0.5, 1.0, 100.0, 1000.0]])
        cols.append(rng.choice(vals, size=n))
    return np.column_stack(cols) if cols else np.zeros((n, 0))


class Scorer:
    """Scores float matrices (numeric schemas) or column dicts with one loaded model."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.schema: FeatureSchema = schema_from_metadata(loaded.metadata)
        self._lock = threading.Lock()  # scikit-uplift models keep state while predicting
        self.fast: Callable[[np.ndarray], np.ndarray] | None = None
        self.path = "frame"
        if self.schema.numeric and self.schema.features:
            self._choose_fast_path()

    def _frame(self, values: np.ndarray | dict[str, list[Any]]) -> pd.DataFrame:
        if isinstance(values, np.ndarray):
            frame = pd.DataFrame(values, columns=list(self.schema.features))
            dtypes = self.loaded.metadata.get("feature_dtypes") or {}
            casts = {f: dtypes[f] for f in self.schema.features
                     if self.schema.kinds[f] in ("int", "bool") and f in dtypes}
            try:
                return frame.astype(casts) if casts else frame
            except (TypeError, ValueError):  # e.g. a missing value in an integer column
                return frame
        frame = pd.DataFrame(values, columns=list(self.schema.features))
        for f, kind in self.schema.kinds.items():
            if kind == "category":
                frame[f] = frame[f].astype("category")
        return frame

    def _reference(self, values: np.ndarray | dict[str, list[Any]]) -> np.ndarray:
        with self._lock:
            return np.asarray(self.loaded.predict(self._frame(values)), dtype=np.float64)

    def _choose_fast_path(self) -> None:
        fn = _fast_function(self.loaded.model)
        if fn is None:
            return
        probe = probe_matrix(self.loaded.metadata, self.schema.features)
        try:
            expected = self._reference(probe)
            got = np.asarray(fn(probe), dtype=np.float64)
            single = np.array([fn(probe[i:i + 1])[0] for i in range(4)])
        except Exception as exc:  # any failure: keep the reference path
            log.info("fast scoring path unavailable for %s %s: %s", self.loaded.name, self.loaded.version, exc)
            return
        if got.shape == expected.shape and np.allclose(got, expected, rtol=1e-9, atol=1e-12) \
                and np.allclose(single, expected[:4], rtol=1e-9, atol=1e-12):
            self.fast = fn
            self.path = "lightgbm"
        else:
            log.warning("fast scoring path of %s %s disagrees with the model; using the model's predict",
                        self.loaded.name, self.loaded.version)

    def score(self, values: np.ndarray | dict[str, list[Any]]) -> np.ndarray:
        """Scores for validated values (see :func:`api.features.rows_to_values`)."""
        if isinstance(values, np.ndarray) and values.shape[0] == 0:
            return np.zeros(0)
        if self.fast is not None and isinstance(values, np.ndarray):
            return np.asarray(self.fast(values), dtype=np.float64)
        return self._reference(values)


@dataclass
class ServedModel:
    """The model currently answering requests."""

    loaded: LoadedModel
    scorer: Scorer
    loaded_at: str = field(default_factory=_now_iso)

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def version(self) -> str:
        return self.loaded.version


def _pointer_signature(path: Path) -> tuple | None:
    """(content, mtime_ns, size) of the champion file, or None when it is absent."""
    try:
        st = os.stat(path)
        return (path.read_text(encoding="utf-8").strip(), st.st_mtime_ns, st.st_size)
    except OSError:
        return None


class ChampionWatcher:
    """Keeps the champion of one model name loaded, reloading it when the pointer changes."""

    def __init__(self, registry: ModelRegistry, name: str, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.name = name
        self.interval = interval
        self.clock = clock
        self.current: ServedModel | None = None
        self.refusal: dict | None = None
        self.error: str | None = None
        self.reloads = 0
        self._seen: tuple | None = None
        self._last_check = -float("inf")
        self._loading = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def pointer(self) -> Path:
        return self.registry.model_dir(self.name) / CHAMPION_FILE

    def _load(self, signature: tuple | None) -> None:
        version = signature[0] if signature else None
        try:
            loaded = self.registry.load(self.name, version or None)
            served = ServedModel(loaded, Scorer(loaded))
        except UpliftError as exc:
            msg = str(exc)
            if version:
                self.refusal = {"version": version, "reason": msg, "at": _now_iso()}
            self.error = msg
            log.error("champion %s %s not loaded: %s", self.name, version, msg)
            return
        except Exception as exc:  # a broken pickle must not take the server down
            msg = f"model {self.name} {version}: could not load: {type(exc).__name__}: {exc}"
            self.refusal = {"version": version, "reason": msg, "at": _now_iso()}
            self.error = msg
            log.exception("champion %s %s not loaded", self.name, version)
            return
        old = self.current.version if self.current else None
        self.current = served  # one assignment: in-flight requests keep their reference
        self.error = None
        self.refusal = None
        self.reloads += 1
        log.info("champion %s now %s (was %s, scoring path %s)", self.name, served.version, old, served.scorer.path)

    def reload_now(self) -> None:
        """Check the pointer and load a changed champion synchronously (startup, tests)."""
        with self._loading:
            self._last_check = self.clock()
            sig = _pointer_signature(self.pointer)
            if sig is not None and (sig != self._seen or self.current is None and self.refusal is None):
                self._seen = sig
                if self.current is None or sig[0] != self.current.version:
                    self._load(sig)
            elif sig is None and self.current is None:
                self._seen = None
                self._load(None)  # records the "no champion" error with its hint

    def poll(self) -> None:
        """Cheap per-request check: at most once per interval, reload in the background."""
        now = self.clock()
        if now - self._last_check < self.interval:
            return
        self._last_check = now
        sig = _pointer_signature(self.pointer)
        if sig == self._seen or sig is None:
            return
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._background, args=(sig,), daemon=True,
                                        name="champion-reload")
        self._thread.start()

    def _background(self, sig: tuple) -> None:
        with self._loading:
            if sig == self._seen:
                return
            self._seen = sig
            if self.current is None or sig[0] != self.current.version:
                self._load(sig)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait for a background reload to finish (tests and shutdown)."""
        t = self._thread
        if t is not None:
            t.join(timeout)
