"""Snapshots of a real PostgreSQL database: the tables come out as they went in, a campaign runs
on them, and every bad source ends in one error naming what and where, with nothing half-written.

The server is a real PostgreSQL started by the ``pgserver`` package for this module
(tests/fixtures/postgres.py), with password login over TCP; a small synthetic world is loaded
into it with the server's binary COPY.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tasks.core.config import SyntheticDataConfig, from_conf
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError
from tasks.core.io import sha256_file, stable_hash
from tasks.data.ingest import TABLES, SourceConfig, ingest, resolve_as_of, validate_source
from tasks.data.postgres import redact_url, split_url
from tasks.data.tables import read_manifest, read_table

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORLD_END = "2026-01-01"


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    """A real PostgreSQL server for this module (skips when pgserver cannot start one here)."""
    from tests.fixtures.postgres import start_postgres

    try:
        server = start_postgres(tmp_path_factory.mktemp("pg"))
    except Exception as exc:  # no server, no test: say why
        pytest.skip(f"pgserver could not start a PostgreSQL server here: {type(exc).__name__}: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def world(pg):
    """A 2,000-client synthetic world, loaded into the server's public schema."""
    from tasks.data.synthetic.world import generate_world
    from tests.fixtures.postgres import load_tables

    tables = generate_world(from_conf(SyntheticDataConfig, "data/synthetic", n_clients=2000, seed=5, name="source"))
    load_tables(pg, {t: tables[t] for t in TABLES})
    return tables


def _schema(pg, name: str, tables: dict[str, pd.DataFrame], types: dict | None = None) -> None:
    """Load ``tables`` into schema ``name`` (created fresh), owned by the login role."""
    from tests.fixtures.postgres import load_tables

    pg.psql(f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name} AUTHORIZATION {pg.user};")
    load_tables(pg, tables, types=types, schema=name)


