"""Sensors: the CRM-change path (pull, analyse, alert and deliver when the
CRM source shows a change), alert materialisation when the alert engine's
inputs change, delivery when new alerts land, and a notice to the data team
when a run fails.

Cursors hold the storage ids of the materialisations already acted on, and
run keys name them, so a sensor never requests the same work twice.
"""

import json

import dagster as dg

from salesintel_assets.domain.alerts.delivery_plan import delivery_id_for
from salesintel_assets.domain.alerts.delivery import send_now
from salesintel_assets.domain.alerts.messages import render_run_failure
from salesintel_assets.domain.alerts.routing import Router
from salesintel_assets.jobs import alert_delivery_job, alerts_job, crm_change_job
from salesintel_assets.resources.crm import CRMSource
from salesintel_assets.resources.notifier import EmailNotifier, OutboxNotifier, SlackNotifier, build_channels
from salesintel_assets.resources.settings import SalesintelSettings

ALERT_INPUTS = ("anomalies", "deal_risk_scores", "dim_sales_reps")
IMMEDIATE_ONLY = {"ops": {"alert_deliveries": {"config": {"digests": []}}}}
FAILURE_ROLE = "data_team"


def latest_materialization(instance: dg.DagsterInstance, key: str) -> int | None:
    """Storage id of the asset's latest materialisation (None if never)."""
    result = instance.fetch_materializations(dg.AssetKey(key), limit=1)
    return result.records[0].storage_id if result.records else None


def _run_of(instance: dg.DagsterInstance, key: str) -> dg.DagsterRun | None:
    """The run of the asset's latest materialisation (None if never or runless)."""
    result = instance.fetch_materializations(dg.AssetKey(key), limit=1)
    run_id = result.records[0].run_id if result.records else None
    return instance.get_run_by_id(run_id) if run_id else None


@dg.sensor(name="pull_on_crm_change", job=crm_change_job, minimum_interval_seconds=10,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="When the CRM source shows a change, pull it and carry it through to delivered alerts in "
                       "one run (crm_change_job). Sources that cannot tell cheaply are pulled by the schedules.")
def crm_change_sensor(context: dg.SensorEvaluationContext, crm: CRMSource):
    marker = crm.change_marker()
    if marker is None:
        return dg.SkipReason(f"{crm.describe()} cannot tell a change without a pull: the schedules pull it")
    if marker == context.cursor:
        return dg.SkipReason("the CRM source has not changed since the last pull this sensor requested")
    first_look = context.cursor is None
    context.update_cursor(marker)
    if first_look and latest_materialization(context.instance, "raw_deals") is not None:
        # e.g. `salesintel ui` after `salesintel run`: what is there was pulled already; watch from now on
        return dg.SkipReason("watching the CRM source from now on (it was pulled before this sensor started)")
    return dg.RunRequest(run_key=f"crm:{marker}", run_config=IMMEDIATE_ONLY,
                         tags={"salesintel/trigger": "crm_change"})


@dg.sensor(name="alerts_on_new_inputs", job=alerts_job, minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Materialise alerts when anomalies, risk scores or the sales org change.")
def alerts_sensor(context: dg.SensorEvaluationContext):
    seen = json.loads(context.cursor) if context.cursor else {}
    latest = {key: latest_materialization(context.instance, key) for key in ALERT_INPUTS}
    if latest["anomalies"] is None:
        return dg.SkipReason("anomalies have not been materialised yet")
    changed = [k for k, v in latest.items() if v is not None and v > (seen.get(k) or -1)]
    if not changed:
        return dg.SkipReason("no input of the alert engine changed")
    context.update_cursor(json.dumps(latest))
    alerts_at = latest_materialization(context.instance, "alerts")
    if alerts_at is not None and alerts_at > max(latest[k] for k in changed):
        return dg.SkipReason(f"alerts are already newer than {', '.join(changed)}")
    run_key = "alerts:" + ",".join(f"{k}={latest[k]}" for k in ALERT_INPUTS if latest[k] is not None)
    return dg.RunRequest(run_key=run_key, tags={"salesintel/changed_inputs": ",".join(changed)})


@dg.sensor(name="deliver_new_alerts", job=alert_delivery_job, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Deliver new alerts (immediate messages and notices) when alerts are materialised.")
def delivery_sensor(context: dg.SensorEvaluationContext):
    alerts_at = latest_materialization(context.instance, "alerts")
    if alerts_at is None:
        return dg.SkipReason("alerts have not been materialised yet")
    if alerts_at <= int(context.cursor or -1):
        return dg.SkipReason("no new alerts since the last delivery request")
    producer = _run_of(context.instance, "alerts")
    if producer is not None and not producer.is_finished:
        # e.g. crm_change_job or salesintel_job: they deliver these alerts themselves a step later
        return dg.SkipReason(f"run {producer.run_id} that materialised these alerts is still running")
    context.update_cursor(str(alerts_at))
    delivered_at = latest_materialization(context.instance, "alert_deliveries")
    if delivered_at is not None and delivered_at > alerts_at:
        return dg.SkipReason("these alerts were already delivered in the same run")
    return dg.RunRequest(run_key=f"deliver:{alerts_at}", run_config=IMMEDIATE_ONLY)


@dg.run_failure_sensor(name="notify_data_team_on_run_failure", default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Tell the data team's channel when a run fails.")
def run_failure_notice(context: dg.RunFailureSensorContext, settings: SalesintelSettings, slack: SlackNotifier,
                       email: EmailNotifier, outbox: OutboxNotifier):
    run = context.dagster_run
    error = context.failure_event.message or ""
    message = render_run_failure(run.job_name, run.run_id, error)
    channels, configured = build_channels(slack, email, outbox)
    for contact in Router(None, settings.rules().alerts).role(FAILURE_ROLE, None):
        message_id = f"run_failure/{run.run_id}"
        row = {"delivery_id": delivery_id_for(message_id, contact.id, "notice"), "message_id": message_id,
               "message_kind": "run_failure", "alert_ids": "", "recipient_id": contact.id,
               "recipient_name": contact.name, "recipient_role": contact.role, "recipient_email": contact.email,
               "recipient_slack": contact.slack_channel, "subject": message.subject, "body_text": message.text,
               "blocks_json": message.blocks_json}
        used, errors = send_now(row, channels, configured)
        if used is None:
            context.log.error(f"run-failure notice to {contact.id} not delivered: {errors}")
        else:
            context.log.info(f"run-failure notice to {contact.id} via {used}")


sensors: list = [crm_change_sensor, alerts_sensor, delivery_sensor, run_failure_notice]
