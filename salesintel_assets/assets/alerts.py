"""Alerts layer: the feedback loop (``alert_feedback`` -> ``alert_precision``
-> ``alert_threshold_changes``), the rule engine (``alerts``) and
exactly-once delivery (``alert_deliveries``).

Feedback arrives in the feedback inbox (the CLI, Slack buttons); each run
turns it into ``alert_feedback`` first, so precision, the severity floors it
sets and the acknowledgements that stop escalations are all from this run.
State across runs (open alerts, the delivery ledger, the change log) is read
back from each asset's own table, so re-runs are idempotent.
``deal_risk_scores`` is an optional input: a dependency for ordering (the
main job scores deals before alerting) but read through the warehouse, so
alerts still work when the table is absent or empty.
"""

from datetime import datetime, timezone

import dagster as dg
import pandas as pd

from salesintel_assets.constants import ALERTS
from salesintel_assets.domain.alerts import candidates as alert_rules
from salesintel_assets.domain.alerts import delivery_plan
from salesintel_assets.domain.alerts import lifecycle as alert_state
from salesintel_assets.domain.alerts import feedback
from salesintel_assets.domain.alerts import reports
from salesintel_assets.domain.alerts import snoozes
from salesintel_assets.domain.alerts.delivery import run_delivery
from salesintel_assets.domain.alerts.feedback_inbox import acknowledged_alerts, feedback_table, read_events
from salesintel_assets.domain.alerts.routing import Router
from salesintel_assets.domain.models import reporting
from salesintel_assets.metadata import fail_after, frame_metadata, schema_metadata
from salesintel_assets.resources.delivery_ledger import DeliveryLedger
from salesintel_assets.resources.feedback import FeedbackInbox
from salesintel_assets.resources.notifier import EmailNotifier, OutboxNotifier, SlackNotifier, build_channels
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import Warehouse
from salesintel_assets.schemas import alerts as schemas

FRESHNESS = fail_after(hours=26)
DIGEST_CADENCES = ("daily", "weekly")
REPORTS = ("rep_scorecard", "executive_report")


def _utcnow() -> pd.Timestamp:
    return pd.Timestamp(datetime.now(timezone.utc).replace(tzinfo=None))


def _risk_horizon(risk: pd.DataFrame | None, warehouse: Warehouse, rules) -> int:
    """The days the scores' model answers (shorter than the rules' for a model of a short history)."""
    if risk is None or not len(risk) or "model_version" not in risk:
        return rules.risk.win_horizon_days
    return reporting.version_horizon(warehouse.read_table("deal_risk_model"), int(risk["model_version"].iloc[0]),
                                     rules.risk.win_horizon_days)


@dg.asset(group_name=ALERTS, freshness_policy=FRESHNESS, kinds={"duckdb"},
          deps=["fact_deals", "fact_stage_transitions", "deal_risk_scores", "deal_risk_model",
                "alert_threshold_changes"],
          metadata=schema_metadata(schemas.Alerts))
