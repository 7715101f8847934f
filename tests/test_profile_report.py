"""Table and factor-table profiles and the rendered report, on hand-made frames."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from tasks.core.config import compose_config, from_conf, to_dataclass
from tasks.core.errors import ConfigError, DataValidationError
from tasks.core.report import fmt_value
from tasks.profile.config import ProfileConfig
from tasks.profile.profiles import profile_analysis, profile_table
from tasks.profile.report import build_report, render_html, render_markdown

FAST = from_conf(ProfileConfig, "profile/default", max_plot_columns=4, max_heatmap_columns=6)


def _uplift_frame(n: int = 600, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, n)
    x = rng.normal(size=n)
    y = (rng.random(n) < 0.1 + 0.1 * t * (x > 0)).astype(int)
    return pd.DataFrame(
        {
            "x": x,
            "x_twice": 2 * x,
            "noise": rng.normal(size=n),
            "leak": y + rng.normal(scale=0.01, size=n),
            "constant": np.ones(n),
            "flag": rng.random(n) < 0.3,
            "treatment": t,
            "response": y,
        }
    )


def test_profile_table_counts_duplicates_and_kinds():
    df = pd.DataFrame(
        {
            "id": [1, 2, 2, 3],
            "amount": [1.0, np.nan, np.nan, 4.0],
            "city": ["a", "b", "b", "a"],
            "day": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-02", "2025-01-05"]),
        }
    )
    t = profile_table(df, "orders", FAST, key=["id"])
    assert (t.n_rows, t.n_columns, t.sampled) == (4, 4, False)
    assert t.duplicates == {"full_row": 1, "key_rows": 2}
    assert t.kinds == {"id": "numeric", "amount": "numeric", "city": "categorical", "day": "datetime"}
    assert t.missing.set_index("column").loc["amount", "missing"] == 2
    assert t.categorical["city"]["count"].tolist() == [2, 2]
    assert t.datetimes.iloc[0]["n_unique"] == 3
    assert t.histograms is not None and t.histograms.startswith(b"\x89PNG")


def test_profile_table_samples_above_max_rows_and_says_so():
    df = pd.DataFrame({"a": np.arange(500), "b": np.arange(500) % 7})
    cfg = from_conf(ProfileConfig, "profile/default", max_rows=100, seed=1, max_plot_columns=2)
    t = profile_table(df, "big", cfg)
    assert t.sampled and t.profiled_rows == 100 and t.n_rows == 500
    assert t.numeric.set_index("column").loc["a", "count"] == 100
    md = render_markdown(build_report("demo", "2026-01-01", [t], None, cfg))
    assert "seeded random sample of 100 rows" in md
    assert "sampled (above profile.max_rows=100): big" in md


def test_arm_section_of_a_three_arm_table():
    df = pd.DataFrame({"segment": ["A"] * 100 + ["B"] * 100 + ["C"] * 100, "visit": [1, 0] * 150})
    t = profile_table(df, "rct", FAST, outcome="visit")
    (arm,) = t.arms
    assert arm.column == "segment" and arm.p_value == pytest.approx(1.0)
    assert arm.rates.set_index("arm")["rate"].tolist() == [0.5, 0.5, 0.5]
    skewed = pd.DataFrame({"segment": ["A"] * 200 + ["B"] * 100})
    (arm,) = profile_table(skewed, "rct", FAST).arms
    assert arm.p_value < 1e-6
    md = render_markdown(build_report("demo", "2026-01-01", [profile_table(skewed, "rct", FAST)], None, FAST))
    assert "possible sample-ratio mismatch" in md


def test_profile_analysis_flags_planted_leak_constant_and_collinear():
    df = _uplift_frame()
    factors = ["x", "x_twice", "noise", "leak", "constant", "flag"]
    a = profile_analysis(df, factors, "response", FAST, treatment="treatment")
    assert a.leaks == ["leak"]
    assert a.constants["column"].tolist() == ["constant"]
    assert set(a.collinear["column"]) == {"x", "x_twice"}
    assert all(math.isinf(v) for v in a.collinear["vif"])
    assert "constant" not in a.correlation.columns
    assert a.correlated_pairs[["a", "b"]].values.tolist() == [["x", "x_twice"]]
    assert a.rates["n"].sum() == len(df)
    t, y = df["treatment"], df["response"]
    assert a.uplift.uplift == pytest.approx(y[t == 1].mean() - y[t == 0].mean())
    assert a.crosstab.loc["total", "total"] == len(df)
    assert a.heatmap is not None and a.histograms is not None


def test_profile_analysis_rejects_bad_target_and_single_arm():
    df = _uplift_frame(50)
    bad = df.assign(response=df["response"].astype(float))
    bad.loc[3, "response"] = np.nan
    with pytest.raises(DataValidationError, match="'response'.*not 0/1"):
        profile_analysis(bad, ["x"], "response", FAST, treatment="treatment")
    with pytest.raises(DataValidationError, match="one arm"):
        profile_analysis(df.assign(treatment=1), ["x"], "response", FAST, treatment="treatment")
    with pytest.raises(DataValidationError, match="missing_factor"):
        profile_analysis(df, ["missing_factor"], "response", FAST)


def test_rendered_report_markdown_and_self_contained_html():
    df = _uplift_frame()
    table = profile_table(df, "history", FAST)
    a = profile_analysis(df, ["x", "x_twice", "noise", "leak", "constant", "flag"], "response", FAST, treatment="treatment")
    report = build_report("demo", "2026-01-01", [table], a, FAST, notes=["A hand-made frame."])
    md = render_markdown(report, image_dir="plots")
    assert md.startswith("# Data profile: demo (2026-01-01)")
    assert "possible leak: `leak`" in md
    assert "constant or almost constant factors: `constant`" in md
    for link in re.findall(r"\]\(plots/([^)]+)\)", md):
        assert link in report.images
    assert set(report.images) == {"history_histograms.png", "factor_histograms.png", "factor_correlation.png"}
    page = render_html(report)
    assert page.count("data:image/png;base64,") == len(report.images)
    assert "plots/" not in page and "<script" not in page
    assert "<code>leak</code>" in page
    assert "<a href='#s1'>Summary</a>" in page and "<h2 id='s1'>Summary</h2>" in page
    assert report.findings["possible_leaks"] == ["leak"]
    assert report.findings["naive_uplift"] == pytest.approx(a.uplift.uplift)


def test_profile_config_composes_from_conf_and_validates():
    cfg = compose_config(["profile.max_rows=50", "profile.vif_limit=5"])
    pc = to_dataclass(cfg.profile, ProfileConfig, "profile")
    assert (pc.max_rows, pc.vif_limit) == (50, 5.0)
    with pytest.raises(ConfigError, match="vif_limit"):
        to_dataclass(compose_config(["profile.vif_limit=0.5"]).profile, ProfileConfig, "profile")


def test_arm_counts_use_every_row_even_when_sampled():
    df = pd.DataFrame({"segment": ["A"] * 300 + ["B"] * 200, "visit": [1] * 300 + [0] * 200})
    t = profile_table(df, "rct", from_conf(ProfileConfig, "profile/default", max_rows=50, max_plot_columns=1), outcome="visit")
    assert t.sampled
    (arm,) = t.arms
    assert arm.counts["count"].tolist() == [300, 200]
    assert arm.rates.set_index("arm")["rate"].to_dict() == {"A": 1.0, "B": 0.0}


def test_findings_are_strict_json():
    import json

    df = _uplift_frame(200).assign(campaign=lambda d: np.where(d.index < 100, "a", "b"))
    df.loc[df["campaign"] == "b", "treatment"] = 1
    a = profile_analysis(df, ["x", "noise"], "response", FAST, treatment="treatment", group="campaign")
    assert math.isnan(a.by_group.set_index("group").loc["b", "p_value"])
    findings = build_report("demo", "2026-01-01", [], a, FAST).findings
    assert findings["arm_tests_by_group"]["b"]["p_value"] is None
    md = render_markdown(build_report("demo", "2026-01-01", [], a, FAST))
    p_a = a.by_group.set_index("group").loc["a", "p_value"]
    assert f"treatment arms chi-square p-value per `campaign`: a {fmt_value(p_a)}, b n/a" in md
    json.dumps(findings, allow_nan=False)
