"""The command-line edge of every flow: help pages whose examples run, one line and exit 2 for
each class of failure, no traceback unless asked for."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from flows._cli import closest_key, hydra_error_message, parse_args
from flows._help import HELP

ROOT = Path(__file__).resolve().parent.parent
SCREEN_LINES = 40


def _run(args: list[str], timeout: int = 300, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _one_line_error(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout[-1500:], res.stderr[-1500:])
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout, res.stderr[-2000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, res.stderr
    return errors[0]


# --------------------------------------------------------------------------- pure parts
def test_parse_args_separates_switches_from_overrides():
    a = parse_args(["campaign=x", "--cfg", "job", "--debug", "paths.artifacts=/a"])
    assert a.overrides == ["campaign=x", "paths.artifacts=/a"] and a.show_config and a.debug and not a.help
    assert parse_args(["-h"]).help and parse_args(["--cfg=job"]).show_config


def test_closest_key_finds_typos_and_nothing_for_nonsense():
    known = ["campaign", "campaign.sample_fraction", "campaign.sample_size", "data", "data.name"]
    assert closest_key("campaign.sample_fractoin", known) == "campaign.sample_fraction"
    assert closest_key("dataa", known) == "data"
    assert closest_key("zzzzqqq", known) is None
    assert closest_key("monitor.campaign_id", [*known, "campaign_id", "monitor", "monitor.model"]) == "campaign_id"
    assert closest_key("monitor.campaign_id", known) is None


def test_hydra_messages_name_the_key_and_the_fix():
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    msg = hydra_error_message(ConfigCompositionException("Could not override 'campaign.sample_fracton'."), "cmd")
    assert "campaign.sample_fracton" in msg and "campaign.sample_fraction=" in msg
    text = ("In 'config': Could not find 'data/hilstrom'\n\nAvailable options in 'data':\n\thillstrom\n\tifood\n"
            "Config search path:\n\tprovider=main")
    msg = hydra_error_message(MissingConfigException(text, "data/hilstrom"), "cmd")
    assert "data=hillstrom" in msg and "ifood" in msg and "provider" not in msg
    assert "key=value" in hydra_error_message(OverrideParseException("a.b", "Error parsing override 'a.b'\nmissing EQUAL"), "cmd")


# --------------------------------------------------------------------------- help
@pytest.mark.parametrize("flow", sorted(HELP))
def test_help_fits_a_screen_and_its_examples_compose(flow: str):
    res = _run([flow, "--help"], timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) <= SCREEN_LINES and max(len(x) for x in lines) <= 110
    assert "powered by Hydra" not in res.stdout and "Период" not in res.stdout
    examples = [x.strip() for x in lines if x.strip().startswith(f"python -m {flow}")]
    assert len(examples) >= 2, res.stdout
    for example in examples:
        args = example.split()[2:]  # drop "python -m"
        shown = _run([*args, "--cfg", "job"], timeout=120)
        assert shown.returncode == 0, (example, shown.stderr[-1500:])
        assert "paths:" in shown.stdout and "artifacts:" in shown.stdout


# --------------------------------------------------------------------------- failures, one line each
@pytest.mark.parametrize("args, expect", [
    (["flows.campaign", "campaign.sample_fractoin=0.2"], "did you mean campaign.sample_fraction="),
    (["flows.generate", "dataa=synthetic"], "did you mean data="),
    (["flows.train", "data=hilstrom"], "data=hillstrom"),
    (["flows.generate", "data.n_clients"], "key=value"),
    (["flows.evaluate", "campaign.sample_fracton=0.5"], "campaign.sample_fraction="),
    (["flows.monitor", "monitor.campaign_id=c1"], "did you mean campaign_id=..."),
])
def test_bad_overrides_end_in_one_line_and_exit_2(args, expect):
    assert expect in _one_line_error(_run(args, timeout=120))


def test_debug_switch_shows_the_traceback():
    res = _run(["flows.generate", "dataa=synthetic", "--debug"], timeout=120)
    assert res.returncode == 2 and "Traceback" in res.stderr


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True).returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    """Mounts a tmpfs with the given options (needs root; skips otherwise); unmounts after."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        where = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
        if not _mount_tmpfs(where, options):
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_full_disk_is_one_line_and_nothing_half_written(tmpfs):
    small_disk = tmpfs("size=192k")
    res = _run(["flows.generate", "data.n_clients=3000", "data.name=full", f"paths.artifacts={small_disk}"])
    line = _one_line_error(res)
    assert "no space left" in line and "paths.artifacts=" in line
    assert not (small_disk / "data" / "full" / "manifest.json").exists()


def test_read_only_artifacts_is_one_line(tmpfs):
    read_only_dir = tmpfs("ro,size=64k")
    line = _one_line_error(_run(["flows.generate", "data.n_clients=500", f"paths.artifacts={read_only_dir / 'a'}"]))
    assert "read-only" in line and "paths.artifacts=" in line


def test_corrupt_input_parquet_is_one_line(tmp_path):
    art = tmp_path / "artifacts"
    assert _run(["flows.generate", "data.n_clients=500", "data.name=c", f"paths.artifacts={art}"]).returncode == 0
    clients = art / "data" / "c" / "clients.parquet"
    raw = bytearray(clients.read_bytes())
    raw[len(raw) // 3: len(raw) // 3 + 64] = os.urandom(64)
    clients.write_bytes(bytes(raw[: len(raw) // 2]))
    line = _one_line_error(_run(["flows.profile", "data.name=c", f"paths.artifacts={art}"]))
    assert "clients" in line or "input data" in line
