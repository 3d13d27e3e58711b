"""Checks of the alerts layer: the tables' schemas (one live alert per
dedup key, each message sent at most once), nothing left undelivered, and
the P1 throttle kept."""

import dagster as dg
import pandas as pd

from salesintel_assets.checks.schema import table_schema_check
from salesintel_assets.domain.alerts import delivery_plan
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import Warehouse
from salesintel_assets.schemas import alerts as schemas

alerts_schema_valid = table_schema_check("alerts", schemas.Alerts, name="one_live_alert_per_dedup_key")
alert_deliveries_schema_valid = table_schema_check("alert_deliveries", schemas.AlertDeliveries,
                                                   name="each_message_sent_at_most_once")
alert_feedback_schema_valid = table_schema_check("alert_feedback", schemas.AlertFeedback,
                                                 name="one_row_per_alert_and_person")
alert_precision_schema_valid = table_schema_check("alert_precision", schemas.AlertPrecision)
alert_threshold_changes_schema_valid = table_schema_check("alert_threshold_changes", schemas.AlertThresholdChanges)


@dg.asset_check(asset="alert_deliveries", description="Every planned message reached its recipient on some channel.")
def every_message_delivered(warehouse: Warehouse) -> dg.AssetCheckResult:
    ledger = warehouse.read_table("alert_deliveries")
    if ledger is None or ledger.empty:
        return dg.AssetCheckResult(passed=True, metadata={"messages": 0})
    delivered = ledger.groupby(["message_id", "recipient_id"])["status"].agg(lambda s: s.eq("sent").any())
    waiting = delivered[~delivered].reset_index()[["message_id", "recipient_id"]]
    errors = ledger[ledger["status"].isin(["failed", "unknown"])].groupby("channel")["error"].agg(
        lambda e: e.iloc[-1]).to_dict()
    states = delivery_plan.message_states(ledger)
    return dg.AssetCheckResult(
        passed=waiting.empty, severity=dg.AssetCheckSeverity.WARN,
        description=(f"{states['messages_failed']} failed (retried on the next run), "
                     f"{states['messages_unknown']} unknown (may have arrived; not re-sent), "
                     f"{states['messages_pending']} pending") if len(waiting) else None,
        metadata={"messages": len(delivered), "undelivered": len(waiting), **states,
                  "last_error_by_channel": dg.MetadataValue.json(errors),
                  "waiting": dg.MetadataValue.md(waiting.head(20).to_markdown(index=False) if len(waiting) else "-")})


@dg.asset_check(asset="alerts", description="No rep got more immediate P1 alerts in a window than the throttle allows.")
def p1_throttle_respected(warehouse: Warehouse, settings: SalesintelSettings) -> dg.AssetCheckResult:
    table = warehouse.read_table("alerts")
    throttle = settings.rules().alerts.throttle
    if table is None or table.empty:
        return dg.AssetCheckResult(passed=True, metadata={"reps": 0})
    as_of = settings.analysis_date()
    start = as_of - pd.Timedelta(days=throttle.window_days - 1)
    p1 = table[table["priority"].eq("P1") & table["delivery"].eq("immediate")
               & (pd.to_datetime(table["first_seen"]) >= start)]
    per_rep = p1.groupby("sales_rep_id").size()
    worst = int(per_rep.max()) if len(per_rep) else 0
    return dg.AssetCheckResult(passed=worst <= throttle.max_p1_per_rep,
                               metadata={"max_immediate_p1_per_rep": worst, "cap": throttle.max_p1_per_rep})
