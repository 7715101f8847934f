"""Nothing silently wrong after a fault: damaged checkpoints are recomputed, damaged frozen files
stop every reader with a way to recover, the inputs are checked before anything is written, CSV
tables and the as-of promise hold, and SIGTERM stops a running campaign within seconds.

A small synthetic world and a real LightGBM model (tests/test_campaign.py's helpers) are built
once; campaigns run through the plain pipeline and, where the command line is the point,
through ``python -m flows.campaign`` (tests/test_campaign_cli.py's ``_cli``).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
import yaml

from flows.simulate_responses import simulate_campaign_responses
from tasks.campaign.checkpoints import FAULT_ENV
from tasks.campaign.frozen import read_frozen_campaign
from tasks.campaign.run import run_campaign
from tasks.campaign.stages import CHECKPOINTED, STAGES, stage_checkpoint
from tasks.core.errors import DataValidationError, StateError
from tasks.core.io import json_text, read_json, sha256_file
from tasks.core.layout import Layout
from tasks.evaluation import readout as ev
from tests.test_campaign import MODEL, WORLD, build_world, campaign, link_root
from tests.test_campaign_cli import PROJECT_ROOT, _cli

SERVER_LINE = "Starting temporary server"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("integrity_world")
    build_world(root, n_clients=2000, seed=3)
    return root


@pytest.fixture(scope="module")
def reference(world, tmp_path_factory) -> Path:
    """campaign.parquet of the uninterrupted campaign ``ic``."""
    res = run_campaign(campaign("ic"), link_root(world, tmp_path_factory.mktemp("integrity_ref") / "artifacts"))
    return res.folder / "campaign.parquet"


@pytest.fixture
def root(world, tmp_path) -> Path:
    return link_root(world, tmp_path / "artifacts")


def flip_middle(path: Path, n: int = 16) -> None:
    """Invert ``n`` bytes in the middle of a file's data (for Parquet: of its pages; for a
    checkpoint's part folder: of its first part)."""
    if path.is_dir():
        path = sorted(path.glob("part-*.parquet"))[0]
    data = bytearray(path.read_bytes())
    end = len(data)
    if data[-4:] == b"PAR1":  # stay out of the footer: the middle of the data pages
        end = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    mid = (4 + end) // 2 - n // 2
    for i in range(mid, mid + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def private_copy(root: Path, name: str) -> Path:
    """Replace the shared ``root/<name>`` link by a private copy the test may change."""
    shared = (root / name).resolve()
    (root / name).unlink()
    shutil.copytree(shared, root / name)
    return root / name


def assert_one_error_line(res: subprocess.CompletedProcess, *expect: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr[-3000:])
    assert "Traceback" not in res.stderr + res.stdout
    lines = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, res.stderr
    for text in expect:
        assert text in lines[0], lines[0]
    return lines[0]


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("stage", CHECKPOINTED)
def test_damaged_checkpoint_is_recomputed_and_the_campaign_is_unchanged(stage, root, reference, caplog):
    cfg = campaign("ic")
    run_campaign(cfg, root, until="offer")
    path = stage_checkpoint(Layout(root).campaign("ic"), stage)
    flip_middle(path)
    with caplog.at_level(logging.WARNING, logger="uplift.campaign"):
        res = run_campaign(cfg, root)
    # only the damaged stage is recomputed: its rows come out the same, so later keys hold
    assert res.computed == [stage, "freeze"], res.computed
    warned = [r.getMessage() for r in caplog.records if "does not verify" in r.getMessage()]
    assert len(warned) == 1 and path.name in warned[0] and f"recomputing stage {stage}" in warned[0]
    assert sha256_file(res.folder / "campaign.parquet") == sha256_file(reference)


def test_damaged_offer_checkpoint_through_the_command_line(world, reference, tmp_path):
    root = link_root(world, tmp_path / "artifacts")
    conf = tmp_path / "ic.yaml"
    conf.write_text(yaml.safe_dump(asdict(campaign("ic"))))
    run_campaign(campaign("ic"), root, until="offer")
    flip_middle(stage_checkpoint(Layout(root).campaign("ic"), "offer"))
    res = _cli([f"conf={conf}", f"paths.artifacts={root}"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert "08_offer.parquet does not verify" in res.stderr + res.stdout
    assert "sort reused, split reused, offer computed, freeze computed" in res.stdout
    assert sha256_file(Layout(root).campaign("ic").table) == sha256_file(reference)


# --------------------------------------------------------------------------- frozen files
def test_damaged_frozen_table_stops_every_reader_and_the_hint_recovers(root, reference):
    cfg = campaign("ic")
    paths = run_campaign(cfg, root).folder
    frozen = Layout(root).campaign("ic")
    flip_middle(frozen.table)
    hint = r"do not verify \(campaign.parquet has sha256 .*delete manifest.json, campaign.parquet and summary.md"
    with pytest.raises(StateError, match=hint):
        run_campaign(cfg, root)
    with pytest.raises(StateError, match=hint):
        read_frozen_campaign(frozen)
    with pytest.raises(StateError, match=hint):
        ev.load_frozen_campaign(paths)
    with pytest.raises(StateError, match=hint):
        ev.check_frozen(paths)
    with pytest.raises(StateError, match=hint):
        simulate_campaign_responses(root, "ic")
    assert not frozen.responses.exists()
    # the recovery the message gives: recompute the frozen files from the checkpoints
    for f in (frozen.manifest, frozen.table, frozen.summary):
        f.unlink()
    res = run_campaign(cfg, root)
    assert res.computed == ["freeze"]
    assert sha256_file(frozen.table) == sha256_file(reference)
    manifest, table = read_frozen_campaign(frozen)
    assert manifest["campaign_sha256"] == sha256_file(reference) and len(table) == manifest["counts"]["clients"]


def test_truncated_or_edited_manifest_is_refused(root):
    cfg = campaign("ic")
    run_campaign(cfg, root)
    frozen = Layout(root).campaign("ic")
    good = frozen.manifest.read_bytes()
    frozen.manifest.write_bytes(good[: len(good) // 2])
    with pytest.raises(StateError, match="manifest.json is not valid JSON"):
        run_campaign(cfg, root)
    with pytest.raises(StateError, match="manifest.json is not valid JSON"):
        ev.load_frozen_campaign(frozen.folder)
    # valid JSON with one changed value: caught by the manifest's own hash
    edited = json.loads(good)
    edited["counts"]["offers_total"] += 1
    frozen.manifest.write_text(json_text(edited))
    with pytest.raises(StateError, match="does not match its own manifest_sha256"):
        read_frozen_campaign(frozen)
    frozen.manifest.write_bytes(good)
    assert run_campaign(cfg, root).noop


def test_damaged_frozen_files_on_the_command_line(world, tmp_path):
    root = link_root(world, tmp_path / "artifacts")
    conf = tmp_path / "ic.yaml"
    conf.write_text(yaml.safe_dump(asdict(campaign("ic"))))
    run_campaign(campaign("ic"), root)
    frozen = Layout(root).campaign("ic")
    flip_middle(frozen.table)
    for module, arg in (("flows.campaign", f"conf={conf}"), ("flows.simulate_responses", "campaign_id=ic"),
                        ("flows.evaluate", "campaign_id=ic")):
        res = _run(module, [arg, f"paths.artifacts={root}"])
        assert_one_error_line(res, "campaign 'ic': the frozen files", "do not verify", "delete manifest.json")
        assert SERVER_LINE not in res.stderr + res.stdout
    frozen.manifest.write_text('{"campaign_id": "ic", "campaign_sha')
    res = _cli([f"conf={conf}", f"paths.artifacts={root}"])
    assert_one_error_line(res, "manifest.json is not valid JSON")
    assert not frozen.responses.exists()


def _run(module: str, args: list[str]) -> subprocess.CompletedProcess:
    if module == "flows.campaign":
        return _cli(args)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


# --------------------------------------------------------------------------- inputs first
def test_bad_inputs_are_caught_before_prefect_starts_and_nothing_is_written(world, tmp_path):
    root = link_root(world, tmp_path / "artifacts")
    conf = tmp_path / "ic.yaml"
    conf.write_text(yaml.safe_dump(asdict(campaign("ic"))))
    models = private_copy(root, "models")
    version = models / MODEL / "v0001"

    def run(*extra: str) -> str:
        res = _cli([f"conf={conf}", f"paths.artifacts={root}", *extra])
        line = assert_one_error_line(res)
        assert SERVER_LINE not in res.stderr + res.stdout
        assert not (root / "campaigns").exists()
        return line

    assert "dataset at" in run("campaign.data=nowhere")
    assert "model no_such_model: no champion" in run("campaign.model=no_such_model")
    model_bytes = (version / "model.joblib").read_bytes()
    (version / "model.joblib").write_bytes(model_bytes[:-64] + bytes(64))
    assert "checksum mismatch" in run()
    (version / "model.joblib").write_bytes(model_bytes)
    (version / "metadata.json").rename(tmp_path / "metadata.json")
    line = run()
    assert f"model {MODEL}: version 'v0001'" in line and "has no metadata.json" in line and "+action=promote" in line
    (tmp_path / "metadata.json").rename(version / "metadata.json")
    assert run_campaign(campaign("ic"), root).computed == STAGES


@pytest.mark.parametrize("table, column", [("purchases", "timestamp"), ("messages", "timestamp"),
                                           ("clients", "registration_date")])
def test_events_past_the_as_of_date_stop_the_run(table, column, root):
    data = private_copy(root, "data") / WORLD
    as_of = pd.Timestamp(read_json(data / "manifest.json")["as_of"])
    df = pd.read_parquet(data / f"{table}.parquet")
    late = df.iloc[[7]].copy()
    late[column] = as_of + pd.Timedelta(days=1 if table == "clients" else 0)  # events: at as_of is too late
    unique = {"clients": "client_id", "purchases": "transaction_id"}.get(table)
    if unique:
        late[unique] = df[unique].max() + 1
    pd.concat([df, late], ignore_index=True).to_parquet(data / f"{table}.parquet", index=False)
    word = "after" if table == "clients" else "at or after"
    with pytest.raises(DataValidationError, match=rf"table '{table}', column '{column}': 1 row\(s\) {word} "
                                                  rf"the as-of date {as_of.date()}; e.g. rows \[{len(df)}\]"):
        run_campaign(campaign("ic"), root)
    assert not (root / "campaigns").exists()


def test_a_dataset_of_csv_tables_gives_the_same_campaign(root, reference):
    data = private_copy(root, "data") / WORLD
    for table, sep in (("clients", ";"), ("purchases", ","), ("messages", "\t")):
        df = pd.read_parquet(data / f"{table}.parquet")
        if table == "clients":  # yes/no booleans, as spreadsheets write them
            df["marketing_opt_out"] = df["marketing_opt_out"].map({True: "yes", False: "no"})
        (data / f"{table}.parquet").unlink()
        df.to_csv(data / f"{table}.{'tsv' if sep == chr(9) else 'csv'}", sep=sep, index=False)
    res = run_campaign(campaign("ic"), root)
    assert res.computed == STAGES
    pd.testing.assert_frame_equal(pd.read_parquet(res.folder / "campaign.parquet"), pd.read_parquet(reference))
    # the CSV goes through the same validator: a gap in an integer column is named with its rows
    clients = pd.read_csv(data / "clients.csv", sep=";")
    clients.loc[[3, 11], "age"] = None
    clients.to_csv(data / "clients.csv", sep=";", index=False)
    shutil.rmtree(res.folder)
    with pytest.raises(DataValidationError, match=r"table 'clients', column 'age': 2 missing value\(s\) \(NaN\) "
                                                  r"in an integer column; e.g. rows \[3, 11\]"):
        run_campaign(campaign("ic"), root)


# --------------------------------------------------------------------------- SIGTERM
def test_sigterm_stops_a_running_campaign_within_seconds_and_it_resumes(world, reference, tmp_path):
    root = link_root(world, tmp_path / "artifacts")
    conf = tmp_path / "ic.yaml"
    conf.write_text(yaml.safe_dump(asdict(campaign("ic"))))
    args = [f"conf={conf}", f"paths.artifacts={root}"]
    folder = Layout(root).campaign("ic").folder
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update({FAULT_ENV: "split:hang", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300"})
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "flows.campaign", *args], cwd=PROJECT_ROOT, env=env,
                                stdout=out, stderr=err, text=True, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while not (folder / "stages" / "06_sort.parquet").exists():  # now hanging in split
                assert proc.poll() is None and time.monotonic() < deadline, "the run ended before split"
                time.sleep(0.2)
            time.sleep(1.0)
            t0 = time.monotonic()
            os.killpg(proc.pid, signal.SIGTERM)
            code = proc.wait(timeout=30)
            seconds = time.monotonic() - t0
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    assert code == 128 + signal.SIGTERM, stderr[-3000:]
    assert seconds < 10, seconds
    assert "Traceback" not in stdout + stderr
    said = [line for line in stderr.splitlines() if line.startswith("interrupted")]
    assert said == ["interrupted (SIGTERM): the run stopped; finished stages are kept, run the same command "
                    "again to resume"], stderr[-3000:]
    assert sorted(p.name for p in (folder / "stages").glob("*.parquet"))[-1] == "06_sort.parquet"
    assert not (folder / "campaign.parquet").exists()

    done = _cli(args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sort reused, split computed, offer computed, freeze computed" in done.stdout
    assert sha256_file(folder / "campaign.parquet") == sha256_file(reference)
