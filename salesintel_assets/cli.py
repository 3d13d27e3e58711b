"""The ``salesintel`` command: run the main job and print what it found."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from salesintel_assets.domain.alerts.feedback_inbox import RATINGS
from salesintel_assets.domain.common.storage import DEFAULT_HOME
from salesintel_assets.resources.factory import SOURCES


def _apply_overrides(args: argparse.Namespace) -> None:
    """Command-line options are shorthands for the run-time contract's variables."""
    for option, variable in [("home", "SALESINTEL_HOME"), ("source", "SALESINTEL_SOURCE"),
                             ("csv", "SALESINTEL_CSV"), ("as_of", "SALESINTEL_AS_OF")]:
        value = getattr(args, option, None)
        if value:
            os.environ[variable] = str(value)
    if args.csv and not args.source:
        os.environ["SALESINTEL_SOURCE"] = "csv"


def _home(args: argparse.Namespace) -> str:
    return str(Path(getattr(args, "home", None) or os.environ.get("SALESINTEL_HOME") or DEFAULT_HOME).resolve())


def run(args: argparse.Namespace) -> int:
    import dagster as dg

    from salesintel_assets.definitions import build_definitions
    from salesintel_assets.resources.factory import ConfigurationError, environment_resources
    from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse
    from salesintel_assets.summary import run_summary

    _apply_overrides(args)
    home = _home(args)
    try:
        resources = environment_resources()
    except ConfigurationError as exc:
        print(f"salesintel: {exc}", file=sys.stderr)
        return 2
    defs = build_definitions(resources)
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    log_level = "INFO" if args.verbose else "WARNING"
    print(f"salesintel: running {args.job} into {home} ...", flush=True)
    result = defs.resolve_job_def(args.job).execute_in_process(
        instance=instance, raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    failed_checks = [(e.event_specific_data.check_name,
                      "warning" if e.event_specific_data.severity == dg.AssetCheckSeverity.WARN else "error",
                      (e.event_specific_data.description or "").strip())
                     for e in result.all_events
                     if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed]
    print(run_summary(Warehouse(home=SalesintelHome(path=home)), failed_checks))
    if not result.success:
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
        checks = [name for name, _, _ in failed_checks]
        print(f"\nThe run did not finish cleanly. Failed steps: {failed or '-'}; failed checks: {checks or '-'}",
              file=sys.stderr)
        for event in result.all_events:
            if event.is_step_failure and event.step_key == "alert_deliveries":
                error = event.event_specific_data.error
                text = error.message.strip().splitlines()[-1] if error else "-"
                print(f"  alert_deliveries: {text.split('Failure: ', 1)[-1]}", file=sys.stderr)
            elif event.is_step_failure and event.step_failure_data.error:
                # e.g. a CRM that refused the pull: the one sentence of the error that caused it
                error = event.step_failure_data.error
                while error.cause:
                    error = error.cause
                print(f"  {event.step_key}: {error.message.strip().splitlines()[-1].split(': ', 1)[-1]}",
                      file=sys.stderr)
        return 1
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salesintel", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="materialise every asset and print a summary")
    run_cmd.add_argument("--job", default="salesintel_job")
    run_cmd.add_argument("--home", help="SALESINTEL_HOME (default .salesintel)")
    run_cmd.add_argument("--source", choices=list(SOURCES), help="SALESINTEL_SOURCE")
    run_cmd.add_argument("--csv", help="SALESINTEL_CSV: a CRM export (implies --source csv)")
    run_cmd.add_argument("--as-of", dest="as_of", help="SALESINTEL_AS_OF, YYYY-MM-DD")
    run_cmd.add_argument("-v", "--verbose", action="store_true", help="show Dagster's step log")
    run_cmd.set_defaults(handler=run)
    feedback_cmd = commands.add_parser("feedback", help="rate an alert helpful or noise (acknowledges it)")
    feedback_cmd.add_argument("alert_id")
    feedback_cmd.add_argument("verdict", choices=RATINGS)
    feedback_cmd.add_argument("--by", help="who rates it (default: the current user)")
    feedback_cmd.add_argument("--home", help="SALESINTEL_HOME (default .salesintel)")
    feedback_cmd.set_defaults(handler=feedback)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