def _snapshot(pg, out: Path, **cfg) -> dict:
    cfg.setdefault("as_of", WORLD_END)
    return ingest(from_conf(SourceConfig, "source/postgres", url=pg.url(), **cfg), out.name, out)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same columns, dtypes and values (categories compared by value)."""
    b = b.reset_index(drop=True)
    assert list(a.columns) == list(b.columns)
    assert [str(t) for t in a.dtypes] == [str(t) for t in b.dtypes], (a.dtypes, b.dtypes)
    pd.testing.assert_frame_equal(a, b, check_categorical=False)


def _nothing_left(out: Path) -> None:
    """No dataset folder and no staging folder beside it."""
    assert not out.exists()
    if out.parent.exists():
        assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


# --------------------------------------------------------------------------- the snapshot

def test_snapshot_equals_the_source_and_its_manifest_describes_it(pg, world, tmp_path):
    out = tmp_path / "data" / "shop"
    manifest = ingest(from_conf(SourceConfig, "source/postgres", url=pg.url(), as_of="latest", batch_mb=1), "shop", out)
    assert read_manifest(out) == manifest
    assert manifest["name"] == "shop" and manifest["kind"] == "database" and manifest["as_of"] == WORLD_END
    assert "truth" not in manifest["row_counts"] and not (out / "truth.parquet").exists()
    for t in TABLES:
        snap = pd.read_parquet(out / f"{t}.parquet")
        _same(snap, world[t])
        _same(read_table(out, t, as_of=manifest["as_of"]), world[t])  # the product's own reader accepts it
        assert manifest["row_counts"][t] == len(world[t]) and manifest["rows_after_as_of"][t] == 0
        assert manifest["table_sha256"][t] == sha256_file(out / f"{t}.parquet")
    # streamed: batches of ~1 MiB became row groups, never one big table
    assert pq.ParquetFile(out / "purchases.parquet").metadata.num_row_groups > 3
    src = manifest["source"]
    assert src["url"] == f"postgresql://{pg.user}@127.0.0.1:{pg.port}/{pg.database}"
    assert pg.password not in json.dumps(manifest)
    assert src["queries"]["purchases"] == 'SELECT * FROM "purchases"' and src["server"].startswith("PostgreSQL 16")
    assert set(manifest["library"]) >= {"adbc-driver-postgresql", "pyarrow", "duckdb"}


def test_snapshot_into_client_id_buckets_holds_the_same_rows(pg, world, tmp_path):
    from tasks.core.io import sha256_folder

    out = tmp_path / "data" / "shop_b"
    manifest = _snapshot(pg, out, buckets=3)
    layout = manifest["buckets"]
    assert layout["column"] == "client_id" and layout["count"] == 3 and read_manifest(out) == manifest
    for t in TABLES:
        folder = out / f"{t}.parquet"
        assert folder.is_dir() and manifest["table_sha256"][t] == sha256_folder(folder)
        for part in folder.glob("bucket=*"):
            k = int(part.name.split("=")[1])
            ids = pq.read_table(part, columns=["client_id"])["client_id"].to_numpy()
            assert (ids // layout["width"] == k).all()
        keys = [c for c in ("client_id", "timestamp", "campaign_id", "product_id") if c in world[t].columns]
        got = read_table(out, t, as_of=manifest["as_of"]).sort_values(keys, kind="stable").reset_index(drop=True)
        want = world[t].sort_values(keys, kind="stable").reset_index(drop=True)
        assert len(got) == len(want)
        pd.testing.assert_series_equal(got["client_id"], want["client_id"])
    with pytest.raises(ConfigError, match="buckets"):
        validate_source(from_conf(SourceConfig, "source/postgres", url=pg.url(), buckets=-1))


def test_a_campaign_on_the_snapshot_equals_one_on_the_source_world(pg, world, tmp_path):
    from tasks.campaign.run import run_campaign
    from tasks.data.synthetic.world import write_world
    from tests.test_campaign import FEATURES, WORLD, campaign, train_model

    made = {}
    for label in ("snapshot", "world"):
        root = tmp_path / label
        out = root / "data" / WORLD
        if label == "snapshot":
            _snapshot(pg, out)
        else:
            write_world(world, out, from_conf(SyntheticDataConfig, "data/synthetic", n_clients=2000, seed=5, name=WORLD))
        train_model(root, read_table(out, "campaign_history"), FEATURES)
        res = run_campaign(campaign("c1"), root)
        assert res.manifest["data"]["manifest_hash"] == stable_hash(read_manifest(out))
        made[label] = pd.read_parquet(res.folder / "campaign.parquet")
    assert len(made["snapshot"]) > 1000
    pd.testing.assert_frame_equal(made["snapshot"], made["world"])


def test_as_of_cuts_later_rows_and_counts_them(pg, world, tmp_path):
    cut = "2025-12-01"
    manifest = _snapshot(pg, tmp_path / "cut", as_of=cut)
    limit = pd.Timestamp(cut)
    for t, col, strict in (("purchases", "timestamp", True), ("messages", "timestamp", True),
                           ("clients", "registration_date", False), ("campaign_history", "campaign_date", False)):
        late = (world[t][col] >= limit) if strict else (world[t][col] > limit)
        assert manifest["rows_after_as_of"][t] == int(late.sum())
        assert manifest["row_counts"][t] == int((~late).sum())
        snap = read_table(tmp_path / "cut", t, as_of=cut)
        assert (snap[col] < limit).all() if strict else (snap[col] <= limit).all()
    assert manifest["rows_after_as_of"]["purchases"] > 0 and manifest["as_of"] == cut
    assert resolve_as_of("today", today=pd.Timestamp("2026-03-04").date()) == pd.Timestamp("2026-03-04")


def test_postgres_types_are_stored_as_the_contract_says(pg, world, tmp_path):
    """date, timestamptz, numeric, int4, int2 and 0/1 flags come out as the contract's types."""
    clients = world["clients"].head(300).copy()
    purchases = world["purchases"].loc[world["purchases"]["client_id"].isin(clients["client_id"])].copy()
    flags = ["email_opt_out", "sms_opt_out", "push_opt_out", "marketing_opt_out"]
    loaded = clients.astype({f: "int64" for f in flags})
    _schema(pg, "typed", {"clients": loaded, "purchases": purchases,
                          "messages": world["messages"].head(500), "campaign_history": world["campaign_history"]},
            types={"clients": {"registration_date": "date", "age": "integer", **{f: "smallint" for f in flags}},
                   "purchases": {"timestamp": "timestamptz", "amount": "numeric(12,2)", "quantity": "smallint"}})
    # the server runs in its own time zone; a timestamptz column is stored in UTC
    pg.psql(f"ALTER ROLE {pg.user} SET timezone = 'Asia/Kathmandu'")
    try:
        _snapshot(pg, tmp_path / "typed", schema="typed")
    finally:
        pg.psql(f"ALTER ROLE {pg.user} RESET timezone")
    _same(pd.read_parquet(tmp_path / "typed" / "clients.parquet"), clients)
    _same(pd.read_parquet(tmp_path / "typed" / "purchases.parquet"), purchases)


