"""``python -m api``: serve the scoring API with uvicorn.

Example::

    python -m api --host 127.0.0.1 --port 8000 --artifacts artifacts --model synthetic_uplift
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from api.service import ApiSettings
from tasks.core.errors import ConfigError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    p = argparse.ArgumentParser(
        prog="python -m api",
        description="Online scoring service: POST /predict, GET /health, GET /model (OpenAPI at /docs).",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--artifacts", default=os.environ.get("UPLIFT_ARTIFACTS", "artifacts"),
                   help="artifacts root holding models/, campaigns/ and predictions/ "
                        "(default $UPLIFT_ARTIFACTS or ./artifacts)")
    p.add_argument("--model", default="synthetic_uplift",
                   help="registry model name whose champion is served (default synthetic_uplift)")
    p.add_argument("--factor-snapshot", default=None,
                   help="Parquet file (client_id + factors) for client-id lookups; default: the factor "
                        "checkpoint of the newest frozen campaign")
    p.add_argument("--campaign-dir", default=None,
                   help="folder of campaign YAML files (default conf/campaign of the project)")
    p.add_argument("--default-campaign", default=None,
                   help="campaign whose policy decides offers when a request names none")
    p.add_argument("--max-batch", type=int, default=10_000, help="most clients per request (default 10000)")
    p.add_argument("--reload-interval", type=float, default=1.0,
                   help="seconds between checks of the champion pointer (default 1)")
    p.add_argument("--log-flush-rows", type=int, default=5000,
                   help="flush the prediction log once this many rows wait (default 5000)")
    p.add_argument("--log-flush-seconds", type=float, default=2.0,
                   help="flush the prediction log at least this often (default 2)")
    p.add_argument("--no-prediction-log", action="store_true", help="do not log predictions")
    p.add_argument("--log-level", default="info", help="server log level (default info)")
    p.add_argument("--access-log", action="store_true", help="log every request line (slower)")
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> ApiSettings:
    """Turn parsed options into :class:`ApiSettings`."""
    kwargs = dict(
        artifacts=Path(args.artifacts), model_name=args.model,
        factor_snapshot=Path(args.factor_snapshot) if args.factor_snapshot else None,
        default_campaign=args.default_campaign, max_batch=args.max_batch,
        reload_interval=args.reload_interval, log_predictions=not args.no_prediction_log,
        log_flush_rows=args.log_flush_rows, log_flush_seconds=args.log_flush_seconds,
    )
    if args.campaign_dir:
        kwargs["campaign_conf_dir"] = Path(args.campaign_dir)
    return ApiSettings(**kwargs)


def main(argv: list[str] | None = None) -> None:
    """Build the app and run it until interrupted (the prediction log is flushed on exit)."""
    args = parse_args(argv)
    import uvicorn

    from api.app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    app = create_app(settings)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log)


if __name__ == "__main__":
    main()