def alerts(anomalies: pd.DataFrame, dim_sales_reps: pd.DataFrame, settings: SalesintelSettings,
           warehouse: Warehouse) -> dg.Output[pd.DataFrame]:
    """One row per alert: anomalies mapped to the taxonomy, de-duplicated
    against the open alerts, with the message, recipients and the delivery
    decision (rollout mode, P1 throttle, digest). Evidence from history is
    aggregated in SQL (deals and segments named by the anomalies only)."""
    rules = settings.rules()
    as_of = settings.analysis_date()
    router = Router(dim_sales_reps, rules.alerts)
    with warehouse.connect() as con:
        evidence = alert_rules.load_evidence(con, anomalies, as_of)
    risk = warehouse.read_table("deal_risk_scores")
    ctx = alert_rules.Context(evidence, router, risk, rules, as_of, _risk_horizon(risk, warehouse, rules))
    floors = feedback.severity_floors(warehouse.read_table("alert_threshold_changes"))
    candidates, skipped = alert_rules.build_candidates(anomalies, ctx, floors)
    table = alert_state.update_alerts(warehouse.read_table("alerts"), candidates, router, rules, as_of)
    live = table[table["status"].isin(alert_state.OPEN)]
    return dg.Output(table, metadata=frame_metadata(
        table.drop(columns=["body_text", "blocks_json", "content_json"]),
        rollout_mode=rules.alerts.rollout.mode,
        anomalies=len(anomalies), new=int(table["status"].eq("open").sum()),
        updated=int(table["status"].eq("updated").sum()),
        resolved_now=int((table["resolved_at"] == as_of.normalize()).sum()),
        open_by_priority=dg.MetadataValue.json(live.groupby("priority").size().to_dict()),
        by_delivery=dg.MetadataValue.json(live.groupby("delivery").size().to_dict()),
        unmapped_anomalies=skipped["unmapped"], below_feedback_floor=skipped["below_feedback_floor"],
        risk_scores_used=ctx.risk is not None,
        example=dg.MetadataValue.md(f"```\n{live.iloc[0]['body_text']}\n```" if len(live) else "_no open alerts_"),
    ))


class DeliveryConfig(dg.Config):
    """Which digests and scheduled summaries this run compiles. Sensor runs
    send immediate messages only; the schedules ask for their cadence."""

    digests: list[str] = ["daily", "weekly"]
    reports: list[str] = []  # "rep_scorecard" (weekly), "executive_report" (monthly)


@dg.asset(group_name=ALERTS, freshness_policy=FRESHNESS, kinds={"duckdb", "slack", "email"},
          deps=["alert_feedback", "alert_precision", "deal_risk_scores", "fact_deals"],
          metadata=schema_metadata(schemas.AlertDeliveries))
def alert_deliveries(context: dg.AssetExecutionContext, config: DeliveryConfig, alerts: pd.DataFrame,
                     dim_sales_reps: pd.DataFrame, settings: SalesintelSettings,
                     warehouse: Warehouse, delivery_ledger: DeliveryLedger, slack: SlackNotifier,
                     email: EmailNotifier, outbox: OutboxNotifier):
    """The outbox ledger: every message x recipient x channel with its status.
    One delivery run per home at a time; due messages are committed as
    pending to the live ledger, then sent one by one, each marked sent only
    after the service accepted it (or reconciled when that is ambiguous).
    The table is the ledger's mirror. Fails, after storing the table, when a
    message could not be delivered or confirmed."""
    unknown = (set(config.digests) - set(DIGEST_CADENCES)) | (set(config.reports) - set(REPORTS))
    if unknown:
        raise dg.Failure(f"unknown digest or report {sorted(unknown)}: use {list(DIGEST_CADENCES)} and {list(REPORTS)}")
    rules = settings.rules()
    as_of = settings.analysis_date()
    router = Router(dim_sales_reps, rules.alerts)
    answers = warehouse.read_table("alert_feedback")
    acknowledged = acknowledged_alerts(answers, _utcnow())
    snoozed = snoozes.snoozed_keys(answers, alerts, _utcnow())
    silenced = snoozes.silenced_alerts(alerts, snoozed)
    channels, configured = build_channels(slack, email, outbox)

    def plan(previous: pd.DataFrame) -> pd.DataFrame:
        planned = delivery_plan.plan_messages(alerts, previous, acknowledged, router, rules, as_of, _utcnow(),
                                              list(config.digests), configured, silenced)
        known = pd.concat([previous, planned], ignore_index=True) if len(previous) else planned
        summaries = _plan_reports(config.reports, alerts, known, router, warehouse, configured, as_of)
        return pd.concat([planned, summaries], ignore_index=True) if len(summaries) else planned

    with delivery_ledger.exclusive(on_wait=context.log.warning) as store:
        final, report, planned = run_delivery(store, plan, channels, configured, _utcnow,
                                              seed=lambda: warehouse.read_table("alert_deliveries"))
        context.log.info(f"delivery: {report.as_dict()} via {configured or ['outbox']}")
        # Stored (the warehouse mirror) while the lock is held, so runs never interleave their mirrors.
        yield dg.Output(final, metadata=frame_metadata(
            final.drop(columns=["body_text", "blocks_json"]), planned=planned,
            channels=",".join(configured) or "outbox", **report.as_dict(), snoozed_dedup_keys=len(snoozed),
            **delivery_plan.message_states(final),
        ))
    problem = report.problem()
    if problem:
        raise dg.Failure(problem)