def test_a_custom_query_maps_a_table_with_other_column_names(pg, world, tmp_path):
    c = world["clients"]
    crm = pd.DataFrame({"id": c["client_id"], "signup": c["registration_date"], "years": c["age"],
                        "sex": c["gender"].astype(str), "area": c["region"].astype(str),
                        "no_email": c["email_opt_out"], "no_sms": c["sms_opt_out"], "no_push": c["push_opt_out"],
                        "no_marketing": c["marketing_opt_out"], "store": "s" + (c["client_id"] % 7).astype(str)})
    _schema(pg, "crm", {"customers": crm})
    query = ("SELECT id AS client_id, signup AS registration_date, years AS age, sex AS gender, area AS region, "
             "no_email AS email_opt_out, no_sms AS sms_opt_out, no_push AS push_opt_out, "
             "no_marketing AS marketing_opt_out, store FROM crm.customers;")
    manifest = _snapshot(pg, tmp_path / "mapped", queries={"clients": query})
    snap = pd.read_parquet(tmp_path / "mapped" / "clients.parquet")
    _same(snap.drop(columns="store"), c)
    assert snap["store"].tolist() == crm["store"].tolist()  # an extra column stays, for base filters
    assert manifest["source"]["queries"]["clients"] == query.rstrip(";")


def test_the_snapshot_is_one_moment_of_a_database_that_keeps_changing(pg, world, tmp_path):
    """Rows written while the snapshot runs are not in it (one REPEATABLE READ transaction)."""
    _schema(pg, "live", {t: world[t] for t in TABLES})

    def step(label, fn, args):
        if label == "copy_purchases":  # the shop sells while we read
            pg.psql("INSERT INTO live.purchases SELECT client_id, timestamp, transaction_id + 10000000, amount, "
                    "quantity, category, channel, promo FROM live.purchases LIMIT 50")
        return fn(*args)

    manifest = ingest(from_conf(SourceConfig, "source/postgres", url=pg.url(), as_of=WORLD_END, schema="live"), "live", tmp_path / "live", step=step)
    assert manifest["row_counts"]["purchases"] == len(world["purchases"])
    again = _snapshot(pg, tmp_path / "later", schema="live")
    assert again["row_counts"]["purchases"] == len(world["purchases"]) + 50


# --------------------------------------------------------------------------- bad sources

def _previous_snapshot(pg, out: Path) -> str:
    _snapshot(pg, out)
    return sha256_file(out / "manifest.json")


@pytest.mark.parametrize("url_part, expect", [
    ({"password": "wrong-password"}, "password authentication failed"),
    ({"port": 1}, "check the host and port"),
    ({"database": "nosuchdb"}, "check the database name"),
    ({"user": "nobody"}, "password authentication failed"),
])
def test_a_wrong_url_is_one_clear_error_and_the_old_snapshot_stays(pg, world, tmp_path, url_part, expect):
    out = tmp_path / "data" / "shop"
    before = _previous_snapshot(pg, out)
    with pytest.raises(ConfigError) as err:
        ingest(from_conf(SourceConfig, "source/postgres", url=pg.url(**url_part), as_of=WORLD_END), "shop", out)
    text = str(err.value)
    assert expect in text and "wrong-password" not in text and pg.password not in text
    assert sha256_file(out / "manifest.json") == before
    assert [p.name for p in out.parent.iterdir()] == ["shop"]


def test_a_missing_table_names_it_and_lists_what_is_there(pg, world, tmp_path):
    _schema(pg, "partial", {"clients": world["clients"], "purchases": world["purchases"].head(100)})
    out = tmp_path / "data" / "partial"
    with pytest.raises(NotFoundError) as err:
        _snapshot(pg, out, schema="partial")
    text = str(err.value)
    assert text.startswith("table 'messages'") and "source.queries.messages=" in text
    assert "clients" in text.split("tables it can read:")[1]
    _nothing_left(out)


def test_a_mistyped_column_names_table_and_column_before_any_row_moves(pg, world, tmp_path):
    _schema(pg, "typo", {t: world[t] for t in TABLES}, types={"purchases": {"amount": "text"}})
    out = tmp_path / "data" / "typo"
    with pytest.raises(DataValidationError) as err:
        _snapshot(pg, out, schema="typo")
    e = err.value
    assert (e.table, e.column) == ("purchases", "amount")
    assert "expected float values, the query returns text" in str(e) and "amount::float8 AS amount" in str(e)
    _nothing_left(out)


