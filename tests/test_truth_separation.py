"""The ground truth of the synthetic world is only for simulating responses and oracle
measures: factor, training and campaign code never read it."""
from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

from tasks.core.config import PROJECT_ROOT, SyntheticDataConfig, from_conf
from tasks.data.synthetic.world import generate_world, write_world

# Modules that build factors, train models or calculate campaigns.
GUARDED = [
    # factors/docs.py only renders the catalogue's prose, which says the truth is never read.
    *sorted(p for p in (PROJECT_ROOT / "factors").rglob("*.py") if p.name != "docs.py"),
    *sorted((PROJECT_ROOT / "tasks" / "modelling").rglob("*.py")),
    *sorted((PROJECT_ROOT / "tasks" / "campaign").rglob("*.py")),
    PROJECT_ROOT / "tasks" / "data" / "datasets.py",
    PROJECT_ROOT / "tasks" / "data" / "table.py",
    PROJECT_ROOT / "tasks" / "data" / "engineered.py",
    PROJECT_ROOT / "flows" / "train.py",
    PROJECT_ROOT / "flows" / "campaign.py",
]


def _code_tokens(path: Path) -> list[str]:
    """Names and string literals of a module, without comments and docstrings."""
    source = path.read_text(encoding="utf-8")
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                docstrings.add(body[0].value.lineno)
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME or (tok.type == tokenize.STRING and tok.start[0] not in docstrings):
            out.append(tok.string)
    return out


@pytest.mark.parametrize("path", GUARDED, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_guarded_code_never_names_the_truth_table(path: Path):
    assert path.exists(), path
    hits = [t for t in _code_tokens(path) if "truth" in t.lower()]
    assert hits == [], f"{path} refers to the truth table: {hits[:5]}"


def test_factors_training_and_campaign_run_without_the_truth_file(tmp_path: Path):
    artifacts = tmp_path / "artifacts"
    cfg = from_conf(SyntheticDataConfig, "data/synthetic", n_clients=3000, seed=11, name="blind")
    out = artifacts / "data" / "blind"
    write_world(generate_world(cfg), out, cfg)
    hidden = tmp_path / "truth-hidden.parquet"
    (out / "truth.parquet").rename(hidden)

    common = [f"paths.artifacts={artifacts}", "data.name=blind"]
    train = subprocess.run(
        [sys.executable, "-m", "flows.train", *common, "model.approaches=[solo]", "model.cv_folds=2",
         "model.lgbm.n_estimators=30", "model.n_boot=20", "model.promote=always"],  # small world: maybe no signal
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert (artifacts / "models" / "synthetic_uplift" / "champion").exists()

    campaign = subprocess.run(
        [sys.executable, "-m", "flows.campaign", *common, "campaign.data=blind", "campaign.id=blind_run"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert campaign.returncode == 0, campaign.stderr[-3000:]
    assert (artifacts / "campaigns" / "blind_run" / "campaign.parquet").exists()
    assert not (out / "truth.parquet").exists()
