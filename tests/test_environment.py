"""The installed packages are exactly the ones constraints.txt names, at its versions.

make demo, make test and CI install with ``-c constraints.txt``; this test notices an install
that drifted (a package upgraded by hand, a constraint that no longer applies)."""
from __future__ import annotations

import re
from importlib import metadata

from tasks.core.config import PROJECT_ROOT


def _pins() -> dict[str, str]:
    pins = {}
    for line in (PROJECT_ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_constraints_pin_every_dependency_of_the_project():
    pins = _pins()
    reqs = metadata.requires("uplift-campaigns") or []
    for req in reqs:
        name = re.split(r"[\s\[<>=!;~]", req, maxsplit=1)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in pins, f"{name} is not in constraints.txt"
    assert pins["sqlalchemy"].startswith("2.0."), "Prefect's scheduler needs SQLAlchemy 2.0.x"


def test_installed_versions_match_constraints():
    pins = _pins()
    wrong = {}
    for dist in metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        if name in pins and dist.version != pins[name]:
            wrong[name] = (dist.version, pins[name])
    assert wrong == {}, f"installed (version, pinned): {wrong}; reinstall with make install-dev"
