"""``python -m api``: serve the scoring API with uvicorn.

Example::

    python -m api --host 127.0.0.1 --port 8000 --artifacts artifacts --model synthetic_uplift
    UPLIFT_API_TOKENS_FILE=/etc/uplift/api-tokens python -m api --host 0.0.0.0

Tokens come from ``$UPLIFT_API_TOKENS``, ``$UPLIFT_API_TOKENS_FILE`` or ``--tokens-file``
(:mod:`api.auth`), never from an option holding the token itself. Listening on anything but
loopback without a token is refused (exit 2, one line).
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys
from pathlib import Path

from api.auth import ENV_TOKENS, ENV_TOKENS_FILE, load_tokens
from api.service import ApiSettings
from tasks.core.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (see ``--help``); none of them holds a token."""
    p = argparse.ArgumentParser(
        prog="python -m api",
        description="Online scoring service: POST /predict, GET /health, GET /model (OpenAPI at /docs).",
        epilog=f"Authentication: bearer tokens from ${ENV_TOKENS} (name:token,name:token), "
               f"${ENV_TOKENS_FILE} or --tokens-file (one name:token per line); tokens of 16+ characters. "
               "Without a token the service listens on loopback only.",
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
                        "checkpoints of the served model's frozen campaigns, each client from the newest "
                        "campaign holding it")
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
    p.add_argument("--tokens-file", default=None,
                   help=f"file of bearer tokens, one name:token per line (default ${ENV_TOKENS_FILE}; "
                        f"or put the entries in ${ENV_TOKENS})")
    p.add_argument("--shutdown-timeout", type=float, default=1.0,
                   help="seconds requests in flight get to finish after SIGTERM/Ctrl-C (default 1)")
    p.add_argument("--log-level", default="info", help="server log level (default info)")
    p.add_argument("--access-log", action="store_true",
                   help="log every request: status, caller's token name, request id, time (slower)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parsed command-line options."""
    return build_parser().parse_args(argv)


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def settings_from_args(args: argparse.Namespace) -> ApiSettings:
    """Turn parsed options into :class:`ApiSettings`."""
    kwargs = dict(
        artifacts=Path(args.artifacts), model_name=args.model,
        factor_snapshot=Path(args.factor_snapshot) if args.factor_snapshot else None,
        default_campaign=args.default_campaign, max_batch=args.max_batch,
        reload_interval=args.reload_interval, log_predictions=not args.no_prediction_log,
        log_flush_rows=args.log_flush_rows, log_flush_seconds=args.log_flush_seconds,
        tokens=load_tokens(args.tokens_file), access_log=args.access_log,
    )
    if not kwargs["tokens"] and not is_loopback(args.host):
        raise ConfigError(
            f"--host {args.host} would serve every client's score to anyone who can reach port {args.port}, "
            f"and no API token is configured; set {ENV_TOKENS_FILE}=<file of name:token lines> "
            f"(or {ENV_TOKENS}, or --tokens-file), or listen on 127.0.0.1 (see docs/api.md, Authentication)")
    if args.shutdown_timeout < 0:
        raise ConfigError(f"--shutdown-timeout must be at least 0, got {args.shutdown_timeout}")
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
    log = logging.getLogger("uplift.api")
    if settings.tokens:
        log.info("authentication on: %d token(s): %s", len(settings.tokens), ", ".join(t.name for t in settings.tokens))
    else:
        log.warning("authentication off: no API token configured; anyone on this machine can call the API")
    app = create_app(settings)
    # the service writes its own access log (with the caller's token name), so uvicorn's is off
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                timeout_graceful_shutdown=args.shutdown_timeout)


if __name__ == "__main__":
    main()
