"""What verifying a campaign checkpoint costs, on 1M-row checkpoints.

    python benchmarks/checkpoint_verify.py [--rows 1000000] [--repeat 5]

Two checkpoints shaped like the campaign's: ``factors`` (client_id and eight numeric factors)
and ``offer`` (client_id, score, rank, percentile, group, offer). For each: the time to write
it through :class:`tasks.campaign.checkpoints.CheckpointStore` (the file hash included) against
a plain atomic Parquet write, the time to verify it (one sequential hash of the file), and, for
scale, the time to read its rows back. Best of ``--repeat``. A flipped byte in the middle of
the data pages must make the check fail.

Prints human lines, then one JSON object as the last line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from tasks.campaign.checkpoints import CheckpointStore  # noqa: E402
from tasks.core.io import atomic_write_parquet  # noqa: E402


def frames(n: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    ids = rng.permutation(np.arange(n, dtype="int64") * 3 + 7)
    factors = pd.DataFrame({"client_id": ids, "age": rng.integers(18, 90, n),
                            **{f"f{i}": rng.gamma(2.0, 3.0, n) for i in range(7)}})
    score = np.sort(rng.normal(0.02, 0.05, n))[::-1]
    offer = pd.DataFrame({"client_id": ids, "score": score, "rank": np.arange(1, n + 1),
                          "percentile": 100.0 * np.arange(1, n + 1) / n,
                          "group": rng.choice(["targeted", "random_target", "control"], n, p=[0.8, 0.1, 0.1]),
                          "offer": rng.random(n) < 0.3})
    return {"factors": factors, "offer": offer}


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = CheckpointStore(Path(tmp), ["factors", "offer"])
        for stage, df in frames(args.rows).items():
            write = best(lambda: store.write(stage, "k", df, 1.0), args.repeat)
            plain = best(lambda: atomic_write_parquet(df, Path(tmp) / f"plain_{stage}.parquet"), args.repeat)
            verify = best(lambda: store.verify(stage), args.repeat)
            read = best(lambda: store.read(stage), args.repeat)
            path = store.path(stage)
            size = path.stat().st_size
            data = bytearray(path.read_bytes())
            pages_end = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
            mid = pages_end // 2
            data[mid:mid + 16] = bytes(b ^ 0xFF for b in data[mid:mid + 16])
            path.write_bytes(bytes(data))
            caught = store.verify(stage) is not None
            out[stage] = {"rows": args.rows, "mb": round(size / 1e6, 1), "write_s": round(write, 3),
                          "plain_write_s": round(plain, 3), "verify_s": round(verify, 3), "read_s": round(read, 3),
                          "flip_caught": caught}
            print(f"{stage:8s} {args.rows:,} rows, {size / 1e6:.1f} MB: write {write:.3f} s (plain Parquet "
                  f"{plain:.3f} s), verify {verify:.3f} s, read rows {read:.3f} s; 16 flipped bytes caught: {caught}")
    print(json.dumps({"benchmark": "checkpoint_verify", "stages": out, "cpu_count": os.cpu_count(),
                      "load_1m": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