def _plan_reports(wanted: list[str], alerts: pd.DataFrame, ledger: pd.DataFrame, router: Router,
                  warehouse: Warehouse, configured: list[str], as_of: pd.Timestamp) -> pd.DataFrame:
    """The weekly rep scorecards and the monthly executive report, when asked."""
    planned = []
    with warehouse.connect() as con:
        if "rep_scorecard" in wanted:
            week = delivery_plan.period_of("weekly", as_of)
            items = reports.rep_scorecards(warehouse.read_table("dim_sales_reps"), reports.rep_stats(con, as_of),
                                           alerts, warehouse.read_table("deal_risk_scores"), router, as_of, week)
            planned.append(delivery_plan.plan_summaries(ledger, "scorecard", week, items, configured, as_of, _utcnow()))
        if "executive_report" in wanted:
            month = delivery_plan.month_of(as_of)
            items = reports.executive_report(alerts, warehouse.read_table("alert_precision"), ledger,
                                             reports.company_stats(con, as_of), router, as_of, month)
            planned.append(delivery_plan.plan_summaries(ledger, "report", month, items, configured, as_of, _utcnow()))
    planned = [p for p in planned if len(p)]
    return pd.concat(planned, ignore_index=True) if planned else delivery_plan.empty_ledger()


@dg.asset(group_name=ALERTS, freshness_policy=FRESHNESS, kinds={"sqlite", "duckdb"},
          metadata=schema_metadata(schemas.AlertFeedback))
def alert_feedback(feedback_inbox: FeedbackInbox) -> dg.Output[pd.DataFrame]:
    """Per alert and person, from the feedback inbox: the latest rating
    (helpful / noise), the latest event of any kind (every event acknowledges
    the alert) and a snooze in force. Latest by when it happened, so an older
    event that arrives late never overwrites a newer one."""
    events = read_events(feedback_inbox.path())
    table = feedback_table(events)
    return dg.Output(table, metadata=frame_metadata(table, events=len(events), inbox=str(feedback_inbox.path())))


@dg.asset(group_name=ALERTS, freshness_policy=FRESHNESS, kinds={"duckdb"},
          metadata=schema_metadata(schemas.AlertPrecision))
def alert_precision(alert_feedback: pd.DataFrame, settings: SalesintelSettings) -> dg.Output[pd.DataFrame]:
    """Per alert type: helpful / rated over every rated alert, with its
    interval and whether it is below the rules' target."""
    precision = feedback.alert_precision(alert_feedback, settings.rules(), settings.analysis_date())
    return dg.Output(precision, metadata=frame_metadata(
        precision, below_target=int(precision["status"].eq("below_target").sum())))


@dg.asset(group_name=ALERTS, freshness_policy=FRESHNESS, kinds={"duckdb"},
          metadata=schema_metadata(schemas.AlertThresholdChanges))
def alert_threshold_changes(alert_precision: pd.DataFrame, alert_feedback: pd.DataFrame,
                            warehouse: Warehouse) -> dg.Output[pd.DataFrame]:
    """Every automatic tightening of an alert type's minimum severity, and
    why: a type whose precision over the ratings given since its last change
    is below target over enough ratings gets the next severity up."""
    previous = warehouse.read_table("alert_threshold_changes")
    changes = feedback.adapt_thresholds(alert_precision, alert_feedback, previous, _utcnow())
    added = len(changes) - (0 if previous is None else len(previous))
    return dg.Output(changes, metadata=frame_metadata(
        changes, new_changes=added, min_severity=dg.MetadataValue.json(feedback.severity_floors(changes))))
