"""The campaign workbench: which campaigns exist, what state each is in, and its offer list.

    python -m flows.campaigns                                   list every campaign
    python -m flows.campaigns show campaign_id=<id>             one campaign in detail
    python -m flows.campaigns export campaign_id=<id> [format=csv|parquet]

The listing shows, per campaign under ``<artifacts>/campaigns``: id, date, dataset, model
version, offer policy, clients, offers, state (empty / running / computed / frozen /
responses / evaluated / damaged) and, once evaluated, the headline effect with its
confidence interval. ``export`` writes the offer list the sending system needs
(client_id, group, offer, score, rank) beside campaign.parquet, as ``offers.csv``.

Reading files needs no orchestrator, so this command starts no Prefect flow: the listing and
the detail are read-only, and the export is one atomic file write. The logic is
:mod:`tasks.campaign.catalog`; ``campaign_id=`` and ``format=`` are read before Hydra sees
the command line, other overrides (``paths.artifacts=...``) work as for every flow.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from omegaconf import DictConfig

from flows._cli import run_cli
from tasks.campaign import catalog
from tasks.core.errors import ConfigError

ACTIONS = ("list", "show", "export")


@dataclass(frozen=True)
class Request:
    """What the command line asks for."""

    action: str = "list"
    campaign_id: str | None = None
    fmt: str = "csv"


def split_argv(argv: list[str]) -> tuple[Request, list[str], str | None]:
    """Take the action word, ``campaign_id=`` and ``format=`` out of the command line.

    Returns ``(request, hydra_argv, problem)``; ``problem`` is a one-line error for a command
    line that cannot mean anything (reported by the CLI edge, after ``--help``).
    """
    action, cid, fmt, rest, problem = None, None, "csv", [], None
    for arg in argv:
        if arg.startswith("campaign_id="):
            cid = arg.split("=", 1)[1]
        elif arg.startswith("format="):
            fmt = arg.split("=", 1)[1]
        elif not arg.startswith("-") and "=" not in arg:
            if action is None and arg in ACTIONS:
                action = arg
            elif action in ("show", "export") and cid is None:
                problem = f"write the campaign as campaign_id={arg}: python -m flows.campaigns {action} campaign_id={arg}"
            else:
                problem = (f"unknown action {arg!r}; use one of {', '.join(ACTIONS)} "
                           "(e.g. python -m flows.campaigns show campaign_id=<id>)")
        else:
            rest.append(arg)
    return Request(action or "list", cid, fmt), rest, problem


def _body(cfg: DictConfig, req: Request, problem: str | None) -> None:
    if problem:
        raise ConfigError(problem)
    root = str(cfg.paths.artifacts)
    if req.action == "list":
        print(catalog.render_listing(catalog.list_campaigns(root), root))
        return
    if not req.campaign_id:
        raise ConfigError(f"campaign_id=<id> is required: python -m flows.campaigns {req.action} campaign_id=<id> "
                          "(python -m flows.campaigns lists them)")
    if req.action == "show":
        print(catalog.render_detail(catalog.describe_campaign(root, req.campaign_id)))
        return
    path, rows = catalog.export_offer_list(root, req.campaign_id, req.fmt)
    offered = int(rows["offer"].sum())
    print(f"campaign {req.campaign_id}: offer list of {len(rows):,} clients ({offered:,} offers) "
          f"written to {path.resolve()}")
    print(f"  columns: {', '.join(catalog.OFFER_LIST_COLUMNS)}" + ("; offer is 1 / 0" if req.fmt == "csv" else ""))


def main() -> None:
    """Command-line entry point (see the module docstring)."""
    req, rest, problem = split_argv(sys.argv[1:])
    sys.argv = [sys.argv[0], *rest]
    run_cli(lambda cfg: _body(cfg, req, problem), prefect=False)


if __name__ == "__main__":
    main()
