"""The ``salesintel`` command: run the main job and print what it found."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from salesintel_assets.domain.alerts.feedback_inbox import RATINGS
from salesintel_assets.domain.common.storage import DEFAULT_HOME
from salesintel_assets.domain.common.tenants import DEFAULT_TENANT
from salesintel_assets import tenant_cli
from salesintel_assets.instance import ensure_instance_folder, instance_folder, project_instance
from salesintel_assets.resources.factory import SOURCES


def _apply_overrides(args: argparse.Namespace) -> None:
    """Command-line options are shorthands for the run-time contract's variables."""
    for option, variable in [("home", "SALESINTEL_HOME"), ("source", "SALESINTEL_SOURCE"),
                             ("csv", "SALESINTEL_CSV"), ("as_of", "SALESINTEL_AS_OF"),
                             ("date_order", "SALESINTEL_DATE_ORDER"), ("decimal_mark", "SALESINTEL_DECIMAL_MARK")]:
        value = getattr(args, option, None)
        if value:
            os.environ[variable] = str(value)
    if args.csv and not args.source:
        os.environ["SALESINTEL_SOURCE"] = "csv"


def _home(args: argparse.Namespace) -> str:
    return str(Path(getattr(args, "home", None) or os.environ.get("SALESINTEL_HOME") or DEFAULT_HOME).resolve())


def run(args: argparse.Namespace) -> int:
    from salesintel_assets.definitions import build_definitions
    from salesintel_assets.domain.common.rules import RulesError, load_rules
    from salesintel_assets.domain.ingestion.blocked import BlockedInput
    from salesintel_assets.domain.ingestion.values import parse_analysis_date
    from salesintel_assets.resources.factory import ConfigurationError, environment_resources
    from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse
    from salesintel_assets.main_run import carried_warnings, execute, pull_skipped
    from salesintel_assets.run_outcome import EXIT_BLOCKED, read_outcome
    from salesintel_assets.summary import run_summary

    _apply_overrides(args)
    home = _home(args)
    log_level = "INFO" if args.verbose else "CRITICAL"
    # MLflow's progress lines (creating its tables, ...) only in verbose mode, like Dagster's log.
    # MLflow sets its level when first imported (from this variable) and the logger's if already imported.
    mlflow_level = "INFO" if args.verbose else "WARNING"
    os.environ["MLFLOW_LOGGING_LEVEL"] = mlflow_level
    logging.getLogger("mlflow").setLevel(mlflow_level)
    if args.tenant or args.all_tenants or args.executor:
        from salesintel_assets.tenant_cli import run_tenants_command

        return run_tenants_command(args, log_level)
    try:
        parse_analysis_date(os.environ.get("SALESINTEL_AS_OF"))
        load_rules(os.environ.get("SALESINTEL_RULES") or None)
        defs = build_definitions(environment_resources())
    except (BlockedInput, ConfigurationError, RulesError) as exc:
        print(f"salesintel: {exc}", file=sys.stderr)
        return EXIT_BLOCKED
    # The project's instance, so the Dagster UI shows this run, its materialisations, checks and freshness.
    instance = project_instance(home)
    # Dagster's own log (tracebacks, one "not executing" line per skipped step) only in verbose mode.
    print(f"salesintel: running {args.job} into {home} ...", flush=True)
    warehouse = Warehouse(home=SalesintelHome(path=home))
    result = execute(defs, args.job, instance, {"loggers": {"console": {"config": {"log_level": log_level}}}},
                     warehouse, warnings=_failed_warnings, partition_key=DEFAULT_TENANT)
    outcome = read_outcome(result)
    if pull_skipped(result[0]):
        print("salesintel: nothing new since the last complete run; analytics kept, alerts delivered", flush=True)
        outcome.failed_checks += carried_warnings(warehouse)
    if outcome.blocked:
        print(f"salesintel: {outcome.blocked}", file=sys.stderr)
        return outcome.exit_code
    print(run_summary(warehouse, outcome.failed_checks, instance_home=instance_folder(home)))
    for line in outcome.lines():
        print(line, file=sys.stderr)
    return outcome.exit_code


