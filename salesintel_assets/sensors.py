"""Sensors: the CRM-change path (pull, analyse, alert and deliver when the
CRM source shows a change), alert materialisation when the alert engine's
inputs change, delivery when new alerts land (all three per tenant), a
notice to the data team when a run fails, and the registration of new
tenants.

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
from salesintel_assets.resources.tenancy import TENANTS, registered_tenants, tenant_crm
from salesintel_assets.resources.warehouse import SalesintelHome
from salesintel_assets.domain.common.tenants import DEFAULT_TENANT, TenantError, resolve_tenant, tenant_names

ALERT_INPUTS = ("anomalies", "deal_risk_scores", "dim_sales_reps")
IMMEDIATE_ONLY = {"ops": {"alert_deliveries": {"config": {"digests": []}}}}
FAILURE_ROLE = "data_team"


def latest_materialization(instance: dg.DagsterInstance, key: str, tenant: str | None = None) -> int | None:
    """Storage id of the asset's latest materialisation (None if never), for one tenant when named."""
    records = dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[tenant] if tenant else None)
    result = instance.fetch_materializations(records, limit=1)
    return result.records[0].storage_id if result.records else None


def _per_tenant(context: dg.SensorEvaluationContext, decide) -> dg.SensorResult | dg.SkipReason:
    """Run ``decide(tenant, seen) -> (RunRequest | reason, new cursor)`` for
    every tenant; each tenant keeps its own cursor, so one never waits for another."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    tenants = registered_tenants(context.instance)
    requests, reasons = [], []
    for tenant in tenants:
        outcome, cursor[tenant] = decide(tenant, cursor.get(tenant))
        if isinstance(outcome, dg.RunRequest):
            requests.append(outcome)
        else:
            reasons.append(outcome if len(tenants) == 1 else f"{tenant}: {outcome}")
    context.update_cursor(json.dumps(cursor))
    return dg.SensorResult(run_requests=requests) if requests else dg.SkipReason("; ".join(reasons))


def _run_of(instance: dg.DagsterInstance, key: str, tenant: str) -> dg.DagsterRun | None:
    """The run of the asset's latest materialisation for the tenant (None if never or runless)."""
    records = dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[tenant])
    result = instance.fetch_materializations(records, limit=1)
    run_id = result.records[0].run_id if result.records else None
    return instance.get_run_by_id(run_id) if run_id else None


@dg.sensor(name="pull_on_crm_change", job=crm_change_job, minimum_interval_seconds=10,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="When a tenant's CRM source shows a change, pull it and carry it through to delivered alerts "
                       "in one run (crm_change_job). Sources that cannot tell cheaply are pulled by the schedules.")
def crm_change_sensor(context: dg.SensorEvaluationContext, crm: CRMSource, home: SalesintelHome):
    def decide(tenant: str, seen: str | None):
        try:
            source = crm if tenant == DEFAULT_TENANT else tenant_crm(resolve_tenant(home.path, tenant))
        except TenantError as exc:
            return str(exc), seen
        marker = source.change_marker()
        if marker is None:
            return f"{source.describe()} cannot tell a change without a pull: the schedules pull it", seen
        if marker == seen:
            return "the CRM source has not changed since the last pull this sensor requested", seen
        if seen is None and latest_materialization(context.instance, "raw_deals", tenant) is not None:
            # e.g. `salesintel ui` after `salesintel run`: what is there was pulled already; watch from now on
            return "watching the CRM source from now on (it was pulled before this sensor started)", marker
        return dg.RunRequest(run_key=f"crm:{tenant}:{marker}", partition_key=tenant, run_config=IMMEDIATE_ONLY,
                             tags={"salesintel/trigger": "crm_change"}), marker

    return _per_tenant(context, decide)


@dg.sensor(name="alerts_on_new_inputs", job=alerts_job, minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Materialise alerts when anomalies, risk scores or the sales org of a tenant change.")
def alerts_sensor(context: dg.SensorEvaluationContext):
    def decide(tenant: str, seen: dict | None):
        seen = seen or {}
        latest = {key: latest_materialization(context.instance, key, tenant) for key in ALERT_INPUTS}
        if latest["anomalies"] is None:
            return "anomalies have not been materialised yet", seen
        changed = [k for k, v in latest.items() if v is not None and v > (seen.get(k) or -1)]
        if not changed:
            return "no input of the alert engine changed", seen
        alerts_at = latest_materialization(context.instance, "alerts", tenant)
        if alerts_at is not None and alerts_at > max(latest[k] for k in changed):
            return f"alerts are already newer than {', '.join(changed)}", latest
        run_key = f"alerts:{tenant}:" + ",".join(f"{k}={latest[k]}" for k in ALERT_INPUTS if latest[k] is not None)
        return dg.RunRequest(run_key=run_key, partition_key=tenant,
                             tags={"salesintel/changed_inputs": ",".join(changed)}), latest

    return _per_tenant(context, decide)


@dg.sensor(name="deliver_new_alerts", job=alert_delivery_job, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Deliver a tenant's new alerts (immediate messages and notices) when they are materialised.")
def delivery_sensor(context: dg.SensorEvaluationContext):
    def decide(tenant: str, seen: int | None):
        alerts_at = latest_materialization(context.instance, "alerts", tenant)
        if alerts_at is None:
            return "alerts have not been materialised yet", seen
        if alerts_at <= (seen if seen is not None else -1):
            return "no new alerts since the last delivery request", seen
        producer = _run_of(context.instance, "alerts", tenant)
        if producer is not None and not producer.is_finished:
            # e.g. crm_change_job or salesintel_job: they deliver these alerts themselves a step later
            return f"run {producer.run_id} that materialised these alerts is still running", seen
        delivered_at = latest_materialization(context.instance, "alert_deliveries", tenant)
        if delivered_at is not None and delivered_at > alerts_at:
            return "these alerts were already delivered in the same run", alerts_at
        return dg.RunRequest(run_key=f"deliver:{tenant}:{alerts_at}", partition_key=tenant,
                             run_config=IMMEDIATE_ONLY), alerts_at

    return _per_tenant(context, decide)


@dg.sensor(name="register_tenants", minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Add a partition for every sales org of the tenants file that Dagster does not know yet.")
def tenants_sensor(context: dg.SensorEvaluationContext, home: SalesintelHome):
    known = set(registered_tenants(context.instance))
    try:
        listed = tenant_names(home.path)
    except TenantError as exc:
        return dg.SkipReason(str(exc))
    new = [name for name in listed if name not in known]
    if not new:
        return dg.SkipReason("every tenant of the tenants file is registered")
    return dg.SensorResult(dynamic_partitions_requests=[TENANTS.build_add_request(new)])


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


sensors: list = [crm_change_sensor, alerts_sensor, delivery_sensor, run_failure_notice, tenants_sensor]
