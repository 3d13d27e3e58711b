"""Sensors: alerts when their inputs change, delivery when alerts land, and
the run-failure notice to the data team (through the Slack stand-in)."""

import json

import dagster as dg

from salesintel_assets.definitions import build_definitions
from salesintel_assets.resources.notifier import OutboxNotifier, SlackNotifier
from salesintel_assets.resources.warehouse import SalesintelHome
from salesintel_assets.resources.crm import CsvCRM
from salesintel_assets.sensors import (IMMEDIATE_ONLY, alerts_sensor, crm_change_sensor, delivery_sensor,
                                       run_failure_notice, sensors)
from salesintel_assets_tests.slack_standin import SlackStandIn
from salesintel_assets_tests.support import sample_resources

TOKEN = "xoxb-sensor-token"


def _materialize(instance: dg.DagsterInstance, key: str, tenant: str = "default") -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=tenant))


def _tick(sensor, instance, cursor=None, resources=None):
    # The definitions let the sensor resolve the partitioned (per-tenant) run requests.
    definitions = build_definitions(sample_resources("unused-home"))
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=definitions, resources=resources)
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        return sensor.evaluate_tick(context)


def test_sensors_are_registered():
    assert {s.name for s in sensors} == {"pull_on_crm_change", "alerts_on_new_inputs", "deliver_new_alerts",
                                         "notify_data_team_on_run_failure", "register_tenants"}


def test_crm_change_sensor_requests_one_end_to_end_run_per_change_of_the_export(tmp_path):
    export = tmp_path / "deals.csv"
    export.write_text("deal_id\nD1\n")
    crm = CsvCRM(path=str(export))
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor=None):
        resources = {"crm": crm, "home": SalesintelHome(path=str(tmp_path))}
        return _tick(crm_change_sensor, instance, cursor, resources)

    first = tick()
    [request] = first.run_requests
    assert request.run_config == IMMEDIATE_ONLY and request.tags["salesintel/trigger"] == "crm_change"
    assert request.partition_key == "default"  # the environment's CRM is the default tenant's
    same = tick(first.cursor)
    assert same.run_requests == [] and "has not changed" in same.skip_message
    export.write_text("deal_id\nD1\nD2\n")
    changed = tick(first.cursor)
    [again] = changed.run_requests
    assert again.run_key != request.run_key


def test_crm_change_sensor_first_only_watches_a_source_pulled_before_it_started(tmp_path):
    """e.g. `salesintel ui` after `salesintel run`: no run for what is already in the warehouse."""
    export = tmp_path / "deals.csv"
    export.write_text("deal_id\nD1\n")
    instance = dg.DagsterInstance.ephemeral()
    _materialize(instance, "raw_deals")
    resources = {"crm": CsvCRM(path=str(export)), "home": SalesintelHome(path=str(tmp_path))}
    first = _tick(crm_change_sensor, instance, resources=resources)
    assert first.run_requests == [] and "watching the CRM source from now on" in first.skip_message
    export.write_text("deal_id\nD1\nD2\n")
    assert len(_tick(crm_change_sensor, instance, first.cursor, resources).run_requests) == 1


def test_crm_change_sensor_leaves_sources_that_cannot_tell_to_the_schedules(tmp_path):
    class Opaque(CsvCRM):
        def change_marker(self):
            return None

    resources = {"crm": Opaque(path="unused.csv"), "home": SalesintelHome(path=str(tmp_path))}
    result = _tick(crm_change_sensor, dg.DagsterInstance.ephemeral(), resources=resources)
    assert result.run_requests == [] and "the schedules pull it" in result.skip_message


def test_alerts_sensor_fires_once_per_input_change():
    instance = dg.DagsterInstance.ephemeral()
    first = _tick(alerts_sensor, instance)
    assert first.run_requests == [] and "anomalies have not been materialised" in first.skip_message
    _materialize(instance, "anomalies")
    fired = _tick(alerts_sensor, instance)
    [request] = fired.run_requests
    assert request.tags["salesintel/changed_inputs"] == "anomalies"
    again = _tick(alerts_sensor, instance, cursor=fired.cursor)
    assert again.run_requests == [] and again.skip_message == "no input of the alert engine changed"
    _materialize(instance, "deal_risk_scores")
    scores = _tick(alerts_sensor, instance, cursor=fired.cursor)
    [request2] = scores.run_requests
    assert request2.tags["salesintel/changed_inputs"] == "deal_risk_scores"
    assert request2.run_key != request.run_key
    assert json.loads(scores.cursor)["default"].keys() == {"anomalies", "deal_risk_scores", "dim_sales_reps"}


def test_alerts_sensor_skips_when_alerts_are_already_newer():
    instance = dg.DagsterInstance.ephemeral()
    _materialize(instance, "anomalies")
    _materialize(instance, "alerts")  # e.g. the main job ran both
    result = _tick(alerts_sensor, instance)
    assert result.run_requests == [] and "already newer" in result.skip_message


def test_delivery_sensor_requests_immediate_delivery_for_new_alerts():
    instance = dg.DagsterInstance.ephemeral()
    assert _tick(delivery_sensor, instance).run_requests == []
    _materialize(instance, "alerts")
    fired = _tick(delivery_sensor, instance)
    [request] = fired.run_requests
    assert request.run_config == IMMEDIATE_ONLY
    assert _tick(delivery_sensor, instance, cursor=fired.cursor).run_requests == []
    _materialize(instance, "alerts")
    _materialize(instance, "alert_deliveries")  # delivered in the same run already
    later = _tick(delivery_sensor, instance, cursor=fired.cursor)
    assert later.run_requests == [] and "already delivered" in later.skip_message


@dg.op
def _explode():
    raise RuntimeError("warehouse file is locked")


@dg.job
def _failing_job():
    _explode()


def _failure_context(instance, resources):
    result = _failing_job.execute_in_process(instance=instance, raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    event = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    needed = {k: resources[k] for k in ("settings", "slack", "email", "outbox")}
    return dg.build_run_status_sensor_context(sensor_name=run_failure_notice.name, dagster_event=event,
                                              dagster_instance=instance, dagster_run=run,
                                              resources=needed), run


def test_run_failure_tells_the_data_team_on_slack(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    with SlackStandIn(token=TOKEN) as slack:
        resources = sample_resources(tmp_path, slack=SlackNotifier(token=TOKEN, base_url=slack.base_url))
        context, run = _failure_context(instance, resources)
        with context:
            run_failure_notice(context.for_run_failure())
        # the data team has no Slack channel in the default directory: found by its email
        [message] = slack.messages_to(SlackStandIn.dm_channel("data-team@example.com"))
        assert message["text"].startswith(f"🚨 Run failed: _failing_job ({run.run_id})\n\n")
        assert "Execution of run for \"_failing_job\" failed" in message["text"]
        assert message["blocks"][0]["text"]["text"] == f"🚨 Run failed: _failing_job ({run.run_id})"


def test_run_failure_goes_to_the_outbox_without_channels(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    resources = sample_resources(tmp_path)
    context, run = _failure_context(instance, resources)
    with context:
        run_failure_notice(context.for_run_failure())
    [record] = OutboxNotifier(home=SalesintelHome(path=str(tmp_path))).read()
    assert record["kind"] == "run_failure" and record["recipient_id"] == "data-team"
    assert record["subject"] == f"Run failed: _failing_job ({run.run_id})"
