"""A campaign over a client table: this month's client mart (a ';'-separated CSV with NaN cells, a
string categorical, a text column that is no feature and ids under another name) in place of
a dataset folder and the factor library. A real LightGBM uplift model trained on a past
experiment's table of the same columns, real Prefect through the command line, then the round
trip: offer list exported, responses back as a CSV, evaluation written."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tasks.campaign.config import CampaignConfig
from tasks.campaign.run import CampaignRun, run_campaign
from tasks.campaign.stages import stage_checkpoint
from tasks.core.config import from_conf
from tasks.core.errors import ConfigError, DataValidationError
from tasks.core.io import read_json
from tasks.core.layout import Layout
from tasks.data.table import table_content_hash
from tests.conftest import PROJECT_ROOT

MODEL = "mart_uplift"
ID = "customer_no"
FEATURES = ["age", "spend_90d", "visits", "region"]     # region is text: one-hot encoded at training
ENV = dict(os.environ, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300")
ENV.pop("PREFECT_API_URL", None)


def client_rows(n: int, first_id: int, seed: int, regions=("north", "south", "east")) -> pd.DataFrame:
    """Clients as a shop's mart holds them: gaps in age and spend, a region (text, some empty),
    an e-mail opt-out as yes/no and an e-mail address (text, one per client)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        ID: np.arange(first_id, first_id + n, dtype=np.int64) * 7,
        "age": rng.integers(18, 80, n).astype(float),
        "spend_90d": rng.gamma(2.0, 40.0, n).round(2),
        "visits": rng.poisson(3, n),
        "region": rng.choice(list(regions), n),
        "email_opt_out": rng.choice(["yes", "no"], n, p=[0.15, 0.85]),
    })
    df["email"] = [f"client{i}@example.com" for i in df[ID]]
    df.loc[rng.random(n) < 0.06, "age"] = np.nan
    df.loc[rng.random(n) < 0.06, "spend_90d"] = np.nan
    df["region"] = df["region"].where(rng.random(n) >= 0.05)
    return df


def response_probability(df: pd.DataFrame, offered: np.ndarray) -> np.ndarray:
    """The shop's true law: the offer works on the young and the north."""
    young = (df["age"].fillna(50) < 40).to_numpy()
    north = (df["region"] == "north").to_numpy()
    return 0.05 + offered * (0.12 * young + 0.08 * north)


def train_and_register(root: Path, past: Path) -> str:
    """The model as ``python -m flows.train data=table ... model=uplift`` makes it (the table
    read by the generic loader, features screened, chosen by CV, registered), smaller and faster."""
    from tasks.modelling.config import ModelConfig
    from tasks.modelling.registry import ModelRegistry
    from tasks.modelling.training import register_version, train_on
    from tasks.modelling.training_set import load_training_set

    data = {"kind": "table", "path": str(past), "id_column": ID, "target": "response", "treatment": "arm",
            "treated": "offer", "control": "no offer", "drop": ["email"], "known_after": ["spend_after"]}
    ts = load_training_set(data, {}, Layout(root), root)
    cfg = from_conf(ModelConfig, "model/uplift", name=MODEL, approaches=["two_models"], cv_folds=2, n_boot=20,
                    promote="always", lgbm={"n_estimators": 60, "min_child_samples": 40, "n_jobs": 1})
    version, _, _ = register_version(train_on(ts, cfg), ModelRegistry(root / "models"), MODEL, cfg, ts.dataset)
    return version


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """A registered model and this month's mart (mart.csv) in a shared folder."""
    root = tmp_path_factory.mktemp("shop")
    past = client_rows(4000, 1, seed=1)                  # last quarter's test: string arms, yes/no response
    rng = np.random.default_rng(2)
    treated = rng.integers(0, 2, len(past))
    bought = rng.random(len(past)) < response_probability(past, treated)
    past["arm"] = np.where(treated == 1, "offer", "no offer")
    past["response"] = np.where(bought, "yes", "no")
    past["spend_after"] = np.where(bought, rng.gamma(2.0, 20.0, len(past)), 0.0).round(2)
    past.to_csv(root / "past_test.csv", sep=";", index=False)
    train_and_register(root, root / "past_test.csv")
    client_rows(2500, 10_000, seed=3).to_csv(root / "mart.csv", sep=";", index=False)
    return root


