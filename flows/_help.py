"""What ``python -m flows.<name> --help`` prints: what the flow does, its main options and two
examples that run as printed (a test runs each with ``--cfg job``)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FlowHelp:
    """The help page of one command."""

    summary: str
    options: tuple[tuple[str, str], ...]
    examples: tuple[str, ...]


COMMON = (
    ("paths.artifacts=DIR", "where outputs go (default artifacts/)"),
    ("--cfg job", "print the composed configuration and run nothing"),
    ("--debug", "show tracebacks of errors (also UPLIFT_DEBUG=1)"),
)

HELP: dict[str, FlowHelp] = {
    "flows.generate": FlowHelp(
        "Generate the embedded synthetic retail world: clients, purchases, messages, past randomised\n"
        "campaigns and their ground truth, as Parquet in <artifacts>/data/<name>/.",
        (("data.n_clients=N", "number of clients (default 20000)"),
         ("data.seed=N", "random seed of the world"),
         ("data.name=NAME", "dataset folder name (default synthetic)")),
        ("python -m flows.generate", "python -m flows.generate data.n_clients=200000 data.seed=7 data.name=big"),
    ),
    "flows.ingest": FlowHelp(
        "Snapshot a shop's PostgreSQL database (clients, purchases, messages, campaign_history) into\n"
        "<artifacts>/data/<name>/ as Parquet + manifest.json, checked by the data contracts; then\n"
        "train with data.name=<name> and run campaigns with campaign.data=<name>.",
        (("source.url=URL", "postgresql://user@host:5432/db (password: PGPASSWORD or ~/.pgpass)"),
         ("data.name=NAME", "dataset folder name"),
         ("source.as_of=today|latest|DATE", "snapshot date: events strictly before it (default today, UTC)"),
         ("source.queries.TABLE=SQL", "SQL that returns TABLE's columns, e.g. from other table names"),
         ("source.batch_mb=N", "rows stream in batches of about N MiB (default 32)")),
        ("python -m flows.ingest source.url=postgresql://shop@localhost:5432/shop data.name=shop",
         "python -m flows.ingest source.url=postgresql://shop@localhost/shop data.name=shop source.as_of=latest"),
    ),
    "flows.train": FlowHelp(
        "Train a model on a dataset, check its features, pick the best candidate by cross-validation,\n"
        "register it in <artifacts>/models/<name>/<version>/ and promote it when it is better.",
        (("data=NAME", "synthetic (default), table, hillstrom, ifood, one_click"),
         ("data.path=FILE data.target=COL", "data=table: your CSV/Parquet table and its outcome column"),
         ("data.positive=V data.treatment=COL", "the outcome value counted as 1; the column of the arms"),
         ("model=NAME", "uplift (default), response, hillstrom, ifood, one_click"),
         ("model.promote=auto|always|never", "when the new version becomes champion"),
         ("+action=promote model.name=N model.version=vNNNN", "make a version the champion")),
        ("python -m flows.train", "python -m flows.train data=hillstrom model=hillstrom",
         "python -m flows.train data=table data.path=bank.csv data.target=y data.positive=yes model=response"),
    ),
    "flows.campaign": FlowHelp(
        "Calculate a campaign: client base -> base filters -> random subset -> factors -> score ->\n"
        "sort -> three-way split -> offers -> freeze, each stage checkpointed; a rerun resumes from the\n"
        "first stage that is no longer valid. Output: <artifacts>/campaigns/<id>/.",
        (("campaign=NAME", "a campaign of conf/campaign/ (default, spring_sale)"),
         ("conf=FILE", "a campaign YAML file kept outside conf/"),
         ("campaign.KEY=VALUE", "change one setting, e.g. campaign.sample_fraction=0.2"),
         ("campaign.client_table.path=FILE", "clients and features from one CSV or Parquet table, not data"),
         ("runner=dask", "run the factor and score stages on a Dask cluster")),
        ("python -m flows.campaign campaign=spring_sale",
         "python -m flows.campaign campaign=spring_sale campaign.sample_fraction=0.2"),
    ),
    "flows.campaigns": FlowHelp(
        "The campaign workbench: list every campaign under <artifacts>/campaigns (date, dataset, model,\n"
        "policy, clients, offers, state: computed / frozen / responses / evaluated, headline effect),\n"
        "show one in detail, or export its offer list (client_id, group, offer, score, rank) as\n"
        "<artifacts>/campaigns/<id>/offers.csv for the sending system. Reads files; starts no flow.",
        (("list", "every campaign, one line each (the default)"),
         ("show campaign_id=ID", "stages, groups, threshold, files and evaluation of one campaign"),
         ("export campaign_id=ID", "write its offer list beside campaign.parquet"),
         ("format=csv|parquet", "format of the export (default csv)")),
        ("python -m flows.campaigns",
         "python -m flows.campaigns show campaign_id=default_campaign",
         "python -m flows.campaigns export campaign_id=default_campaign format=csv"),
    ),
    "flows.simulate_responses": FlowHelp(
        "Synthetic worlds only: draw each client's response and revenue of a frozen campaign from the\n"
        "world's ground truth, into <artifacts>/campaigns/<id>/responses.parquet.",
        (("campaign_id=ID", "the frozen campaign (default: the selected campaign config's id)"),
         ("seed=N", "random seed of the draw (default: derived from the campaign's seed)")),
        ("python -m flows.simulate_responses campaign_id=default_campaign",
         "python -m flows.simulate_responses campaign_id=default_campaign seed=7"),
    ),
    "flows.evaluate": FlowHelp(
        "Measure what a frozen campaign brought (intention to treat): the primary endpoint (targeted vs\n"
        "control above the cutoff, response), Holm-adjusted secondary comparisons, profit or revenue, and\n"
        "checks that the experiment held (sample ratio, missing outcomes, undelivered offers).\n"
        "Output: <artifacts>/evaluations/<id>/ (report.html, report.md, metrics.json, plots).",
        (("campaign_id=ID", "the frozen campaign to evaluate (required)"),
         ("responses=FILE", "CSV or Parquet: client_id, response [, revenue, delivered]; may omit clients"),
         ("evaluate.positive=V", "the response value that counts as 1, e.g. yes"),
         ("evaluate.strict=true", "exit 3 naming the failed check when a check fails"),
         ("evaluate.missing_responses=M", "clients without a row: observed (default), non_responder or error")),
        ("python -m flows.evaluate campaign_id=default_campaign",
         "python -m flows.evaluate campaign_id=default_campaign evaluate.strict=true"),
    ),
    "flows.monitor": FlowHelp(
        "Check the champion model's health: data drift of its factors, score drift and decay against\n"
        "the latest evaluations; retrain and promote a better challenger when a limit is crossed.\n"
        "Output: <artifacts>/monitoring/.",
        (("campaign_id=ID", "the campaign whose factors are checked (default: the latest frozen)"),
         ("monitor.drift.max_drifted_share=X", "share of drifted factors that raises the alarm")),
        ("python -m flows.monitor", "python -m flows.monitor monitor.drift.max_drifted_share=0.3"),
    ),
    "flows.profile": FlowHelp(
        "Profile a dataset before anyone trusts a model on it: distributions, balance of the arms,\n"
        "correlations, VIF, univariate AUC with leak flags, constant factors. Output:\n"
        "<artifacts>/profiles/<dataset>/<date>/ (report.html, report.md, findings.json, plots).",
        (("data=NAME", "synthetic (default), table, hillstrom, ifood, one_click"),
         ("data.path=FILE data.target=COL", "data=table: your CSV/Parquet table and its outcome column"),
         ("factors=SET", "the factor set profiled for the synthetic world"),
         ("profile.max_rows=N", "rows sampled from large tables")),
        ("python -m flows.profile", "python -m flows.profile data=hillstrom",
         "python -m flows.profile data=table data.path=rct.csv data.target=response data.treatment=is_treatment"),
    ),
    "flows.demo": FlowHelp(
        "The main job end to end on the embedded synthetic world, in one Prefect run:\n"
        "generate -> train -> campaign -> simulate_responses -> evaluate; prints where each output went.",
        (("data.n_clients=N", "size of the synthetic world (default 20000)"),),
        ("python -m flows.demo", "python -m flows.demo paths.artifacts=/tmp/demo data.n_clients=50000"),
    ),
}


def help_text(command: str) -> str:
    """The help page of ``command`` (``python -m flows.<name>``)."""
    name = command.rsplit(" ", 1)[-1]
    h = HELP.get(name)
    if h is None:
        return f"usage: {command} [KEY=VALUE ...] [--cfg job] [--debug]"
    width = max(len(o) for o, _ in (*h.options, *COMMON))
    lines = [f"usage: {command} [KEY=VALUE ...]", "", h.summary, "", "Main options:"]
    lines += [f"  {o.ljust(width)}  {d}" for o, d in (*h.options, *COMMON)]
    lines += ["", "Examples:"] + [f"  {e}" for e in h.examples]
    lines += ["", "Every key of conf/ can be set as KEY=VALUE; README.md has the whole tour."]
    return "\n".join(lines)
