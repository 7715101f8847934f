"""The declared factor: what it reads, how it is aggregated, its type and its default.

A factor is data, not code: a :class:`Factor` names its source table, a SQL expression
(DuckDB dialect) and an optional window, and the engine (:mod:`factors.engine`) compiles
every requested factor into one query. Three kinds exist:

``aggregate``
    ``sql`` is an aggregate expression over the rows of one event table (``purchases`` or
    ``messages``) of one client, e.g. ``sum(amount)`` or
    ``count(*) FILTER (WHERE channel = 'online')``. Only events strictly before the as-of
    date are seen; with ``window=N`` only events with ``as_of - N days <= timestamp < as_of``.
``profile``
    ``sql`` is a scalar expression over the client's row of ``clients``, e.g. ``age``.
``derived``
    ``sql`` is a scalar expression over other factors named in ``inputs`` (after their
    defaults are applied), e.g. a ratio or a trend.

In every ``sql`` the placeholder ``{as_of}`` stands for the as-of timestamp literal.
A result that is NULL (no events, a division by zero written as ``x / NULLIF(y, 0)``)
becomes the factor's ``default``.
"""
from __future__ import annotations

from dataclasses import dataclass

KINDS = ("aggregate", "profile", "derived")
DTYPES = ("float64", "int64", "int8")
EVENT_TABLES = ("purchases", "messages")
PROFILE_TABLE = "clients"


@dataclass(frozen=True)
class Factor:
    """One declared client factor.

    Attributes:
        name: column name of the factor, ``[a-z0-9_]`` and starting with a letter.
        description: one sentence a marketing analyst understands.
        kind: ``aggregate``, ``profile`` or ``derived`` (see the module docstring).
        sql: the DuckDB expression computing the factor.
        table: source table for ``aggregate`` (``purchases``/``messages``) and ``profile``
            (``clients``); ``None`` for ``derived``.
        columns: the source table's columns the expression reads (checked against the
            table's contract at registration).
        window: for ``aggregate``, the look-back in days (``None`` = all history).
        inputs: for ``derived``, the factors the expression combines.
        dtype: output dtype, one of ``float64``, ``int64``, ``int8``.
        default: value for clients without the events the factor needs.
        theme: catalogue section the factor is listed under.
    """

    name: str
    description: str
    kind: str
    sql: str
    table: str | None = None
    columns: tuple[str, ...] = ()
    window: int | None = None
    inputs: tuple[str, ...] = ()
    dtype: str = "float64"
    default: float | int = 0
    theme: str = "other"

    @property
    def tables(self) -> tuple[str, ...]:
        """The raw tables the factor reads (directly; derived factors read none)."""
        return (self.table,) if self.table else ()

    @property
    def windows(self) -> tuple[int, ...]:
        """The window(s) in days the factor uses (empty for all history)."""
        return (self.window,) if self.window else ()
