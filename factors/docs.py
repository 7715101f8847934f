"""The factor catalogue as Markdown, generated from the registry.

    python -m factors.docs            # rewrites docs/factors.md

A test checks that docs/factors.md matches the registry, so the page never drifts from
the code.
"""
from __future__ import annotations

import sys
from pathlib import Path

from factors.registry import all_factors
from factors.sets import available_sets, factor_set
from tasks.core.config import PROJECT_ROOT
from tasks.core.io import atomic_write_text

DOC_PATH = PROJECT_ROOT / "docs" / "factors.md"

THEMES = {
    "profile": "Profile (clients table)",
    "recency": "Recency",
    "frequency_monetary": "Frequency and monetary (windows)",
    "trend": "Trends (last 30 days vs the 30 before)",
    "shares": "Category, channel and promo shares",
    "engagement": "Message engagement",
    "unsubscribe_bounce": "Unsubscribe and bounce flags",
}

INTRO = """# Factor library

Client factors for uplift and response models, computed as of a date from the raw tables
(`clients`, `purchases`, `messages`; see tasks/core/contracts.py). This page is generated from
the registry by `python -m factors.docs`; do not edit it by hand.

## Using it

```python
from factors import compute_factors, factor_set
table = compute_factors("artifacts/data/synthetic", "2026-01-01", factor_set("default"),
                        client_ids=ids)          # None = every client registered before the date
```

- One row per requested client, in the requested order; `client_id` (int64) then the
  factors in the requested order, each with its declared dtype.
- **Point in time**: purchases and messages count only when `timestamp < as_of`; a window of
  N days keeps `as_of - N days <= timestamp < as_of`. With `client_ids=None` the clients
  are those with `registration_date < as_of`. Requesting a client that is not in `clients`,
  or registered on or after the as-of date, raises `NotFoundError` listing a few ids;
  duplicate requested ids raise `DataValidationError`. A registry-wide test changes and adds
  events on and after the as-of date and checks that no factor changes.
- Clients without the events a factor needs get its default (0 for counts, amounts and
  shares, 0.5 for the 30-day trend shares, 9999 for "days since" factors).
- Profile factors (age, gender, region, opt-out flags) are the client table's current
  values: the table holds one state per client, not its history.
- The truth table and campaign responses are never read.
- Bad input stops with one clear error naming table, column and a few rows: a missing table
  file (`NotFoundError`), a missing or mistyped column (checked against tasks/core/contracts.py
  from the Parquet schema), missing values or values below the contract's minimum (from the
  Parquet statistics, so the check reads metadata only), duplicate ids in `clients`, an
  unknown factor name (with close names suggested), duplicate requested client ids.
- Engine: the requested factors are compiled into one DuckDB query over the Parquet files
  (`<table>.parquet`, or a folder of part files): per table one source filtered to
  `timestamp < as_of` (and to the requested clients and their id range, so files sorted by
  client skip row groups), one `GROUP BY client_id` per window, left-joined to the requested
  clients with defaults applied, derived factors (ratios, trends) computed on top. DuckDB
  uses every core the process may use and a memory limit of a quarter of the machine's memory,
  at most 6 GB (`factors.EngineOptions`).
- Large client lists: `factors.partitioned.prepare_factors` checks a request once and
  aggregates the tables whose row groups are not ordered by client once (in slices of a
  million clients, sorted by client); its plan then computes any partition of contiguous
  client ids reading only that id range. The values are those of one query; the campaign's
  factor stage works this way, 250,000 clients per partition.
- Speed and memory: `python benchmarks/factors.py` computes the `default` set for a
  1M-client world and the same factors with a hand-written DuckDB query, checks that they
  agree and prints wall time, CPU time and peak memory of each.
- To a file: `tasks.campaign.factor_table.build_factor_table(data_dir, as_of, factor_names,
  out_path, client_ids_path=None)` writes the table atomically and returns
  `{rows, columns, seconds, path, as_of}`; `flows.factor_table.compute_factor_table` is its Prefect task.
- Wide tables (Hillstrom, iFood): `factors.passthrough.prepare_wide(df, categorical=[...],
  drop=[...])` keeps numeric columns, turns booleans into 0/1 and one-hot encodes
  categoricals; `sanitize_name` makes every name plain `[A-Za-z0-9_]` (LightGBM-safe).

## Adding a factor

1. Declare it in the theme module under `factors/catalog/` (or a new module imported by
   `factors/catalog/__init__.py`):

   ```python
   Factor("purchase_amount_7d", "Amount spent in the last 7 days.", "aggregate",
          "sum(amount)", table="purchases", columns=("amount",), window=7,
          dtype="float64", default=0.0, theme="frequency_monetary")
   ```

   - `aggregate`: `sql` is an aggregate over the client's rows of `purchases` or `messages`
     (`count(*) FILTER (WHERE channel = 'online')`, `sum(amount) / NULLIF(sum(quantity), 0)`);
   - `profile`: a scalar expression over the client's row of `clients`;
   - `derived`: an expression over other factors listed in `inputs` (their defaults applied).
   `{as_of}` in `sql` stands for the as-of timestamp; a NULL result becomes the default.
2. Registration checks the declaration at import: a plain `[a-z][a-z0-9_]*` name not used
   before, a description, a known kind, table and dtype, columns that exist in the table's
   contract, a default of the dtype's type, a window of whole days, derived inputs that exist.
3. Add its hand-computed values for the three fixture clients to `EXPECTED` in
   tests/test_factors.py (a test fails until every registered factor has them); the
   point-in-time test covers it automatically.
4. List it in a factor set (`conf/factors/<name>.yaml`) if a model should use it, and run
   `python -m factors.docs` to refresh this page.
"""


def _fmt_default(value: float | int) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def catalogue_markdown() -> str:
    """The whole page: introduction, factor sets and the catalogue tables by theme."""
    registered = all_factors()
    parts = [INTRO.rstrip(), "", "## Factor sets", ""]
    for name in available_sets():
        names = factor_set(name)
        parts.append(f"- `{name}` (conf/factors/{name}.yaml): {len(names)} factors.")
    parts += ["", f"## Catalogue ({len(registered)} factors)", ""]
    themes = list(THEMES) + sorted({f.theme for f in registered.values()} - set(THEMES))
    for theme in themes:
        members = [f for f in registered.values() if f.theme == theme]
        if not members:
            continue
        parts += [f"### {THEMES.get(theme, theme)}", "",
                  "| factor | kind | reads | window | dtype | default | description |",
                  "|---|---|---|---|---|---|---|"]
        for f in members:
            reads = f.table or ", ".join(f.inputs)
            window = f"{f.window} d" if f.window else ("all history" if f.kind == "aggregate" else "")
            parts.append(f"| `{f.name}` | {f.kind} | {reads} | {window} | {f.dtype} | "
                         f"{_fmt_default(f.default)} | {f.description} |")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def write_docs(path: Path = DOC_PATH) -> Path:
    """Write the generated catalogue page to ``path`` (atomically)."""
    return atomic_write_text(catalogue_markdown(), path)


if __name__ == "__main__":
    print(write_docs(Path(sys.argv[1]) if len(sys.argv) > 1 else DOC_PATH))
