"""Schedules at the design's cadence (UTC): ingestion and metrics every 4
hours, models 05:30, drivers 06:00, anomalies 07:00, digests 08:00, the rep
scorecard on Mondays and the executive report on the 1st. Every tick asks
for one run per tenant (the default one and every registered sales org)."""

import dagster as dg

from salesintel_assets.jobs import (alert_delivery_job, anomalies_job, drivers_job, ingestion_job, metrics_job,
                                    models_job)
from salesintel_assets.resources.tenancy import registered_tenants


def per_tenant_schedule(name: str, job, cron: str, description: str = "",
                        run_config: dict | None = None) -> dg.ScheduleDefinition:
    """A schedule whose every tick asks for one run of ``job`` per registered tenant."""
    def per_tenant(context: dg.ScheduleEvaluationContext):
        for tenant in registered_tenants(context.instance):
            yield dg.RunRequest(partition_key=tenant, run_config=run_config or {})

    return dg.ScheduleDefinition(name=name, job=job, cron_schedule=cron, description=description,
                                 execution_fn=per_tenant, default_status=dg.DefaultScheduleStatus.RUNNING)


def _delivery(name: str, cron: str, digests: list[str], reports: list[str], description: str):
    config = {"ops": {"alert_deliveries": {"config": {"digests": digests, "reports": reports}}}}
    return per_tenant_schedule(name, alert_delivery_job, cron, description, config)


schedules = [
    per_tenant_schedule("ingestion_every_4_hours", ingestion_job, "0 */4 * * *",
              "Every 4 hours: incremental CRM pull, quality gates, warehouse."),
    per_tenant_schedule("metrics_every_4_hours", metrics_job, "30 */4 * * *",
              "Every 4 hours, half an hour after the ingestion pull it reads."),
    per_tenant_schedule("models_daily", models_job, "30 5 * * *",
              "Daily at 05:30: drift check, retrain and champion/challenger, risk scores, forecast."),
    per_tenant_schedule("drivers_daily", drivers_job, "0 6 * * *", "Daily at 06:00: drivers from the night's metrics."),
    per_tenant_schedule("anomalies_daily", anomalies_job, "0 7 * * *",
              "Daily at 07:00: anomalies from the night's warehouse and metrics."),
    _delivery("daily_alert_digest", "0 8 * * *", ["daily"], [],
              "Daily digests (P2/P3 of daily types, throttled P1s) at 08:00."),
    _delivery("weekly_rep_scorecard", "0 8 * * 1", ["weekly"], ["rep_scorecard"],
              "Monday 08:00: weekly digests and each rep's scorecard."),
    _delivery("monthly_executive_report", "0 8 1 * *", [], ["executive_report"],
              "On the 1st at 08:00: the executive report of the month just ended."),
    _delivery("alert_escalation_check", "15 * * * *", [], [],
              "Hourly: escalate unacknowledged P1 alerts, send pending and resolved notices."),
]
