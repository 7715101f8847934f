"""The walls between the project's parts, checked on every module's imports.

The layers, bottom up:

- ``tasks/core``: the foundation (errors, io, locks, config, contracts, layout, report
  helpers). It imports nothing else of the project.
- ``factors/``: the factor library. It imports only itself and ``tasks/core``.
- ``tasks/<area>``: the logic of each area (data, analytics, modelling, campaign, evaluation,
  monitoring, profile). It may import the foundation, the factor library and other areas,
  never ``flows/`` or ``api/``.
- ``api/``: the scoring service. It imports the foundation, the model registry, the campaign's
  config, offer policy and stage table (where the factor checkpoint is), the prediction log
  and the factor library, nothing else; only benchmarks and tests import it.
- ``flows/``: the Prefect flows and their command-line edges: wiring only, no other part
  imports them (but the deployments entry points, which are flows too).

Imports are read with :mod:`ast` (module-level and function-level alike), so a lazy import
inside a function breaks a wall just as a top-level one does.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tasks.core.config import PROJECT_ROOT

PACKAGES = ("tasks", "factors", "flows", "api")

# What api/ may import from tasks/ (module prefixes).
# The prediction log is written by the service; the stage table tells where a campaign's factor
# checkpoint is (the service scores clients by id from it).
API_ALLOWED_TASKS = ("tasks.core", "tasks.modelling.registry", "tasks.campaign.policy", "tasks.campaign.config",
                     "tasks.campaign.stages", "tasks.monitoring.prediction_log")


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    rel = path.relative_to(PROJECT_ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) of every import of a project package in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((node.lineno, alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if node.module is None or mod in PACKAGES or mod.count(".") == 0:
                # ``from tasks import x`` / ``from . import x``: the names are modules
                out.extend((node.lineno, f"{mod}.{a.name}") for a in node.names)
            else:
                out.append((node.lineno, mod))
    return [(line, m) for line, m in out if m.split(".")[0] in PACKAGES]


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def wall_breaches(path: Path) -> list[str]:
    """The imports of ``path`` that break a wall, as readable lines."""
    me = _module_name(path)
    bad = []
    for line, mod in project_imports(path):
        reason = None
        if _within(me, ("tasks.core",)) and not _within(mod, ("tasks.core",)):
            reason = "tasks/core imports nothing else of the project"
        elif _within(me, ("factors",)) and not _within(mod, ("factors", "tasks.core")):
            reason = "factors/ imports only factors/ and tasks/core"
        elif _within(me, ("tasks",)) and _within(mod, ("flows", "api")):
            reason = "tasks/ never imports flows/ or api/"
        elif _within(me, ("api",)) and _within(mod, ("tasks",)) and not _within(mod, API_ALLOWED_TASKS):
            reason = f"api/ imports only {', '.join(API_ALLOWED_TASKS)} of tasks/"
        elif _within(me, ("api",)) and _within(mod, ("flows",)):
            reason = "api/ never imports flows/"
        elif _within(me, ("tasks", "factors", "flows")) and _within(mod, ("api",)):
            reason = "only benchmarks and tests import api/"
        elif _within(me, ("tasks", "factors")) and _within(mod, ("flows",)):
            reason = "only flows import flows"
        if reason:
            bad.append(f"{path.relative_to(PROJECT_ROOT)}:{line} imports {mod}: {reason}")
    return bad


SOURCES = [p for pkg in PACKAGES for p in _modules(PROJECT_ROOT / pkg)]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_module_keeps_the_walls(path: Path):
    assert wall_breaches(path) == []


LOGIC = [p for p in SOURCES if p.relative_to(PROJECT_ROOT).parts[0] in ("tasks", "factors")]


@pytest.mark.parametrize("path", LOGIC, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_logic_never_imports_prefect_or_hydra(path: Path):
    """Prefect and Hydra stay at the edges: the Prefect tasks and flows live in flows/. The one
    bridge is tasks/core/config.py, whose compose_config lets tests and benchmarks compose conf/
    as the command line does."""
    if path == PROJECT_ROOT / "tasks" / "core" / "config.py":
        pytest.skip("the bridge from Hydra's config tree")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level]
    edge = sorted({m for m in names if m.split(".")[0] in ("prefect", "prefect_dask", "hydra")})
    assert edge == [], f"{path.relative_to(PROJECT_ROOT)} imports {edge}; keep Prefect and Hydra in flows/"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_no_import_error_fallbacks(path: Path):
    """An ``except ImportError`` around a project import hides a circle; there are none."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            caught = [h for h in node.handlers if h.type is not None
                      and "ImportError" in ast.unparse(h.type)]
            inner = [n for stmt in node.body for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom))]
            project = [n for n in inner if (getattr(n, "module", None) or (n.names[0].name if n.names else "")).split(".")[0] in PACKAGES]
            assert not (caught and project), f"{path}:{node.lineno} guards a project import with except ImportError"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_module_is_at_most_600_lines(path: Path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= 600, f"{path.relative_to(PROJECT_ROOT)} has {n} lines; split it by concern"


def test_tasks_is_cut_into_areas():
    """tasks/ holds area subpackages only, each a package."""
    loose = [p.name for p in (PROJECT_ROOT / "tasks").glob("*.py") if p.name != "__init__.py"]
    assert loose == [], f"modules directly under tasks/: {loose}; put each in its area"
    areas = {p.name for p in (PROJECT_ROOT / "tasks").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert {"core", "data", "analytics", "modelling", "campaign", "evaluation", "monitoring", "profile"} <= areas
    for area in areas:
        assert (PROJECT_ROOT / "tasks" / area / "__init__.py").exists(), area


# --------------------------------------------------------------------------- the checker itself

def _write(tmp_root: Path, rel: str, text: str) -> Path:
    p = tmp_root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


@pytest.mark.parametrize("rel, source, broken", [
    ("tasks/core/x.py", "from tasks.campaign import run\n", True),
    ("tasks/core/x.py", "from tasks.core.errors import UpliftError\n", False),
    ("tasks/core/x.py", "def f():\n    import factors\n", True),
    ("factors/x.py", "from tasks.modelling.registry import ModelRegistry\n", True),
    ("factors/x.py", "from tasks.core.contracts import CONTRACTS\n", False),
    ("tasks/campaign/x.py", "from flows._cli import run_cli\n", True),
    ("tasks/campaign/x.py", "from factors import compute_factors\n", False),
    ("tasks/campaign/x.py", "import api.app\n", True),
    ("api/x.py", "from tasks.modelling.training import train_uplift\n", True),
    ("api/x.py", "from tasks.modelling.registry import ModelRegistry\n", False),
    ("api/x.py", "from tasks import evaluation\n", True),
    ("tasks/data/x.py", "from . import tables\n", False),
    ("tasks/core/x.py", "from .. import campaign\n", True),
])
def test_checker_sees_broken_walls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rel: str, source: str, broken: bool):
    monkeypatch.setitem(globals(), "PROJECT_ROOT", tmp_path)
    path = _write(tmp_path, rel, source)
    assert bool(wall_breaches(path)) is broken