def _failed_warnings(results) -> list | None:
    """The failed warning checks of a run, or None when an error check failed."""
    from salesintel_assets.run_outcome import read_outcome

    failed = read_outcome(results).failed_checks
    return None if any(severity == "error" for _, severity, _ in failed) else [list(c) for c in failed]


def feedback(args: argparse.Namespace) -> int:
    """Record a rating (which also acknowledges the alert) in the feedback
    inbox; the next run of the alerts layer takes it in."""
    import dagster as dg
    import pandas as pd

    from salesintel_assets.domain.alerts.feedback_inbox import record_event
    from salesintel_assets.resources.feedback import FeedbackInbox
    from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse

    home = SalesintelHome(path=_home(args))
    warehouse = Warehouse(home=home)
    if not warehouse.exists():
        print(f"not recorded: no warehouse in {home.location()}: run the pipeline first", file=sys.stderr)
        return 2
    alert_id = args.alert_id.strip()
    try:
        found = warehouse.read_table("alerts", ["alert_id", "alert_type"], read_only=True)
    except dg.Failure as busy:  # a run holds the warehouse longer than the resource waits
        print(f"not recorded: {busy.description}", file=sys.stderr)
        return 2
    match = None if found is None else found.loc[found["alert_id"].eq(alert_id), "alert_type"]
    if match is None or match.empty:
        print(f"not recorded: unknown alert {alert_id!r} (see the alerts table for ids)", file=sys.stderr)
        return 2
    who = args.by or os.environ.get("USER") or "cli"
    new = record_event(FeedbackInbox(home=home).path(), alert_id=alert_id, alert_type=match.iloc[0],
                       action=args.verdict, actor=who, source="cli", occurred_at=pd.Timestamp.now(tz="UTC"))
    print(f"alert {alert_id} marked {args.verdict} by {who}" + ("" if new else " (already recorded)"))
    return 0


