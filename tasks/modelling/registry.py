"""Model registry: versioned models on disk with metadata, a checksum and a champion pointer.

Layout under the registry root (``<artifacts>/models``)::

    <name>/v0001/model.joblib     the fitted model (anything with ``predict(X) -> ndarray``)
    <name>/v0001/metadata.json    metrics, features, fingerprint, reference, sha256, ...
    <name>/v0001/report.md, *.png files saved beside the model
    <name>/champion               text file holding the champion's version

A version folder is assembled in a hidden temporary folder and renamed into place, so a
reader never sees a half-written version; a version, once written, is never changed.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import joblib
import numpy as np
import pandas as pd

from tasks.core.errors import DataValidationError, NotFoundError, StateError
from tasks.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json, sha256_file

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
CHAMPION_FILE = "champion"
_VERSION_RE = re.compile(r"^v(\d{4,})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def version_label(number: int) -> str:
    """``3 -> 'v0003'``."""
    return f"v{number:04d}"


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise NotFoundError(
            f"model name {name!r} is not valid: use letters, digits, '_', '-', '.' "
            "(e.g. synthetic_uplift)"
        )


@dataclass
class LoadedModel:
    """A registry version ready to score clients.

    ``predict`` returns the predicted uplift for uplift models and the response probability
    for response models. It selects the model's features from ``X`` (extra columns are
    ignored) and raises :class:`DataValidationError` naming a missing feature.
    """

    name: str
    version: str
    model: Any
    metadata: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return str(self.metadata.get("kind", "uplift"))

    @property
    def features(self) -> list[str]:
        return list(self.metadata.get("features", []))

    @property
    def factor_set(self) -> str | None:
        return self.metadata.get("factor_set")

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Score ``X`` (one row per client); see the class docstring."""
        missing = [f for f in self.features if f not in X.columns]
        if missing:
            raise DataValidationError(
                "features", missing[0],
                f"{len(missing)} feature(s) the model {self.name} {self.version} needs are missing "
                f"from the input: {missing[:10]}",
            )
        scores = np.asarray(self.model.predict(X[self.features]), dtype=float)
        return scores

    @property
    def calibration(self) -> Any:
        """The uplift model's calibration (``apply``, ``score_cutoff``), None without one
        (response models, whose ``predict`` is already a probability, and older versions)."""
        return getattr(self.model, "calibration", None) if self.kind == "uplift" else None

    def calibrated(self, scores: np.ndarray) -> np.ndarray:
        """Raw scores of :meth:`predict` on the scale money decisions multiply: calibrated
        uplift (probability units) for an uplift model; unchanged otherwise."""
        cal = self.calibration
        return np.asarray(scores, dtype=float) if cal is None else np.asarray(cal.apply(scores), dtype=float)

    def predict_uplift_calibrated(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated uplift of ``X`` (:meth:`calibrated` of :meth:`predict`)."""
        return self.calibrated(self.predict(X))


class ModelRegistry:
    """Versioned model store rooted at ``root`` (usually ``<artifacts>/models``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ queries
    def model_dir(self, name: str) -> Path:
        """Folder holding every version of model ``name``."""
        _check_name(name)
        return self.root / name

    def version_dir(self, name: str, version: str) -> Path:
        """Folder of one version (not checked for existence)."""
        return self.model_dir(name) / version

    def names(self) -> list[str]:
        """Every model name with at least one version."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.versions(p.name))

    def versions(self, name: str) -> list[str]:
        """Versions of ``name``, oldest first (empty when the model does not exist)."""
        d = self.model_dir(name)
        if not d.is_dir():
            return []
        found = [(int(m.group(1)), p.name) for p in d.iterdir()
                 if p.is_dir() and (m := _VERSION_RE.match(p.name)) and (p / METADATA_FILE).exists()]
        return [v for _, v in sorted(found)]

    def champion(self, name: str) -> str | None:
        """The champion version of ``name`` or None when none was promoted."""
        path = self.model_dir(name) / CHAMPION_FILE
        if not path.exists():
            return None
        version = path.read_text(encoding="utf-8").strip()
        return version or None

    def metadata(self, name: str, version: str | None = None) -> dict:
        """metadata.json of a version (None = champion)."""
        version = self._resolve(name, version)
        return read_json(self.version_dir(name, version) / METADATA_FILE)

    # ------------------------------------------------------------------ changes
    def save(
        self,
        name: str,
        model: Any,
        metadata: Mapping[str, Any],
        files: Mapping[str, bytes | str | Path] | None = None,
    ) -> str:
        """Store ``model`` as the next version of ``name`` and return the version label.

        ``files`` maps a file name inside the version folder to its content: ``bytes``,
        ``str`` (UTF-8 text) or a ``Path`` to copy. The registry adds ``name``, ``version``,
        ``created_at``, ``model_file`` and ``model_sha256`` to the metadata.
        """
        mdir = self.model_dir(name)
        mdir.mkdir(parents=True, exist_ok=True)
        tmp = mdir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            model_path = tmp / MODEL_FILE
            joblib.dump(model, model_path)
            with open(model_path, "rb") as fh:
                os.fsync(fh.fileno())
            for fname, content in (files or {}).items():
                if "/" in fname or fname in (MODEL_FILE, METADATA_FILE) or fname.startswith("."):
                    raise StateError(f"model {name}: cannot save an extra file named {fname!r}")
                if isinstance(content, bytes):
                    atomic_write_bytes(content, tmp / fname)
                elif isinstance(content, Path):
                    atomic_write_bytes(content.read_bytes(), tmp / fname)
                else:
                    atomic_write_text(str(content), tmp / fname)
            meta = dict(metadata)
            meta.update(
                name=name,
                created_at=meta.get("created_at") or _dt.datetime.now(_dt.timezone.utc).isoformat(),
                model_file=MODEL_FILE,
                model_sha256=sha256_file(model_path),
            )
            # A concurrent save may take the same number: the rename then fails and we retry.
            for _ in range(1000):
                existing = [int(_VERSION_RE.match(p.name).group(1)) for p in mdir.iterdir()
                            if p.is_dir() and _VERSION_RE.match(p.name)]
                version = version_label(max(existing, default=0) + 1)
                meta["version"] = version
                atomic_write_json(meta, tmp / METADATA_FILE)
                try:
                    os.rename(tmp, mdir / version)
                    return version
                except OSError:
                    if not (mdir / version).exists():
                        raise
            raise StateError(f"model {name}: could not allocate a new version folder in {mdir}")
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def promote(self, name: str, version: str) -> None:
        """Make ``version`` the champion of ``name`` (NotFoundError when it does not exist)."""
        if version not in self.versions(name):
            raise NotFoundError(
                f"model {name}: version {version!r} not found in {self.model_dir(name)}; "
                f"known versions: {self.versions(name) or 'none'}"
            )
        atomic_write_text(version + "\n", self.model_dir(name) / CHAMPION_FILE)

    # ------------------------------------------------------------------ loading
    def _resolve(self, name: str, version: str | None) -> str:
        if version in (None, "", "champion"):
            champ = self.champion(name)
            if champ is None:
                hint = (f"train one with `python -m flows.train model.name={name}`"
                        if not self.versions(name) else
                        f"promote one of {self.versions(name)} with "
                        f"`python -m flows.train +action=promote model.name={name} model.version=<version>`")
                raise NotFoundError(f"model {name}: no champion in {self.model_dir(name)}; {hint}")
            version = champ
        vdir = self.version_dir(name, version)
        if vdir.is_dir() and not (vdir / METADATA_FILE).exists():
            raise NotFoundError(
                f"model {name}: version {version!r} in {vdir} has no {METADATA_FILE} (deleted, or a save "
                f"that did not finish), so it can be neither loaded nor verified; registered versions: "
                f"{self.versions(name) or 'none'}; restore the file, promote another version with "
                f"`python -m flows.train +action=promote model.name={name} model.version=<version>`, or retrain"
            )
        if not (vdir / METADATA_FILE).exists():
            raise NotFoundError(
                f"model {name}: version {version!r} not found in {self.model_dir(name)}; "
                f"known versions: {self.versions(name) or 'none'} "
                f"(train one with `python -m flows.train model.name={name}`)"
            )
        return version

    def load(self, name: str, version: str | None = None) -> LoadedModel:
        """Load a version (None or ``"champion"`` = the champion) after verifying its checksum."""
        version = self._resolve(name, version)
        vdir = self.version_dir(name, version)
        meta = read_json(vdir / METADATA_FILE)
        model_path = vdir / meta.get("model_file", MODEL_FILE)
        if not model_path.exists():
            raise StateError(f"model {name} {version}: model file {model_path} is missing")
        actual = sha256_file(model_path)
        if actual != meta.get("model_sha256"):
            raise StateError(
                f"model {name} {version}: checksum mismatch for {model_path} "
                f"(metadata {str(meta.get('model_sha256'))[:12]}..., file {actual[:12]}...); "
                "the file was changed after registration, refusing to load it"
            )
        return LoadedModel(name=name, version=version, model=joblib.load(model_path), metadata=meta)