def test_a_missing_column_lists_all_of_them_with_the_mapping_hint(pg, world, tmp_path):
    out = tmp_path / "data" / "cols"
    query = "SELECT client_id, timestamp, transaction_id, amount, quantity FROM purchases"
    with pytest.raises(DataValidationError) as err:
        _snapshot(pg, out, queries={"purchases": query})
    assert (err.value.table, err.value.column) == ("purchases", "category")
    assert "['category', 'channel', 'promo']" in str(err.value) and "AS category" in str(err.value)
    with pytest.raises(DataValidationError) as err:
        _snapshot(pg, out, queries={"purchases": "SELECT client_id, tstamp FROM purchases"})
    assert (err.value.table, err.value.column) == ("purchases", "tstamp") and "does not exist" in str(err.value)
    _nothing_left(out)


def test_a_bad_value_deep_in_a_table_stops_the_run_with_its_row_and_leaves_nothing(pg, world, tmp_path):
    purchases = world["purchases"].copy()
    row = len(purchases) - 7
    purchases.loc[row, "amount"] = -3.5
    _schema(pg, "badvalue", {**{t: world[t] for t in TABLES}, "purchases": purchases})
    out = tmp_path / "data" / "shop"
    before = _previous_snapshot(pg, out)
    with pytest.raises(DataValidationError) as err:
        _snapshot(pg, out, schema="badvalue", batch_mb=1)
    e = err.value
    assert (e.table, e.column) == ("purchases", "amount") and e.rows == [row] and "below 0" in str(e)
    assert sha256_file(out / "manifest.json") == before
    assert [p.name for p in out.parent.iterdir()] == ["shop"]


def test_duplicate_keys_in_different_batches_are_found_over_the_whole_table(pg, world, tmp_path):
    purchases = world["purchases"].copy()
    purchases.loc[len(purchases) - 1, "transaction_id"] = int(purchases.loc[3, "transaction_id"])
    _schema(pg, "dups", {**{t: world[t] for t in TABLES}, "purchases": purchases})
    out = tmp_path / "data" / "dups"
    with pytest.raises(DataValidationError) as err:
        _snapshot(pg, out, schema="dups", batch_mb=1)
    e = err.value
    assert (e.table, e.column) == ("purchases", "transaction_id") and "2 row(s) share 1 duplicate key" in str(e)
    assert str(int(purchases.loc[3, "transaction_id"])) in str(e)
    _nothing_left(out)


def test_duplicate_ids_in_a_table_read_in_one_batch_are_found_by_the_contract(pg, world, tmp_path):
    clients = world["clients"].copy()
    clients.loc[10, "client_id"] = int(clients.loc[2, "client_id"])
    _schema(pg, "dupclients", {**{t: world[t] for t in TABLES}, "clients": clients})
    out = tmp_path / "data" / "dupclients"
    with pytest.raises(DataValidationError) as err:
        _snapshot(pg, out, schema="dupclients")
    e = err.value
    assert (e.table, e.column) == ("clients", "client_id") and e.rows == [2, 10]
    _nothing_left(out)


def test_settings_are_checked_before_connecting():
    with pytest.raises(ConfigError, match="did you mean source.queries.clients"):
        validate_source(from_conf(SourceConfig, "source/postgres", url="postgresql://a@b/c", queries={"client": "SELECT 1"}))
    with pytest.raises(ConfigError, match="as_of"):
        validate_source(from_conf(SourceConfig, "source/postgres", url="postgresql://a@b/c", as_of="yesterday"))
    with pytest.raises(ConfigError, match="not a PostgreSQL URL"):
        split_url("mysql://u:secret@h/db")
    with pytest.raises(ConfigError, match="not set"):
        split_url("")
    assert split_url("postgresql://u:p%40ss@h:5433/db?sslmode=require") == (
        "postgresql://u@h:5433/db?sslmode=require", "p@ss")
    assert redact_url("postgres://u:pw@h/db?password=pw&sslmode=require") == "postgres://u@h/db?sslmode=require"


# --------------------------------------------------------------------------- the command line