def serve(args: argparse.Namespace) -> int:
    """The web service: Slack interactivity, the REST API and the dashboard."""
    from salesintel_assets.service.settings import ServiceConfigError, ServiceSettings

    try:
        settings = ServiceSettings.from_environment(args.home)
    except ServiceConfigError as exc:
        print(f"salesintel serve: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from salesintel_assets.service.app import create_app

    slack = "on" if settings.signing_secret else "off (set SLACK_SIGNING_SECRET)"
    print(f"salesintel: serving {settings.home} on http://{args.host}:{args.port} (Slack interactivity {slack})",
          flush=True)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    return 0


def ui(args: argparse.Namespace) -> int:
    """The Dagster UI (`dagster dev`) on the project's instance: the runs of
    `salesintel run`, lineage, checks, freshness, schedules and sensors."""
    import subprocess

    home = _home(args)
    folder = ensure_instance_folder(home)
    env = {**os.environ, "DAGSTER_HOME": str(folder), "SALESINTEL_HOME": home}
    command = [sys.executable, "-m", "dagster", "dev", "-m", "salesintel_assets.definitions",
               "--host", args.host, "--port", str(args.port)]
    print(f"salesintel: Dagster UI on http://{args.host}:{args.port} (instance {folder}; Ctrl-C stops it)", flush=True)
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:  # dagster dev stops its own processes on the same Ctrl-C
        return 0


def token_create(args: argparse.Namespace) -> int:
    """Print a new API/dashboard token once (only its salted hash is stored)."""
    from datetime import timedelta

    from salesintel_assets.service.settings import ServiceSettings
    from salesintel_assets.service.tokens import TokenError, TokenStore
    from salesintel_assets.service.queries import NoSnapshot, ServingData

    settings = ServiceSettings(home=Path(args.home or os.environ.get("SALESINTEL_HOME") or DEFAULT_HOME).resolve())
    if args.rep and args.role in ("rep", "manager"):
        try:
            reps = ServingData(settings.home).table("reps")
        except NoSnapshot:
            reps = None
        column = "sales_rep_id" if args.role == "rep" else "manager_id"
        if reps is not None and args.rep not in set(reps[column].dropna().astype(str)):
            print(f"not created: {args.rep!r} is not a {column} in dim_sales_reps; check the id", file=sys.stderr)
            return 2
    expires = timedelta(days=args.expires_days) if args.expires_days else None
    try:
        token, who = TokenStore(settings.tokens_path).create(args.role, args.rep, expires, args.label)
    except TokenError as exc:
        print(f"not created: {exc}", file=sys.stderr)
        return 2
    print(token)
    print(f"(role {who.role}{', ' + who.rep_id if who.rep_id else ''}; shown once, stored hashed in "
          f"{settings.tokens_path})", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salesintel", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="materialise every asset and print a summary")
    run_cmd.add_argument("--job", default="salesintel_job")
    run_cmd.add_argument("--home", help="SALESINTEL_HOME (default .salesintel)")
    run_cmd.add_argument("--source", choices=list(SOURCES), help="SALESINTEL_SOURCE")
    run_cmd.add_argument("--csv", help="SALESINTEL_CSV: a CRM export (implies --source csv)")
    run_cmd.add_argument("--as-of", dest="as_of", help="SALESINTEL_AS_OF, YYYY-MM-DD")
    run_cmd.add_argument("--date-order", dest="date_order", choices=["day_first", "month_first"],
                         help="SALESINTEL_DATE_ORDER: how the export writes NN/NN/YYYY dates, when its own "
                              "dates cannot tell")
    run_cmd.add_argument("--decimal-mark", dest="decimal_mark", choices=[".", ","],
                         help="SALESINTEL_DECIMAL_MARK: the export's decimal mark, when its own amounts cannot tell")
    run_cmd.add_argument("-v", "--verbose", action="store_true", help="show Dagster's step log")
    tenant_cli.add_run_options(run_cmd)
    run_cmd.set_defaults(handler=run)
    feedback_cmd = commands.add_parser("feedback", help="rate an alert helpful or noise (acknowledges it)")
    feedback_cmd.add_argument("alert_id")
    feedback_cmd.add_argument("verdict", choices=RATINGS)
    feedback_cmd.add_argument("--by", help="who rates it (default: the current user)")
    feedback_cmd.add_argument("--home", help="SALESINTEL_HOME (default .salesintel)")
    feedback_cmd.set_defaults(handler=feedback)
    serve_cmd = commands.add_parser("serve", help="the web service: Slack buttons, REST API, dashboard")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8000)
    serve_cmd.add_argument("--home", help="SALESINTEL_HOME (default .salesintel)")
    serve_cmd.set_defaults(handler=serve)
    ui_cmd = commands.add_parser("ui", help="the Dagster UI on the project's instance (runs, lineage, checks)")
    ui_cmd.add_argument("--host", default="127.0.0.1")
    ui_cmd.add_argument("--port", type=int, default=3000)
    ui_cmd.add_argument("--home", help="SALESINTEL_HOME (default .salesintel)")
    ui_cmd.set_defaults(handler=ui)
    token_cmd = commands.add_parser("token", help="access tokens for the API and the dashboard")
    token_sub = token_cmd.add_subparsers(dest="token_command", required=True)
    create_cmd = token_sub.add_parser("create", help="print a new token once")
    create_cmd.add_argument("--role", required=True, choices=["rep", "manager", "leader", "data"])
    create_cmd.add_argument("--rep", help="the rep's id (rep) or the manager's id (manager) in dim_sales_reps")
    create_cmd.add_argument("--expires-days", dest="expires_days", type=float, help="expire after this many days")
    create_cmd.add_argument("--label", help="a note on who holds it")
    create_cmd.add_argument("--home", help="SALESINTEL_HOME (default .salesintel)")
    create_cmd.set_defaults(handler=token_create)
    tenant_cli.add_commands(commands, "SALESINTEL_HOME (default .salesintel)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
