"""The command-line edge shared by every flow: Hydra in, one clear error out.

``run_cli(body)`` parses ``[hydra overrides]`` from the command line, composes conf/, calls
``body(cfg)`` and turns any :class:`~tasks.core.errors.UpliftError` into a single message on
stderr and exit code 2. Nothing below this module prints errors or calls ``sys.exit``.
Both entry points start :mod:`flows._reaper`, which stops Prefect's temporary server should
the run be killed outright.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Callable, Iterator

from omegaconf import DictConfig

from flows import _reaper
from tasks.core.config import CONF_DIR
from tasks.core.errors import UpliftError

log = logging.getLogger("uplift")


@contextlib.contextmanager
def report_errors() -> Iterator[None]:
    """Turn an :class:`UpliftError` or a bad override into one message on stderr and exit 2."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    for noisy in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _reaper.start()
    try:
        yield
    except (UpliftError, HydraException, OmegaConfBaseException) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def run_cli(body: Callable[[DictConfig], Any], config_name: str = "config") -> None:
    """Run ``body`` as a Hydra application over conf/ and exit with a clear error on bad input."""
    import hydra

    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    _reaper.start()

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
    def _entry(cfg: DictConfig) -> None:
        # Hydra's console logging is at INFO; the HTTP client's per-request lines are noise.
        for noisy in ("httpx", "httpcore", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        try:
            body(cfg)
        except UpliftError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)

    _entry()
