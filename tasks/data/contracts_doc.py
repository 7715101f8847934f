"""docs/data_contracts.md's tables block, generated from the contracts in tasks/core/contracts.py.

    python -c "from tasks.data.contracts_doc import update_contracts_doc; update_contracts_doc()"
"""
from __future__ import annotations

from pathlib import Path

from tasks.core.config import PROJECT_ROOT
from tasks.core.contracts import contract_markdown
from tasks.core.errors import DataValidationError
from tasks.core.io import atomic_write_text

CONTRACTS_BEGIN = "<!-- contracts:begin (generated from tasks.core.contracts.contract_markdown) -->"
CONTRACTS_END = "<!-- contracts:end -->"


def render_contracts_doc(text: str) -> str:
    """``text`` (docs/data_contracts.md) with the tables block replaced by the current contracts."""
    if CONTRACTS_BEGIN not in text or CONTRACTS_END not in text:
        raise DataValidationError("docs", None, f"markers {CONTRACTS_BEGIN!r} and {CONTRACTS_END!r} not found")
    head, rest = text.split(CONTRACTS_BEGIN, 1)
    _, tail = rest.split(CONTRACTS_END, 1)
    return f"{head}{CONTRACTS_BEGIN}\n\n{contract_markdown()}\n{CONTRACTS_END}{tail}"


def update_contracts_doc(path: str | Path | None = None) -> Path:
    """Regenerate the tables block of docs/data_contracts.md from tasks/core/contracts.py."""
    doc = Path(path) if path is not None else PROJECT_ROOT / "docs" / "data_contracts.md"
    return atomic_write_text(render_contracts_doc(doc.read_text(encoding="utf-8")), doc)
