"""The factor library: declared, point-in-time client factors computed by one DuckDB query.

Public API::

    from factors import Factor, compute_factors, factor_set, all_factors
    df = compute_factors(data_dir, "2026-01-01", factor_set("default"), client_ids=ids)

See docs/factors.md for the catalogue and how to add a factor.
"""
from factors.base import Factor
from factors.registry import FactorDeclarationError, all_factors, get, register
from factors import catalog  # noqa: F401  (registers the built-in catalogue)
from factors.engine import EngineOptions, compute_factors
from factors.sets import factor_set, names_from_config

__all__ = [
    "EngineOptions",
    "Factor",
    "FactorDeclarationError",
    "all_factors",
    "compute_factors",
    "factor_set",
    "get",
    "names_from_config",
    "register",
]
