"""The profile flow end to end: a small synthetic world, the real Hillstrom and iFood data."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from flows.profile import data_profile_flow
from tasks.core.config import SyntheticDataConfig, from_conf
from tasks.core.errors import ConfigError, NotFoundError
from tasks.core.layout import Layout
from tasks.profile.config import ProfileConfig
from tasks.profile.profiles import profile_table
from tasks.profile.report import build_report, render_markdown

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FAST = {"max_plot_columns": 4, "max_heatmap_columns": 8}
IFOOD_DROP = ["Z_CostContact", "Z_Revenue", "MntTotal", "MntRegularProds", "AcceptedCmpOverall"]


@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> tuple[Path, dict]:
    """A 300-client synthetic world written under a fresh artifacts root."""
    from dataclasses import asdict

    from tasks.data.synthetic.world import generate_world, write_world

    cfg = from_conf(SyntheticDataConfig, "data/synthetic", n_clients=300, name="tiny", seed=5)
    root = tmp_path_factory.mktemp("profile") / "artifacts"
    write_world(generate_world(cfg), root / "data" / "tiny", cfg)
    return root, asdict(cfg)


def _artifact_markdown(key: str) -> str:
    """The newest Prefect artifact with ``key``, read from the test server's REST API."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    body = {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1, "offset": 0}
    resp = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body, timeout=30)
    resp.raise_for_status()
    found = resp.json()
    assert found, f"no Prefect artifact with key {key}"
    return found[0]["data"]


def test_flow_on_a_small_synthetic_world(prefect_env, small_world):
    from factors import factor_set

    root, data = small_world
    names = factor_set("default")
    findings = data_profile_flow(
        data, artifacts=str(root), factors={"name": "default", "factors": names},
        settings=dict(FAST, max_rows=2000),
    )
    out = Layout(root).profile("tiny", "2026-01-01")
    assert findings["report"] == str(out / "report.md")
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    saved = json.loads((out / "findings.json").read_text())
    for table in ("clients", "purchases", "messages", "campaign_history"):
        assert f"## Table `{table}`" in md
    assert "truth" not in saved["row_counts"]
    history = pd.read_parquet(root / "data" / "tiny" / "campaign_history.parquet")
    assert saved["row_counts"]["campaign_history"] == len(history)
    # purchases and messages of 300 clients exceed 2000 rows: profiled on a sample, and the report says so
    assert {"purchases", "messages"} <= set(saved["sampled"])
    assert "seeded random sample of 2000 rows" in md
    assert "Naive uplift" in md and "factor set `default`" in md
    t, y = history["treatment"], history["response"]
    assert saved["naive_uplift"] == pytest.approx(y[t == 1].mean() - y[t == 0].mean())
    per_campaign = saved["arm_tests_by_group"]
    assert set(per_campaign) == set(history["campaign_id"].astype(str))
    for cid, part in history.groupby("campaign_id", observed=True):
        pt, pc = part["response"][part["treatment"] == 1], part["response"][part["treatment"] == 0]
        assert per_campaign[str(cid)]["uplift"] == pytest.approx(pt.mean() - pc.mean())
    assert page.count("data:image/png;base64,") == len(list((out / "plots").glob("*.png")))
    assert "## Summary" in _artifact_markdown("profile-tiny")


def test_flow_at_an_earlier_date_sees_only_earlier_campaigns(prefect_env, small_world):
    root, data = small_world
    findings = data_profile_flow(data, artifacts=str(root), factors={"name": "none", "factors": []},
                                 settings=dict(FAST, as_of="2025-07-01"))
    history = pd.read_parquet(root / "data" / "tiny" / "campaign_history.parquet")
    assert findings["row_counts"]["campaign_history"] == int((history["campaign_date"] < "2025-07-01").sum())
    md = (Layout(root).profile("tiny", "2025-07-01") / "report.md").read_text()
    assert "no factor set chosen" in md


def test_flow_failures_are_clear(prefect_env, small_world, tmp_path):
    root, data = small_world
    with pytest.raises(NotFoundError, match="python -m flows.generate"):
        data_profile_flow(dict(data, name="absent"), artifacts=str(root))
    with pytest.raises(ConfigError, match="after the world's as-of date"):
        data_profile_flow(data, artifacts=str(root), settings={"as_of": "2027-01-01"})
    with pytest.raises(ConfigError, match="not a date"):
        data_profile_flow(data, artifacts=str(root), settings={"as_of": "soon"})
    assert not (root / "profiles" / "absent").exists()


