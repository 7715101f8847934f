"""Declarations: the registry rejects broken factors; factor sets load and validate."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factors import Factor, FactorDeclarationError, all_factors, compute_factors, factor_set, register
from factors.registry import resolve, unregister, validate_factor
from factors.sets import available_sets
from tasks.core.config import compose_config
from tasks.core.errors import ConfigError, NotFoundError
from tests.test_factors import AS_OF, base_clients, make_world

GOOD = Factor("basket_sum_7d", "Amount spent in the last 7 days.", "aggregate", "sum(amount)",
              table="purchases", columns=("amount",), window=7)


def test_every_registered_factor_is_a_valid_declaration() -> None:
    registered = all_factors()
    assert len(registered) >= 30
    earlier: dict[str, Factor] = {}
    for name, f in registered.items():
        assert name == f.name and re.fullmatch(r"[a-z][a-z0-9_]*", name)
        validate_factor(f, earlier)  # raises on a broken declaration
        earlier[name] = f


@pytest.mark.parametrize("change, message", [
    ({"name": "Basket-Sum"}, "name must match"),
    ({"name": "basket sum"}, "name must match"),
    ({"name": "order"}, "SQL keyword"),
    ({"name": "purchase_count_30d"}, "duplicate name"),
    ({"name": "client_id"}, "duplicate name"),
    ({"description": ""}, "missing description"),
    ({"kind": "magic"}, "unknown kind"),
    ({"table": "orders"}, "unknown table 'orders'"),
    ({"table": "truth"}, "unknown table 'truth'"),
    ({"columns": ("amount", "price")}, r"unknown column\(s\) \['price'\] of table 'purchases'"),
    ({"dtype": "float64", "default": "none"}, "not a number"),
    ({"dtype": "int64", "default": 0.5}, "not an integer"),
    ({"dtype": "int8", "default": True}, "is a bool"),
    ({"dtype": "int8", "default": 300}, "does not fit int8"),
    ({"dtype": "string"}, "unknown dtype"),
    ({"window": 0}, "window must be"),
    ({"window": 7.5}, "window must be"),
    ({"sql": "sum(amount); DROP TABLE x"}, "one expression"),
    ({"sql": "  "}, "empty sql"),
])
def test_broken_declarations_are_rejected(change: dict, message: str) -> None:
    bad = dataclasses.replace(GOOD, **change)
    with pytest.raises(FactorDeclarationError, match=message):
        register(bad)
    assert bad.name not in all_factors() or bad.name in ("purchase_count_30d", "client_id")


def test_broken_derived_and_profile_declarations() -> None:
    with pytest.raises(FactorDeclarationError, match=r"unknown input factor\(s\) \['nope'\]"):
        register(Factor("ratio_x", "A ratio of nothing.", "derived", "nope / 2", inputs=("nope",)))
    with pytest.raises(FactorDeclarationError, match="not used in the sql"):
        register(Factor("ratio_y", "A ratio that ignores an input.", "derived", "age * 2",
                        inputs=("age", "is_female")))
    with pytest.raises(FactorDeclarationError, match="needs inputs"):
        register(Factor("ratio_z", "A derived factor without inputs.", "derived", "1"))
    with pytest.raises(FactorDeclarationError, match="only aggregate factors take a window"):
        register(Factor("age_w", "Age over a window.", "profile", "age", table="clients",
                        columns=("age",), window=30, dtype="int64"))
    with pytest.raises(FactorDeclarationError, match="unknown table 'purchases' for a profile"):
        register(Factor("age_p", "Age from purchases.", "profile", "age", table="purchases", dtype="int64"))
    assert not {"ratio_x", "ratio_y", "ratio_z", "age_w", "age_p"} & set(all_factors())


def test_a_new_factor_is_computed_after_registration(tmp_path: Path) -> None:
    world = make_world(tmp_path / "w")
    derived = Factor("basket_sum_7d_x2", "Twice the 7-day amount.", "derived", "2 * basket_sum_7d",
                     inputs=("basket_sum_7d",))
    register(GOOD)
    register(derived)
    try:
        out = compute_factors(world, AS_OF, ["basket_sum_7d_x2"], client_ids=[1, 2, 3])
        # 7 days: client 2's 25.0 (half a day ago); client 1's latest purchase is 10 days old
        assert out["basket_sum_7d_x2"].tolist() == [0.0, 50.0, 0.0]
        assert [f.name for f in resolve(["basket_sum_7d_x2"])] == ["basket_sum_7d", "basket_sum_7d_x2"]
    finally:
        unregister("basket_sum_7d_x2")
        unregister("basket_sum_7d")
    with pytest.raises(NotFoundError):
        compute_factors(world, AS_OF, ["basket_sum_7d"])


def test_unknown_factor_suggests_close_names() -> None:
    from factors import get

    with pytest.raises(NotFoundError, match="did you mean.*purchase_count_30d"):
        get("purchase_count_30")


def test_categorical_profile_columns(tmp_path: Path) -> None:
    clients = base_clients()
    clients["region"] = pd.Categorical(clients["region"], categories=["north", "south", "east", "west", "capital"])
    clients["gender"] = pd.Categorical(clients["gender"])
    world = make_world(tmp_path / "w", clients=clients)
    out = compute_factors(world, AS_OF, ["region_north", "region_south", "is_female"], client_ids=[1, 2, 3])
    assert out["region_north"].tolist() == [1, 0, 1]
    assert out["region_south"].tolist() == [0, 1, 0]
    assert out["is_female"].tolist() == [1, 0, 1]


def test_partitioned_tables_give_the_same_result(tmp_path: Path) -> None:
    world = make_world(tmp_path / "w")
    names = ["purchase_amount_90d", "open_rate", "age"]
    whole = compute_factors(world, AS_OF, names)
    parts = tmp_path / "parts"
    parts.mkdir()
    for table in ("clients", "purchases", "messages"):
        df = pd.read_parquet(world / f"{table}.parquet")
        (parts / f"{table}.parquet").mkdir()
        for k, chunk in enumerate(np.array_split(np.arange(len(df)), 2)):
            df.iloc[chunk].to_parquet(parts / f"{table}.parquet" / f"part-{k}.parquet", index=False)
    pd.testing.assert_frame_equal(compute_factors(parts, AS_OF, names), whole)


# ---------------------------------------------------------------- factor sets

def test_every_shipped_set_loads() -> None:
    assert "default" in available_sets()
    for name in available_sets():
        assert factor_set(name)


def test_set_matches_hydra_config() -> None:
    cfg = compose_config(["factors=default"])
    assert list(cfg.factors.factors) == factor_set("default")
    assert cfg.factors.name == "default"


def test_names_from_composed_config() -> None:
    from factors import names_from_config

    assert names_from_config(compose_config(["factors=rfm"]).factors) == factor_set("rfm")
    assert names_from_config(compose_config(["factors.factors=[age,tenure_days]"]).factors) == ["age", "tenure_days"]
    with pytest.raises(NotFoundError, match=r"factor set 'default': unknown factor\(s\) \['agee'\]"):
        names_from_config(compose_config(["factors.factors=[agee]"]).factors)
    with pytest.raises(ConfigError, match="non-empty list"):
        names_from_config({"name": "x", "factors": []})


def test_set_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="factor set 'nope' not found"):
        factor_set("nope")
    (tmp_path / "typo.yaml").write_text("name: typo\nfactors: [age, purchase_cont_30d]\n")
    with pytest.raises(NotFoundError, match=r"factor set 'typo': unknown factor\(s\) \['purchase_cont_30d'\]"):
        factor_set("typo", sets_dir=tmp_path)
    (tmp_path / "twice.yaml").write_text("name: twice\nfactors: [age, age]\n")
    with pytest.raises(ConfigError, match="more than once"):
        factor_set("twice", sets_dir=tmp_path)
    (tmp_path / "empty.yaml").write_text("name: empty\nfactors: []\n")
    with pytest.raises(ConfigError, match="non-empty list"):
        factor_set("empty", sets_dir=tmp_path)
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        factor_set("broken", sets_dir=tmp_path)


def test_docs_page_matches_the_registry() -> None:
    from factors.docs import DOC_PATH, catalogue_markdown

    text = catalogue_markdown()
    assert all(f"`{name}`" in text for name in all_factors())
    assert DOC_PATH.read_text(encoding="utf-8") == text, "docs/factors.md is stale: run python -m factors.docs"
