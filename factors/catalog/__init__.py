"""The built-in factor catalogue, one module per theme; importing it registers every factor."""
from factors.catalog import profile, purchases, messages  # noqa: F401  (registration)
