"""Errors the product raises for bad input or bad configuration.

Every error a user can cause derives from :class:`UpliftError`. The command-line edge
(``flows._cli``) turns one into a single clear message and a non-zero exit code, so the
code below the edge raises and never prints.
"""
from __future__ import annotations

from typing import Any, Sequence


class UpliftError(Exception):
    """Base class of every error caused by input, configuration or state the user controls."""


class ConfigError(UpliftError):
    """A configuration value is missing, mistyped or inconsistent."""


class DataValidationError(UpliftError):
    """A table breaks its data contract.

    The message names the table, the column and a few offending rows, e.g.
    ``table 'purchases', column 'timestamp': 3 row(s) at or after the as-of date 2026-01-01;
    e.g. rows [4, 17, 90]: ...``.
    """

    def __init__(
        self,
        table: str,
        column: str | None,
        problem: str,
        rows: Sequence[Any] | None = None,
        examples: str | None = None,
    ) -> None:
        self.table = table
        self.column = column
        self.problem = problem
        # numpy scalars would print as np.int64(7); users read plain numbers
        self.rows = [r.item() if hasattr(r, "item") else r for r in rows] if rows is not None else []
        where = f"table '{table}'" + (f", column '{column}'" if column else "")
        msg = f"{where}: {problem}"
        if self.rows:
            msg += f"; e.g. rows {self.rows[:5]}"
        if examples:
            msg += f":\n{examples}"
        super().__init__(msg)


class NotFoundError(UpliftError):
    """A named thing (dataset, campaign, model version, client) does not exist."""


class StateError(UpliftError):
    """The request conflicts with the stored state (a lock is held, a frozen campaign differs, ...)."""
