"""The campaign workbench (python -m flows.campaigns) and the campaign run's console progress,
on real campaigns made through the product: a small synthetic world, a real LightGBM model,
campaigns run by the pipeline and the command line, responses drawn from the world's truth
and a real evaluation through the Prefect flow."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from flows._progress import heartbeat, progress_mapper
from flows.simulate_responses import simulate_campaign_responses
from tasks.campaign import catalog
from tasks.campaign.run import run_campaign, sequential_map
from tasks.campaign.stages import CHECKPOINTED, STAGES
from tasks.core.errors import ConfigError, NotFoundError, StateError
from tasks.core.io import atomic_write_json, read_json
from tasks.core.layout import Layout
from tasks.core.locks import PidLock
from tests.test_campaign import build_world, campaign, link_root

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], env_extra: dict | None = None, timeout: int = 400) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _evaluate(root: Path, cid: str) -> dict:
    from flows.evaluate import evaluate_campaign_flow

    return evaluate_campaign_flow(cid, str(root), settings={"n_boot": 20})


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("workbench_world")
    build_world(root, n_clients=2500, seed=3)
    return root


@pytest.fixture
def root(world, tmp_path) -> Path:
    return link_root(world, tmp_path / "artifacts")


def _states(root: Path) -> dict[str, str]:
    return {e.campaign_id: e.state for e in catalog.list_campaigns(root)}


# --------------------------------------------------------------------------- states
def test_every_state_is_read_from_the_files(prefect_env, root):
    assert catalog.list_campaigns(root) == []
    assert "no campaigns" in catalog.render_listing([], root)

    (Layout(root).campaigns / "empty").mkdir(parents=True)
    run_campaign(campaign("part"), root, until="split")
    for cid in ("frz", "resp", "done"):
        run_campaign(campaign(cid), root)
    simulate_campaign_responses(root, "resp")
    simulate_campaign_responses(root, "done")
    _evaluate(root, "done")
    assert _states(root) == {"done": "evaluated", "empty": "empty", "frz": "frozen", "part": "computed",
                             "resp": "responses"}

    entries = {e.campaign_id: e for e in catalog.list_campaigns(root)}
    part = entries["part"]
    assert part.stages_done == STAGES.index("split") + 1 and part.model == "synthetic_uplift v0001"
    assert part.date is None and part.offers is None and part.note == ""
    assert catalog.render_detail(catalog.describe_campaign(root, "part")).startswith(
        "campaign part: computed (7 of 8 checkpoints)")
    frz = entries["frz"]
    manifest = read_json(Layout(root).campaign("frz").manifest)
    assert (frz.date, frz.dataset, frz.policy) == (manifest["campaign_date"], "tiny", "top_fraction=0.3")
    assert (frz.clients, frz.offers) == (manifest["counts"]["clients"], manifest["counts"]["offers_total"])
    assert frz.effect is None and entries["resp"].effect is None

    # the headline is the evaluation's targeted-vs-control response effect, with its interval
    metrics = read_json(Layout(root).evaluation_metrics("done"))
    head = entries["done"].effect
    assert head is not None
    primary = metrics.get("primary") or metrics["targeted_vs_control"]["response"]
    assert (head.estimate, head.ci_low, head.ci_high) == (primary["estimate"], primary["ci_low"], primary["ci_high"])
    listing = catalog.render_listing(list(entries.values()), root)
    line = next(x for x in listing.splitlines() if x.startswith("done "))
    assert "evaluated" in line and catalog.fmt_headline(head) in line
    assert f"{100 * head.estimate:+.2f} pp" in line
    assert re.search(r"^part .* computed \(7/8\)", listing, flags=re.M)

    # a run holding the lock shows as running
    with PidLock(Layout(root).campaign("part").lock):
        assert _states(root)["part"] == "running"
    assert _states(root)["part"] == "computed"


def test_damaged_and_stale_folders_are_listed_not_fatal(prefect_env, root):
    run_campaign(campaign("ok"), root)
    simulate_campaign_responses(root, "ok")
    _evaluate(root, "ok")
    layout = Layout(root)
    # a copy whose manifest is cut in half
    shutil.copytree(layout.campaign("ok").folder, layout.campaign("broken").folder)
    text = layout.campaign("broken").manifest.read_text()
    layout.campaign("broken").manifest.write_text(text[: len(text) // 2])
    # an evaluation older than the campaign it describes (the campaign was made again since)
    shutil.copytree(layout.campaign("ok").folder, layout.campaign("stale").folder)
    shutil.copytree(layout.evaluation("ok"), layout.evaluation("stale"))
    m = read_json(layout.campaign("stale").manifest)
    m["frozen_at"] = "2999-01-01T00:00:00+00:00"
    atomic_write_json(m, layout.campaign("stale").manifest)
    # an evaluation whose metrics.json is not JSON
    shutil.copytree(layout.campaign("ok").folder, layout.campaign("badeval").folder)
    layout.evaluation_metrics("badeval").parent.mkdir(parents=True)
    layout.evaluation_metrics("badeval").write_text("{not json")

    # a run killed between campaign.parquet and manifest.json (the manifest is written last)
    shutil.copytree(layout.campaign("ok").folder, layout.campaign("unfinished").folder)
    layout.campaign("unfinished").manifest.unlink()

    # a hand-edited manifest whose fields hold the wrong types
    shutil.copytree(layout.campaign("ok").folder, layout.campaign("odd").folder)
    atomic_write_json({"counts": [1], "model": "x", "policy": 3, "data": None, "stages": [],
                       "threshold": "high"}, layout.campaign("odd").manifest)

    entries = {e.campaign_id: e for e in catalog.list_campaigns(root)}
    assert entries["ok"].state == "evaluated"
    odd = entries["odd"]
    assert (odd.state, odd.clients, odd.model, odd.policy, odd.dataset) == ("responses", None, None, None, None)
    assert "campaign odd: responses" in catalog.render_detail(catalog.describe_campaign(root, "odd"))
    assert entries["unfinished"].state == "computed" and "freeze did not finish" in entries["unfinished"].note
    assert entries["broken"].state == "damaged" and "manifest.json unreadable" in entries["broken"].note
    assert entries["stale"].state == "responses" and "evaluate again" in entries["stale"].note
    assert entries["badeval"].state == "damaged" and "metrics.json unreadable" in entries["badeval"].note
    listing = catalog.render_listing(list(entries.values()), root)
    assert "broken: manifest.json unreadable" in listing and "stale: evaluation older" in listing


def test_headline_lookup_takes_whichever_key_holds_it():
    effect = {"estimate": 0.012, "ci_low": 0.004, "ci_high": 0.02, "p_value": 0.003}
    old = {"alpha": 0.05, "targeted_vs_control": {"response": effect, "revenue": {"estimate": 9.0}}}
    h = catalog.headline_effect(old)
    assert (h.estimate, h.ci_low, h.ci_high, h.outcome, h.level) == (0.012, 0.004, 0.02, "response", 0.95)
    assert catalog.fmt_headline(h) == "+1.20 pp [+0.40, +2.00]"
    assert catalog.fmt_headline(h, long=True) == "+1.20 pp (95% CI +0.40 to +2.00, p = 0.003)"
    new = {"alpha": 0.1, "primary": {"comparison": "targeted_vs_control", "outcome": "response", **effect,
                                     "estimate": 0.02, "label": "offered vs control"}}
    h = catalog.headline_effect({**old, **new})
    assert (h.estimate, h.level, h.label) == (0.02, 0.9, "offered vs control")
    assert catalog.fmt_headline(h).endswith("90% CI")
    assert catalog.headline_effect({"primary": {"outcome": "revenue", **effect}}).outcome == "revenue"
    for broken in ({}, {"targeted_vs_control": {"response": {"estimate": float("nan"), "ci_low": 0, "ci_high": 1}}},
                   {"targeted_vs_control": {"response": {"estimate": 0.1}}}, {"primary": "x"},
                   {"targeted_vs_control": ["not", "a", "dict"]}):
        assert catalog.headline_effect(broken) is None
    assert catalog.fmt_headline(None) == "n/a"


# --------------------------------------------------------------------------- show and export
def test_show_and_export_of_an_evaluated_campaign(prefect_env, root):
    run_campaign(campaign("c1"), root)
    simulate_campaign_responses(root, "c1")
    _evaluate(root, "c1")
    path, rows = catalog.export_offer_list(root, "c1")
    table = pd.read_parquet(Layout(root).campaign("c1").table)
    assert path == Layout(root).campaign("c1").folder / "offers.csv"

    # the CSV round-trips to the frozen campaign's columns, in rank order
    back = pd.read_csv(path)
    assert list(back.columns) == ["client_id", "group", "offer", "score", "rank"]
    assert set(back["offer"]) == {0, 1}
    expected = table[["client_id", "group", "offer", "score", "rank"]].assign(offer=table["offer"].astype(int))
    pd.testing.assert_frame_equal(back, expected.astype({"group": object}), check_dtype=False)
    assert (back["score"].to_numpy() == table["score"].to_numpy()).all()  # full precision
    assert len(rows) == len(table) and int(back["offer"].sum()) == int(table["offer"].sum())
    ppath, _ = catalog.export_offer_list(root, "c1", "parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(ppath), table[["client_id", "group", "offer", "score", "rank"]])

    d = catalog.describe_campaign(root, "c1")
    assert [s["stage"] for s in d.stages] == STAGES
    manifest = read_json(Layout(root).campaign("c1").manifest)
    assert [s["rows"] for s in d.stages] == [manifest["stages"][s]["rows"] for s in STAGES]
    assert [g["group"] for g in d.groups] == ["targeted", "random_target", "control", "total"]
    labels = [label for label, _ in d.files]
    assert {"campaign table", "manifest", "responses", "offer list (csv)", "offer list (parquet)",
            "evaluation metrics", "evaluation report (md)"} <= set(labels)
    page = catalog.render_detail(d)
    assert page.startswith("campaign c1: evaluated")
    assert f"score >= {manifest['threshold']['score_cutoff']:.4g}" in page
    for s in STAGES:
        assert re.search(rf"^  {s}\s+{manifest['stages'][s]['rows']:,}\s", page, flags=re.M), s
    assert "primary effect:" in page and catalog.fmt_headline(d.evaluation["headline"], long=True) in page
    assert str(path.resolve()) in page


def test_export_refuses_what_it_cannot_export(root):
    run_campaign(campaign("half"), root, until="offer")
    with pytest.raises(StateError, match="not frozen"):
        catalog.export_offer_list(root, "half")
    assert not Layout(root).campaign("half").offer_list().exists()
    with pytest.raises(NotFoundError, match="did you mean campaign_id=half"):
        catalog.export_offer_list(root, "hlaf")
    with pytest.raises(NotFoundError, match="campaigns there: half"):
        catalog.describe_campaign(root, "../data")
    run_campaign(campaign("full"), root)
    with pytest.raises(ConfigError, match="use one of csv, parquet"):
        catalog.export_offer_list(root, "full", "xlsx")
    assert sorted(p.name for p in Layout(root).campaign("full").folder.iterdir()) == [
        "campaign.parquet", "manifest.json", "stages", "summary.md"]
    d = catalog.describe_campaign(root, "half")
    assert [s["rows"] is None for s in d.stages] == [False] * 8 + [True]
    assert "not yet" in catalog.render_detail(d)


def test_cli_errors_are_one_line(root):
    run_campaign(campaign("c9", **{"sample_fraction": 0.3}), root, until="score")
    for args, expect in (
        (["show", "c9"], "write the campaign as campaign_id=c9"),
        (["shwo"], "unknown action 'shwo'"),
        (["show"], "campaign_id=<id> is required"),
        (["show", "campaign_id=c8"], "did you mean campaign_id=c9?"),
        (["export", "campaign_id=c9"], "is not frozen"),
    ):
        res = _run(["flows.campaigns", *args, f"paths.artifacts={root}"], timeout=120)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr and res.stderr.count("error: ") == 1 and expect in res.stderr, res.stderr


# --------------------------------------------------------------------------- progress
def test_heartbeat_speaks_only_while_a_block_runs():
    lines: list[str] = []
    with heartbeat(lines.append, "stage factors", every=0.02):
        time.sleep(0.2)
    assert lines and all(re.fullmatch(r"stage factors: still running, \d+ s", x) for x in lines)
    n = len(lines)
    time.sleep(0.1)
    assert len(lines) == n  # stopped with the block
    with heartbeat(lines.append, "quick", every=5):
        pass
    assert len(lines) == n


def test_progress_mapper_logs_each_partition_and_changes_nothing(tmp_path):
    from tasks.campaign.checkpoints import CheckpointStore
    from tasks.campaign.transforms import partition_ids

    def fake_partition(ids):
        return pd.DataFrame({"client_id": ids, "x": ids * 2})

    fake_partition.__name__ = "factor_partition"
    args = [(part,) for part in partition_ids(pd.RangeIndex(1000).to_numpy(), 3)]
    store = CheckpointStore(tmp_path / "a", ["factors"], parted=["factors"])
    plain = CheckpointStore(tmp_path / "b", ["factors"], parted=["factors"])
    lines: list[str] = []
    folder = store.begin("factors")
    out = progress_mapper(None, lines.append)(fake_partition, args, folder)
    assert lines == []  # lazy: a partition is computed when the stage asks for it (and writes it)
    plain_folder = plain.begin("factors")
    for a, b in zip(out, sequential_map(fake_partition, args, plain_folder)):
        assert (a.file, a.rows, a.sha256) == (b.file, b.rows, b.sha256)  # the same part, byte for byte
    assert lines[0] == "factors: 1,000 clients in 3 partitions"
    assert [re.match(r"factors: partition (\d)/3 done, (\d+) rows \(([\d,]+) of 1,000\)", x).groups()
            for x in lines[1:]] == [("1", "334", "334"), ("2", "333", "667"), ("3", "333", "1,000")]
    calls: list[int] = []

    def cluster(fn, a, f):
        calls.append(len(a))
        return sequential_map(fn, a, f)

    lines.clear()
    list(progress_mapper(cluster, lines.append)(fake_partition, args, store.begin("factors")))
    assert calls == [3] and lines[0] == "factors: 1,000 clients in 3 partitions sent to the cluster"
    assert lines[1].startswith("factors: 3 partitions back, 1,000 rows")


# --------------------------------------------------------------------------- the sequence a user runs
def test_cli_campaign_then_evaluation_then_listing(prefect_env, root):
    """python -m flows.campaign -> responses -> evaluation -> python -m flows.campaigns."""
    res = _run(["flows.campaign", "campaign.data=tiny", "campaign.id=seq", "runner.partitions=2",
                f"paths.artifacts={root}"], env_extra={"UPLIFT_HEARTBEAT_SECONDS": "0.05"})
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = read_json(Layout(root).campaign("seq").manifest)
    # stdout: each stage's name with its row count
    for s in STAGES:
        assert re.search(rf"^  {s}\s+computed\s+{manifest['stages'][s]['rows']:,}\s+\d+\.\d\d$", res.stdout,
                         flags=re.M), (s, res.stdout)
    assert "python -m flows.campaigns show campaign_id=seq" in res.stdout
    # the console log: stage lines with rows and time, partition progress, no bare completion lines
    log = res.stderr
    for s in STAGES:
        assert re.search(rf"stage {s}: computed, {manifest['stages'][s]['rows']:,} rows, \d+\.\d\d s", log), s
    assert re.search(r"factors: partition 2/2 done, [\d,]+ rows \([\d,]+ of [\d,]+\)", log)
    assert re.search(r"score: partition 2/2 done", log)
    assert re.search(r"stage \w+: still running, \d+ s", log)
    assert "Task run" in log and not re.search(r"Task run .* - Finished in state Completed\(\)", log)

    simulate_campaign_responses(root, "seq")
    assert "responses" in _run(["flows.campaigns", f"paths.artifacts={root}"], timeout=120).stdout
    metrics = _evaluate(root, "seq")
    listing = _run(["flows.campaigns", f"paths.artifacts={root}"], timeout=120)
    assert listing.returncode == 0, listing.stderr
    line = next(x for x in listing.stdout.splitlines() if x.startswith("seq "))
    head = catalog.headline_effect(metrics)
    assert "evaluated" in line and "tiny" in line and "top_fraction=0.3" in line
    assert catalog.fmt_headline(head) in line and f"{manifest['counts']['offers_total']:,}" in line

    shown = _run(["flows.campaigns", "show", "campaign_id=seq", f"paths.artifacts={root}"], timeout=120)
    assert shown.returncode == 0 and "campaign seq: evaluated" in shown.stdout and "primary effect" in shown.stdout
    exported = _run(["flows.campaigns", "export", "campaign_id=seq", f"paths.artifacts={root}"], timeout=120)
    out = Layout(root).campaign("seq").offer_list("csv")
    assert exported.returncode == 0 and str(out.resolve()) in exported.stdout
    assert len(pd.read_csv(out)) == manifest["counts"]["clients"]
    assert read_json(Layout(root).campaign("seq").manifest) == manifest
