"""The registry of declared factors: validates each declaration when it is registered.

Catalogue modules (``factors/catalog/*.py``) call :func:`register` at import; a broken
declaration (duplicate or malformed name, unknown table or column, a default of the wrong
type, a missing description, a derived factor over unknown inputs) raises
:class:`FactorDeclarationError` at once, so a bad factor never reaches a model.
"""
from __future__ import annotations

import math
import re
from typing import Iterable

from factors.base import DTYPES, EVENT_TABLES, KINDS, PROFILE_TABLE, Factor
from tasks.core.contracts import CONTRACTS
from tasks.core.errors import NotFoundError, UpliftError

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_WINDOW_DAYS = 3650


SQL_RESERVED = frozenset(
    "all and any as asc between by case cast default desc distinct else end except false filter from "
    "group having in intersect is join like limit not null offset on or order over qualify select "
    "table then true union using when where window with".split())
"""Names a factor cannot take: they would read as SQL in derived expressions."""


class FactorDeclarationError(UpliftError):
    """A factor declaration is broken (raised at registration)."""


_REGISTRY: dict[str, Factor] = {}


def _fail(name: object, problem: str) -> None:
    raise FactorDeclarationError(f"factor {name!r}: {problem}")


def _check_default(f: Factor) -> None:
    d = f.default
    if isinstance(d, bool):
        _fail(f.name, f"default {d!r} is a bool; use 0/1 with dtype int8")
    if f.dtype == "float64":
        if not isinstance(d, (int, float)):
            _fail(f.name, f"default {d!r} is not a number (dtype float64)")
    elif not isinstance(d, int):
        _fail(f.name, f"default {d!r} is not an integer (dtype {f.dtype})")
    if f.dtype == "int8" and not -128 <= d <= 127:
        _fail(f.name, f"default {d!r} does not fit int8")
    if isinstance(d, float) and math.isinf(d):
        _fail(f.name, "default must be finite")


def validate_factor(f: Factor, known: dict[str, Factor]) -> None:
    """Raise :class:`FactorDeclarationError` unless ``f`` is a well-formed declaration.

    ``known`` holds the factors registered so far (derived inputs must be among them).
    """
    if not isinstance(f, Factor):
        _fail(f, f"expected a Factor, got {type(f).__name__}")
    if not isinstance(f.name, str) or not NAME_RE.match(f.name):
        _fail(f.name, "name must match [a-z][a-z0-9_]* (plain lowercase letters, digits, _)")
    if f.name in SQL_RESERVED:
        _fail(f.name, "name is an SQL keyword")
    if f.name in known or f.name == "client_id":
        _fail(f.name, "duplicate name: a factor with this name is already registered")
    if not isinstance(f.description, str) or len(f.description.strip()) < 5:
        _fail(f.name, "missing description")
    if f.kind not in KINDS:
        _fail(f.name, f"unknown kind {f.kind!r}; use one of {KINDS}")
    if f.dtype not in DTYPES:
        _fail(f.name, f"unknown dtype {f.dtype!r}; use one of {DTYPES}")
    if not isinstance(f.sql, str) or not f.sql.strip():
        _fail(f.name, "empty sql expression")
    if ";" in f.sql:
        _fail(f.name, "sql must be one expression (no ';')")
    _check_default(f)
    if f.kind == "aggregate":
        if f.table not in EVENT_TABLES:
            _fail(f.name, f"unknown table {f.table!r} for an aggregate; use one of {EVENT_TABLES}")
    elif f.kind == "profile":
        if f.table != PROFILE_TABLE:
            _fail(f.name, f"unknown table {f.table!r} for a profile factor; use {PROFILE_TABLE!r}")
    else:
        if f.table is not None or f.columns:
            _fail(f.name, "a derived factor reads other factors, not a table")
        if not f.inputs:
            _fail(f.name, "a derived factor needs inputs")
        unknown = [i for i in f.inputs if i not in known]
        if unknown:
            _fail(f.name, f"unknown input factor(s) {unknown} (register them first)")
        missing = [i for i in f.inputs if not re.search(rf"\b{i}\b", f.sql)]
        if missing:
            _fail(f.name, f"input(s) {missing} are not used in the sql")
    if f.table is not None:
        contract = CONTRACTS[f.table]
        unknown_cols = [c for c in f.columns if c not in contract.column_names]
        if unknown_cols:
            _fail(f.name, f"unknown column(s) {unknown_cols} of table {f.table!r}; "
                          f"it has {contract.column_names}")
    if f.window is not None:
        if f.kind != "aggregate":
            _fail(f.name, "only aggregate factors take a window")
        if isinstance(f.window, bool) or not isinstance(f.window, int) or not 0 < f.window <= MAX_WINDOW_DAYS:
            _fail(f.name, f"window must be a whole number of days in 1..{MAX_WINDOW_DAYS}, got {f.window!r}")


def register(factor: Factor) -> Factor:
    """Validate ``factor`` and add it to the registry; return it."""
    validate_factor(factor, _REGISTRY)
    _REGISTRY[factor.name] = factor
    return factor


def register_all(factors: Iterable[Factor]) -> list[Factor]:
    """Register several factors in order."""
    return [register(f) for f in factors]


def unregister(name: str) -> None:
    """Remove a factor (tests that declare temporary factors use it to clean up)."""
    _REGISTRY.pop(name, None)


def _ensure_catalog() -> None:
    import factors.catalog  # noqa: F401  (registers the built-in catalogue)


def all_factors() -> dict[str, Factor]:
    """Every registered factor by name, in registration order."""
    _ensure_catalog()
    return dict(_REGISTRY)


def get(name: str) -> Factor:
    """The factor called ``name``; :class:`NotFoundError` with close names when unknown."""
    _ensure_catalog()
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise NotFoundError(f"unknown factor {name!r}{hint} ({len(_REGISTRY)} factors registered)") from None


def resolve(names: Iterable[str]) -> list[Factor]:
    """The requested factors plus, for derived ones, every input they need (inputs first).

    Raises :class:`NotFoundError` for an unknown name.
    """
    order: list[Factor] = []
    seen: set[str] = set()

    def visit(n: str) -> None:
        if n in seen:
            return
        f = get(n)
        for i in f.inputs:
            visit(i)
        seen.add(n)
        order.append(f)

    for n in names:
        visit(n)
    return order