def _env(extra: dict) -> dict:
    """A child's environment: this worktree's code, the session's Prefect server, no stray password."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGPASSFILE")}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    if PREFECT_API_URL.value():
        env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    return {**env, **extra}


def _cli(args: list[str], env_extra: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.ingest", *args], cwd=PROJECT_ROOT, env=_env(env_extra),
                          capture_output=True, text=True, timeout=600)


def test_command_line_snapshot_and_one_line_errors(pg, world, tmp_path, prefect_env):
    arts = tmp_path / "arts"
    bare = pg.url(password="")
    ok = _cli([f"source.url={bare}", "data.name=shop", f"paths.artifacts={arts}", "source.as_of=latest"],
              {"PGPASSWORD": pg.password})
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "snapshot 'shop'" in ok.stdout and f"{len(world['purchases']):,} rows" in ok.stdout
    assert "python -m flows.train data.name=shop" in ok.stdout
    assert read_manifest(arts / "data" / "shop")["row_counts"]["clients"] == 2000
    for args, expect in (
        ([f"source.url={pg.url(password='wrong-password')}"], "password authentication failed"),
        ([f"source.url={bare}", "source.queries.purchases=SELECT client_id FROM purchases"],
         "table 'purchases', column 'timestamp'"),
        ([f"source.url={bare}", "source.as_of=soon"], "source', key 'as_of'"),
    ):
        res = _cli([*args, "data.name=bad", f"paths.artifacts={arts}"], {"PGPASSWORD": pg.password})
        assert res.returncode == 2, res.stderr[-2000:]
        errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and expect in errors[0], res.stderr[-2000:]
        assert "Traceback" not in res.stderr and "wrong-password" not in res.stderr + res.stdout
        assert not (arts / "data" / "bad").exists()
    assert sorted(p.name for p in (arts / "data").iterdir()) == ["shop"]


def _readme_commands() -> list[str]:
    """The commands of README's "From a database" section, continuation lines joined."""
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("#### From a database", 1)[1].split("\n## ", 1)[0].split("\n#### ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```bash\n")[1:]]
    lines = " ".join(" ".join(blocks).replace("\\\n", " ").split("\n  ")).splitlines()
    return [" ".join(line.split()) for line in lines if line.strip().startswith("python -m")]


@pytest.mark.slow
def test_readme_commands_work_as_printed(pg, world, tmp_path, prefect_env):
    """README's commands against this server: only the URL differs (and where outputs go)."""
    import shlex

    c = world["clients"]
    crm = pd.DataFrame({"id": c["client_id"], "created": c["registration_date"], "age": c["age"],
                        "gender": c["gender"].astype(str), "region": c["region"].astype(str),
                        **{f: c[f] for f in ("email_opt_out", "sms_opt_out", "push_opt_out", "marketing_opt_out")}})
    _schema(pg, "crm", {"customers": crm})
    commands = _readme_commands()
    assert [shlex.split(x)[2] for x in commands] == ["flows.ingest", "flows.train", "flows.campaign", "flows.ingest"]
    arts = tmp_path / "arts"
    readme_url = "postgresql://shop@localhost:5432/shop"
    # the mapped snapshot first, then the plain one replaces it, and the flows run on that
    for command in (commands[3], *commands[:3]):
        assert readme_url in command or "flows.ingest" not in command
        args = shlex.split(command.replace(readme_url, pg.url(password="")))[2:]
        extra = ["source.as_of=latest"] if args[0] == "flows.ingest" else []
        if args[0] == "flows.train":  # 2,000 clients show no signal: registered, not champion unless forced
            extra = ["model.promote=always"]
        res = subprocess.run([sys.executable, "-m", *args, f"paths.artifacts={arts}", *extra], cwd=PROJECT_ROOT,
                             env=_env({"PGPASSWORD": pg.password}), capture_output=True, text=True, timeout=1800)
        assert res.returncode == 0, (command, res.stderr[-3000:])
        if command is commands[3]:
            mapped = read_manifest(arts / "data" / "shop")
            assert "crm.customers" in mapped["source"]["queries"]["clients"]
            _same(pd.read_parquet(arts / "data" / "shop" / "clients.parquet"), c)
    frozen = json.loads((arts / "campaigns" / "shop_first" / "manifest.json").read_text())
    assert frozen["data"]["name"] == "shop" and frozen["model"]["name"] == "shop_uplift"
    assert frozen["data"]["manifest_hash"] == stable_hash(read_manifest(arts / "data" / "shop"))
    assert frozen["campaign_date"] == WORLD_END and frozen["counts"]["clients"] > 1000
