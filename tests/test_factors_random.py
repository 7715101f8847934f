"""The engine against the benchmark's hand-written DuckDB query on random small worlds."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factors import compute_factors, factor_set
from tasks.core.contracts import CATEGORIES, CHANNELS, EVENTS

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "factors.py"


def _hand_query_module():
    spec = importlib.util.spec_from_file_location("factors_benchmark", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def random_world(root: Path, seed: int, n_clients: int = 300) -> Path:
    """A random world with events before and after 2026-01-01, zero amounts and ties."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    start = pd.Timestamp("2023-06-01").value // 1000
    stop = pd.Timestamp("2026-03-01").value // 1000
    reg = pd.to_datetime(rng.integers(pd.Timestamp("2023-01-01").value // 1000,
                                      pd.Timestamp("2026-02-01").value // 1000, n_clients), unit="us").floor("D")
    pd.DataFrame({
        "client_id": np.arange(100, 100 + n_clients, dtype="int64"),
        "registration_date": reg,
        "age": rng.integers(18, 80, n_clients),
        "gender": rng.choice(["F", "M"], n_clients),
        "region": rng.choice(["capital", "north", "south", "east", "west", "central", "islands"], n_clients),
        "email_opt_out": rng.random(n_clients) < 0.2,
        "sms_opt_out": rng.random(n_clients) < 0.3,
        "push_opt_out": rng.random(n_clients) < 0.5,
        "marketing_opt_out": rng.random(n_clients) < 0.05,
    }).to_parquet(root / "clients.parquet", index=False)
    n = 20 * n_clients
    amount = np.round(rng.gamma(2.0, 20.0, n), 2)
    amount[rng.random(n) < 0.05] = 0.0
    pd.DataFrame({
        "client_id": rng.integers(100, 100 + n_clients + 20, n),  # a few ids unknown to clients
        "timestamp": pd.to_datetime(rng.integers(start, stop, n), unit="us"),
        "transaction_id": np.arange(n, dtype="int64"),
        "amount": amount,
        "quantity": rng.integers(1, 6, n),
        "category": rng.choice(list(CATEGORIES), n),
        "channel": rng.choice(["online", "offline"], n),
        "promo": rng.random(n) < 0.3,
    }).to_parquet(root / "purchases.parquet", index=False)
    n = 30 * n_clients
    pd.DataFrame({
        "client_id": rng.integers(100, 100 + n_clients, n),
        "timestamp": pd.to_datetime(rng.integers(start, stop, n), unit="us"),
        "channel": rng.choice(list(CHANNELS), n),
        "event": rng.choice(list(EVENTS), n, p=[0.5, 0.25, 0.1, 0.05, 0.05, 0.05]),
        "campaign_id": rng.choice(["a", "b"], n),
    }).to_parquet(root / "messages.parquet", index=False)
    return root


@pytest.mark.parametrize("seed", [1, 2])
def test_engine_agrees_with_the_hand_written_query(tmp_path: Path, seed: int) -> None:
    world = random_world(tmp_path / "w", seed)
    bench = _hand_query_module()
    hand_out = tmp_path / "hand.parquet"
    info = bench.run_hand(world, "2026-01-01", hand_out)
    hand = pd.read_parquet(hand_out)
    ours = compute_factors(world, "2026-01-01", factor_set("default"))
    assert info["rows"] == len(ours) > 200
    assert ours["client_id"].tolist() == hand["client_id"].tolist()
    shared = [c for c in ours.columns if c in hand.columns and c != "client_id"]
    assert len(shared) == len(ours.columns) - 1
    for col in shared:
        np.testing.assert_allclose(ours[col].to_numpy(dtype=float), hand[col].to_numpy(dtype=float),
                                   rtol=1e-9, atol=1e-9, err_msg=col)
    # the world is not degenerate: most factors vary across clients
    assert (ours[shared].nunique() > 1).sum() > 0.9 * len(shared)


@pytest.mark.parametrize("seed, as_of", [(3, "2025-10-17 13:45"), (4, "2026-01-01")])
def test_random_future_changes_leave_every_factor_unchanged(tmp_path: Path, seed: int, as_of: str) -> None:
    from factors import all_factors

    cut = pd.Timestamp(as_of)
    world = random_world(tmp_path / "w", seed)
    names = list(all_factors())
    ids = compute_factors(world, cut, ["age"])["client_id"]
    before = compute_factors(world, cut, names, client_ids=ids)
    rng = np.random.default_rng(seed + 100)
    for table in ("purchases", "messages"):
        df = pd.read_parquet(world / f"{table}.parquet")
        late = (df["timestamp"] >= cut).to_numpy()
        assert late.any() and (~late).any()
        df = df[~late | (rng.random(len(df)) < 0.5)].reset_index(drop=True)  # drop half of the late rows
        late = (df["timestamp"] >= cut).to_numpy()
        if table == "purchases":
            df.loc[late, "amount"] = df.loc[late, "amount"] * 3 + 1
            df.loc[late, "category"] = rng.choice(list(CATEGORIES), int(late.sum()))
            extra = df[late].assign(timestamp=cut, transaction_id=lambda d: d["transaction_id"] + 10**9)
        else:
            df.loc[late, "event"] = rng.choice(list(EVENTS), int(late.sum()))
            extra = df[late].assign(timestamp=cut)
        pd.concat([df, extra], ignore_index=True).to_parquet(world / f"{table}.parquet", index=False)
    after = compute_factors(world, cut, names, client_ids=ids)
    # a tolerance only for the order of floating-point sums across DuckDB threads
    pd.testing.assert_frame_equal(before, after, check_exact=False, rtol=1e-12, atol=1e-12)