@pytest.fixture
def art(shop, tmp_path) -> Path:
    """A fresh artifacts root sharing the shop's models, and a copy of the mart of its own."""
    root = tmp_path / "artifacts"
    root.mkdir()
    (root / "models").symlink_to(shop / "models")
    (tmp_path / "mart.csv").write_bytes((shop / "mart.csv").read_bytes())
    return root


def mart(art: Path) -> Path:
    return art.parent / "mart.csv"


REACHABLE = {"name": "reachable", "column": "email_opt_out", "op": "==", "value": "no"}


def table_campaign(art: Path, cid: str = "june", **over) -> CampaignConfig:
    node = {"id": cid, "model": MODEL, "filters": [REACHABLE], "sample_fraction": None,
            "client_table": {"path": str(mart(art)), "id_column": ID, "sep": None, "categorical": None},
            "policy": {"kind": "top_fraction", "top_fraction": 0.3}, "seed": 5}
    node.update(over)
    return from_conf(CampaignConfig, "campaign/default", **node)


def cli(module: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return errors[0]


# --------------------------------------------------------------------------- the round trip
def test_campaign_over_a_client_table_frozen_exported_and_evaluated(art):
    conf = art.parent / "june.yaml"
    conf.write_text(yaml.safe_dump({k: v for k, v in asdict(table_campaign(art)).items()
                                    if k in ("id", "model", "filters", "client_table", "policy", "seed")}))
    run = cli("flows.campaign", f"conf={conf}", f"paths.artifacts={art}", "runner.partitions=3")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "campaign june frozen" in run.stdout
    assert f"campaign june: checking the client table {mart(art)}" in run.stdout   # said before the long read

    paths = Layout(art).campaign("june")
    manifest = read_json(paths.manifest)
    src = pd.read_csv(mart(art), sep=";")
    assert manifest["data"]["kind"] == "table" and manifest["data"]["path"] == str(mart(art).resolve())
    assert manifest["data"]["sha256"] == table_content_hash(mart(art))
    table = pd.read_parquet(paths.table)
    kept = src.loc[src["email_opt_out"] == "no", ID]
    assert sorted(table["client_id"]) == sorted(kept)            # the mart's ids, the opted-out left out
    assert manifest["counts"]["client_base"] == len(src) and manifest["counts"]["clients"] == len(kept)
    factors = pd.read_parquet(stage_checkpoint(paths, "factors"))
    features = read_json(next((art / "models" / MODEL).glob("v*/metadata.json")))["features"]
    assert list(factors.columns) == ["client_id", *features]
    assert {"age", "spend_90d", "visits", "region_east", "region_north", "region_south"} <= set(features)
    assert factors["age"].isna().any()                           # NaN cells reach LightGBM as NaN
    assert "client table" in paths.summary.read_text()

    again = cli("flows.campaign", f"conf={conf}", f"paths.artifacts={art}")
    assert again.returncode == 0 and "nothing to do" in again.stdout and "note" not in again.stdout

    export = cli("flows.campaigns", "export", "campaign_id=june", f"paths.artifacts={art}")
    assert export.returncode == 0, export.stderr[-2000:]
    offers = pd.read_csv(paths.offer_list("csv"))
    assert list(offers.columns) == ["client_id", "group", "offer", "score", "rank"]
    assert len(offers) == len(kept) and offers["rank"].tolist() == list(range(1, len(kept) + 1))

    # the responses the shop got back: ';'-separated, yes/no, revenue for buyers only
    rows = src.set_index(ID).loc[offers["client_id"]].reset_index()
    p = response_probability(rows, offers["offer"].to_numpy())
    bought = np.random.default_rng(9).random(len(p)) < p
    back = pd.DataFrame({"client_id": offers["client_id"], "response": np.where(bought, "yes", "no"),
                         "revenue": np.where(bought, 25.0, np.nan)})
    back.to_csv(art.parent / "responses.csv", sep=";", index=False)
    ev = cli("flows.evaluate", "campaign_id=june", f"responses={art.parent / 'responses.csv'}",
             f"paths.artifacts={art}", "evaluate.n_boot=20")
    assert ev.returncode == 0, ev.stderr[-3000:]
    metrics = json.loads((Layout(art).evaluation("june") / "metrics.json").read_text())
    effect = metrics["targeted_vs_control"]["response"]
    assert effect["ci_low"] <= effect["estimate"] <= effect["ci_high"]
    assert metrics["primary"]["offers"] == int((table["offer"] & (table["group"] == "targeted")).sum())
    assert metrics["data"]["kind"] == "table" and metrics["n_analysed"] == len(kept)

    # the mart is rewritten after the freeze: the frozen campaign stands, and a rerun says so
    src.assign(visits=src["visits"] + 1).to_csv(mart(art), sep=";", index=False)
    changed = cli("flows.campaign", f"conf={conf}", f"paths.artifacts={art}")
    assert changed.returncode == 0 and "nothing to do" in changed.stdout
    assert "changed since the freeze" in changed.stdout and "campaign.id=june_v2" in changed.stdout
    assert pd.read_parquet(paths.table).equals(table)


# --------------------------------------------------------------------------- resume and invalidation
def test_rerun_resumes_and_a_changed_table_recomputes(art):
    cfg = table_campaign(art, "resume")
    first = run_campaign(cfg, art, partitions=2, until="offer")
    assert first.computed == ["client_base", "filters", "subset", "factors", "score", "sort", "split", "offer"]
    again = run_campaign(cfg, art, partitions=2, until="offer")
    assert again.computed == [] and all(o.status == "reused" for o in again.outcomes.values())
    moved = art.parent / "elsewhere.csv"                       # same bytes under another name: still reused
    moved.write_bytes(mart(art).read_bytes())
    cfg_moved = table_campaign(art, "resume", client_table={"path": str(moved), "id_column": ID, "sep": None,
                                                           "categorical": None})
    assert run_campaign(cfg_moved, art, until="offer").computed == []

    src = pd.read_csv(mart(art), sep=";")
    young = src.index[src["email_opt_out"] == "no"][:40]
    src.loc[young, "age"] = 19.0                                # this month's mart, a little different
    src.to_csv(mart(art), sep=";", index=False)
    redo = run_campaign(cfg, art, partitions=2)
    assert {"client_base", "filters", "factors", "score", "sort", "split", "offer", "freeze"} <= set(redo.computed)
    factors = pd.read_parquet(stage_checkpoint(Layout(art).campaign("resume"), "factors")).set_index("client_id")
    assert (factors.loc[src.loc[young, ID], "age"] == 19.0).all()
    assert redo.manifest["data"]["sha256"] != first.manifest.get("data", {}).get("sha256", "")

    # same config, same table, same stages: the same campaign from a fresh folder
    fresh = art.parent / "fresh"
    fresh.mkdir()
    (fresh / "models").symlink_to(art / "models")
    ref = run_campaign(cfg, fresh, partitions=1)
    pd.testing.assert_frame_equal(pd.read_parquet(ref.folder / "campaign.parquet"),
                                  pd.read_parquet(redo.folder / "campaign.parquet"))


# --------------------------------------------------------------------------- filters and features
def test_filters_on_table_columns_remove_the_right_rows(art):
    filters = [REACHABLE,
               {"name": "adults_under_60", "column": "age", "op": "<", "value": 60},
               {"name": "north_or_east", "column": "region", "op": "in", "value": ["north", "east"]}]
    result = run_campaign(table_campaign(art, "filtered", filters=filters), art)
    src = pd.read_csv(mart(art), sep=";")
    expected = src.loc[(src["email_opt_out"] == "no") & (src["age"] < 60) & src["region"].isin(["north", "east"]), ID]
    table = pd.read_parquet(result.folder / "campaign.parquet")
    assert sorted(table["client_id"]) == sorted(expected)      # NaN ages and empty regions are left out
    report = {f["name"]: f for f in result.manifest["filters"]}
    assert report["reachable"]["removed"] == int((src["email_opt_out"] != "no").sum())
    assert report["north_or_east"]["after"] == len(expected)

    unknown = [*filters, {"name": "vip", "column": "loyalty_tier", "op": "==", "value": "gold"}]
    with pytest.raises(ConfigError, match=r"vip \(loyalty_tier\) filter on column\(s\) the client table lacks; "
                                          r"the table has \['age', 'spend_90d'"):
        CampaignRun(table_campaign(art, "vip", filters=unknown), art).check_inputs()


def test_a_missing_feature_is_one_error_naming_it_and_the_tables_columns(art):
    src = pd.read_csv(mart(art), sep=";")
    src.drop(columns=["spend_90d"]).to_csv(mart(art), sep=";", index=False)
    with pytest.raises(DataValidationError) as err:
        CampaignRun(table_campaign(art, "nospend"), art).check_inputs()
    msg = str(err.value)
    assert "needs feature(s) ['spend_90d']" in msg and "the table has ['age', 'visits', 'region'" in msg
    assert not (art / "campaigns").exists()

    # a region coded as numbers where the model saw text: the hint names client_table.categorical
    coded = src.assign(region=src["region"].map({"north": 1, "south": 2, "east": 3}))
    coded.to_csv(mart(art), sep=";", index=False)
    with pytest.raises(DataValidationError, match=r"column 'region' is numeric here: .* campaign\.client_table\."
                                                  r"categorical"):
        CampaignRun(table_campaign(art, "coded"), art).check_inputs()

    proc = cli("flows.campaign", f"campaign.client_table.path={mart(art)}", f"campaign.client_table.id_column={ID}",
               f"campaign.model={MODEL}", "campaign.filters=[]", f"paths.artifacts={art}")
    line = one_error_line(proc)
    assert "needs feature(s) ['region_east', 'region_north', 'region_south']" in line
    assert not (art / "campaigns").exists()


def test_a_region_absent_this_month_is_zeros_not_an_error(art):
    src = pd.read_csv(mart(art), sep=";")
    src.assign(region=src["region"].replace({"east": "north"})).to_csv(mart(art), sep=";", index=False)
    result = run_campaign(table_campaign(art, "noeast"), art)
    factors = pd.read_parquet(stage_checkpoint(result.folder, "factors"))
    assert (factors["region_east"] == 0).all() and factors["region_north"].sum() > 0


def test_bad_path_and_bad_id_column_stop_before_prefect_with_one_line(art):
    base = [f"campaign.model={MODEL}", "campaign.filters=[]", f"paths.artifacts={art}"]
    line = one_error_line(cli("flows.campaign", f"campaign.client_table.path={art.parent / 'nope.csv'}", *base))
    assert "nope.csv does not exist" in line and "campaign.client_table.path=" in line
    line = one_error_line(cli("flows.campaign", f"campaign.client_table.path={mart(art)}", *base))
    assert "no id column 'client_id'" in line and f"'{ID}'" in line and "campaign.client_table.id_column=" in line
    assert not (art / "campaigns").exists()


def test_ids_must_be_whole_numbers_once_each(art):
    src = pd.read_csv(mart(art), sep=";")
    src.assign(**{ID: "C" + src[ID].astype(str)}).to_csv(mart(art), sep=";", index=False)
    with pytest.raises(DataValidationError, match=r"without a whole-number client id \(e.g. \['C70000'"):
        CampaignRun(table_campaign(art, "textids"), art).check_inputs()
    pd.concat([src, src.iloc[:3]]).to_csv(mart(art), sep=";", index=False)
    with pytest.raises(DataValidationError, match=r"3 row\(s\)|6 row\(s\) repeat a client id"):
        CampaignRun(table_campaign(art, "dups"), art).check_inputs()



# --------------------------------------------------------------------------- reading a large table
def as_parquet_folder(art: Path) -> Path:
    """The mart as a folder of two Parquet parts, rows in no client order."""
    src = pd.read_csv(mart(art), sep=";").sample(frac=1.0, random_state=4)
    folder = art.parent / "mart_parts"
    folder.mkdir()
    half = len(src) // 2
    src.iloc[:half].to_parquet(folder / "part-0.parquet", index=False, row_group_size=300)
    src.iloc[half:].to_parquet(folder / "part-1.parquet", index=False, row_group_size=300)
    return folder


def test_a_parquet_mart_gives_the_csv_campaign_with_a_narrow_client_base(art):
    """The same mart as unordered Parquet parts: the same clients, scores, groups and offers as
    the CSV; the client base holds the ids and the filtered column only, and the features
    are made from the table's columns partition by partition (no partition folder left)."""
    by_csv = run_campaign(table_campaign(art, "from_csv"), art)
    folder = as_parquet_folder(art)
    cfg = table_campaign(art, "from_parquet", client_table={"path": str(folder), "id_column": ID, "sep": None,
                                                             "categorical": None})
    by_parquet = run_campaign(cfg, art, partitions=3)
    a = pd.read_parquet(by_csv.folder / "campaign.parquet").drop(columns="campaign_id")
    b = pd.read_parquet(by_parquet.folder / "campaign.parquet").drop(columns="campaign_id")
    pd.testing.assert_frame_equal(a, b)
    fa = pd.read_parquet(stage_checkpoint(by_csv.folder, "factors"))
    fb = pd.read_parquet(stage_checkpoint(by_parquet.folder, "factors"))
    pd.testing.assert_frame_equal(fa, fb, check_dtype=False)
    base = pd.read_parquet(stage_checkpoint(by_parquet.folder, "client_base"))
    assert list(base.columns) == ["client_id", "email_opt_out"] and base["client_id"].is_monotonic_increasing
    assert by_parquet.manifest["stages"]["factors"]["rows"] == len(b)
    assert not list((by_parquet.folder / "stages").glob(".partitions-*"))


def test_the_reader_gives_batches_of_the_asked_columns_and_routes_rows_to_partition_files(art, tmp_path):
    """Batches hold ``client_id`` and the asked columns only, never more rows than asked; the
    partition files hold exactly the partitions' clients (others left out), each made into the
    features the whole table gives them."""
    from tasks.campaign.client_table import ClientTable, table_features, table_partition, write_partition_files
    from tasks.campaign.config import ClientTableConfig

    folder = as_parquet_folder(art)
    cfg = ClientTableConfig(path=str(folder), id_column=ID, sep=None, categorical=None)
    for path in (folder, mart(art)):
        table = ClientTable(cfg, path)
        batches = list(table.batches(["age", "region"], rows=700))
        assert all(b.column_names == ["client_id", "age", "region"] and b.num_rows <= 700 for b in batches)
        assert sum(b.num_rows for b in batches) == 2500
    whole = ClientTable(cfg, folder).rows(["age", "spend_90d", "visits", "region"])
    ids = whole["client_id"].to_numpy()[::3]                   # a subset, cut into three partitions
    parts = [ids[:300], ids[300:600], ids[600:]]
    files = write_partition_files(ClientTable(cfg, folder), ["age", "spend_90d", "visits", "region"], parts,
                                  tmp_path / "parts")
    features = ["age", "spend_90d", "visits", "region_east", "region_north", "region_south", "region_west"]
    for part, f in zip(parts, files):
        made = table_partition(features, [], f)
        assert made["client_id"].tolist() == part.tolist()
        expected = table_features(whole.loc[whole["client_id"].isin(part)].reset_index(drop=True), features, [])
        pd.testing.assert_frame_equal(made, expected, check_dtype=False)
    assert (made["region_west"] == 0).all()                    # a value the table lacks: zeros


def test_a_longer_column_name_owns_its_one_hot_features():
    """``email`` (an address per client) and ``email_opt_out`` (yes/no) both prefix
    ``email_opt_out_no``: the opt-out makes the feature, the addresses are never encoded."""
    from tasks.campaign.client_table import feature_sources, missing_features, table_features

    frame = pd.DataFrame({"client_id": [1, 2, 3], "email": ["a@x", "b@x", "c@x"],
                          "email_opt_out": ["yes", "no", "no"], "age": [30.0, None, 50.0]})
    features = ["age", "email_opt_out_no", "email_opt_out_yes"]
    assert feature_sources(dict(frame.dtypes), features, []) == ["email_opt_out", "age"]
    assert missing_features(dict(frame.dtypes), features, []) == {}
    made = table_features(frame, features, [])
    assert list(made.columns) == ["client_id", *features]
    assert made["email_opt_out_no"].tolist() == [0, 1, 1]


def test_parquet_ids_are_checked_like_csv_ids(art):
    src = pd.read_csv(mart(art), sep=";")
    path = art.parent / "mart.parquet"
    pd.concat([src, src.iloc[:2]]).to_parquet(path, index=False)
    over = {"client_table": {"path": str(path), "id_column": ID, "sep": None, "categorical": None}}
    with pytest.raises(DataValidationError, match=r"4 row\(s\) repeat a client id"):
        CampaignRun(table_campaign(art, "pq_dups", **over), art).check_inputs()
    src.assign(**{ID: src[ID] + 0.5}).to_parquet(path, index=False)
    with pytest.raises(DataValidationError, match=r"2500 row\(s\) without a whole-number client id"):
        CampaignRun(table_campaign(art, "pq_halves", **over), art).check_inputs()
    assert not (art / "campaigns").exists()


def test_parquet_files_of_one_table_may_differ_in_number_width_but_not_in_kind(art):
    """A column whole in one file and fractional in another is read as floats everywhere (the
    same campaign as the CSV's); a column of numbers in one file and text in another is one
    error naming the folder."""
    from tasks.campaign.client_table import ClientTable
    from tasks.campaign.config import ClientTableConfig

    src = pd.read_csv(mart(art), sep=";")
    folder = art.parent / "mixed"
    folder.mkdir()
    first = src.iloc[:1000].assign(visits=src["visits"].iloc[:1000].astype("int64"))
    first.to_parquet(folder / "a.parquet", index=False)
    src.iloc[1000:].assign(visits=src["visits"].iloc[1000:].astype(float)).to_parquet(folder / "b.parquet", index=False)
    cfg = ClientTableConfig(path=str(folder), id_column=ID, sep=None, categorical=None)
    assert str(ClientTable(cfg, folder).dtypes()["visits"]) == "float64"
    rows = ClientTable(cfg, folder).rows(["visits"])
    assert len(rows) == 2500 and rows["visits"].dtype == "float64"
    over = {"client_table": {"path": str(folder), "id_column": ID, "sep": None, "categorical": None}}
    a = run_campaign(table_campaign(art, "mixed_csv"), art)
    b = run_campaign(table_campaign(art, "mixed_pq", **over), art, partitions=2)
    pd.testing.assert_frame_equal(pd.read_parquet(a.folder / "campaign.parquet").drop(columns="campaign_id"),
                                  pd.read_parquet(b.folder / "campaign.parquet").drop(columns="campaign_id"))

    src.iloc[1000:].assign(visits="many").to_parquet(folder / "b.parquet", index=False)
    with pytest.raises(DataValidationError, match=r"Parquet files of .*mixed disagree on a column's type .*visits"):
        CampaignRun(table_campaign(art, "mixed_bad", **over), art).check_inputs()


def test_on_dask_the_workers_read_the_partition_files_and_give_the_local_campaign(art, prefect_env, monkeypatch):
    """runner=dask over a Parquet mart: the same campaign as the local run; the flow process
    reads the mart's files only for the ids and the filtered column (the feature columns pass
    it in batches on their way to the partition files) and never reads a partition file."""
    from flows.campaign import campaign_flow
    from tests.test_dask_runner import driver_reads

    folder = as_parquet_folder(art)
    over = {"client_table": {"path": str(folder), "id_column": ID, "sep": None, "categorical": None}}
    local = run_campaign(table_campaign(art, "pq_local", **over), art, partitions=3)
    reads = driver_reads(monkeypatch)
    out = campaign_flow(campaign=asdict(table_campaign(art, "pq_dask", **over)), artifacts=str(art),
                        runner={"kind": "dask", "n_workers": 2, "threads_per_worker": 1, "partitions": 3})
    monkeypatch.undo()
    pd.testing.assert_frame_equal(pd.read_parquet(local.folder / "campaign.parquet").drop(columns="campaign_id"),
                                  pd.read_parquet(Path(out["folder"]) / "campaign.parquet").drop(columns="campaign_id"))
    mart_reads = [(p, n) for p, n in reads if Path(p).parent == folder]
    assert mart_reads and all(n == 2 for _, n in mart_reads), mart_reads
    assert not [p for p, _ in reads if Path(p).name.startswith("table-")]