def test_cli_exits_2_with_one_message(prefect_env, tmp_path):
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ, PREFECT_API_URL=str(PREFECT_API_URL.value()))
    proc = subprocess.run(
        [sys.executable, "-m", "flows.profile", "data.name=nowhere", f"paths.artifacts={tmp_path}"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert "error: dataset at" in proc.stderr and "nowhere" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_hillstrom_arms_are_balanced(shared_data):
    from tasks.data.datasets import TabularDataConfig, load_tabular_dataset

    ds = load_tabular_dataset(from_conf(TabularDataConfig, "data/hillstrom",
                                        path=str(next((shared_data / "hillstrom").glob("*.csv")))), shared_data)
    (raw,) = ds.raw_tables.values()
    table = profile_table(raw, "hillstrom", from_conf(ProfileConfig, "profile/default", max_plot_columns=2), outcome="visit")
    (arm,) = table.arms
    assert arm.column == "segment"
    counts = dict(zip(arm.counts["value"], arm.counts["count"]))
    assert counts == raw["segment"].value_counts().to_dict() and len(counts) == 3
    assert arm.p_value > 0.5
    rates = arm.rates.set_index("arm")["rate"]
    assert rates["No E-Mail"] < rates["Womens E-Mail"]


def test_flow_on_ifood(prefect_env, shared_data, tmp_path):
    data = {"kind": "table", "name": "ifood", "path": str(shared_data / "ifood" / "ifood_df.csv"),
            "target": "Response", "features": "ifood", "drop": IFOOD_DROP}
    findings = data_profile_flow(data, artifacts=str(tmp_path), shared_data=str(shared_data),
                                 settings=dict(FAST, as_of="2026-02-01"))
    out = Layout(tmp_path).profile("ifood", "2026-02-01")
    md = (out / "report.md").read_text()
    raw = pd.read_csv(shared_data / "ifood" / "ifood_df.csv")
    assert findings["row_counts"] == {"ifood": len(raw)}
    assert f"Full-row duplicates: {int(raw.duplicated().sum())}." in md
    # the two cost/revenue constants of the file are flagged; the dropped columns are shown
    assert {"Z_CostContact", "Z_Revenue"} <= set(findings["constant_factors"])
    # MntTotal is the sum of the per-category amounts: an exact linear combination, VIF inf
    assert "MntTotal" in findings["collinear_factors"]
    assert "`MntTotal`: VIF inf (perfectly collinear with" in md
    assert findings["target_rate"] == pytest.approx(raw["Response"].mean())
    assert "Treatment balance" not in md and "MntTotal" in md
    assert (out / "report.html").stat().st_size > 0


def test_one_click_long_tables_are_keyed_by_client_and_period(shared_data):
    from flows.profile import profile_tabular
    from tasks.core.config import compose_config, to_dataclass

    cfg = to_dataclass(compose_config(["profile.max_plot_columns=2"]).profile, ProfileConfig, "profile")
    data = {"kind": "one_click", "name": "one_click"}
    tables, analysis = profile_tabular.fn(data, str(shared_data), cfg)
    by_name = {t.name: t for t in tables}
    raw = pd.read_csv(shared_data / "yandex_one_click" / "market_money.csv")
    assert by_name["market_money"].key == ["id", "Период"]
    assert by_name["market_money"].duplicates["key_rows"] == int(raw.duplicated(["id", "Период"], keep=False).sum())
    assert by_name["market_file"].key == ["id"]
    assert analysis.target == "activity_declined" and analysis.treatment is None
    bad = from_conf(ProfileConfig, "profile/default", table_keys={"market_money": ["client"]})
    with pytest.raises(ConfigError, match="table_keys.market_money"):
        profile_tabular.fn(data, str(shared_data), bad)


def test_large_history_is_sampled_before_factors_are_computed(small_world):
    from flows.profile import profile_world_factors

    root, _ = small_world
    history = pd.read_parquet(root / "data" / "tiny" / "campaign_history.parquet")
    cfg = from_conf(ProfileConfig, "profile/default", max_rows=50, max_plot_columns=2, max_heatmap_columns=4)
    a = profile_world_factors.fn(str(root / "data" / "tiny"), "2026-01-01", "2026-01-01",
                                 ["age", "tenure_days"], "two", cfg)
    assert a.sampled and a.n_rows == len(history) and a.profiled_rows == 50
    assert a.by_group["n"].sum() == 50
    md = render_markdown(build_report("tiny", "2026-01-01", [], a, cfg))
    assert "seeded random sample of 50 rows" in md and "sampled (above profile.max_rows=50): factor table" in md


def test_cli_body_profiles_hillstrom_from_its_data_config(prefect_env, shared_data, tmp_path):
    from flows.profile import run
    from tasks.core.config import compose_config

    cfg = compose_config(["data=hillstrom", f"paths.artifacts={tmp_path}", f"paths.shared_data={shared_data}",
                          "profile.as_of=2026-03-01", "profile.max_plot_columns=2", "profile.max_heatmap_columns=6"])
    findings = run(cfg)
    raw = pd.read_csv(cfg.data.path)
    assert findings["row_counts"] == {"hillstrom": len(raw)}
    assert findings["arm_tests"]["hillstrom.segment"]["p_value"] > 0.5
    kept = raw[raw["segment"].isin(["Womens E-Mail", "No E-Mail"])]
    rate = kept.groupby("segment")["visit"].mean()
    assert findings["naive_uplift"] == pytest.approx(rate["Womens E-Mail"] - rate["No E-Mail"])
    md = (Layout(tmp_path).profile("hillstrom", "2026-03-01") / "report.md").read_text()
    assert "treatment 1 = Womens E-Mail, 0 = No E-Mail" in md
