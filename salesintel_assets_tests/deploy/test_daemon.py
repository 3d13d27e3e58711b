"""The unattended deployment for real: ``deploy/dagster.yaml`` on a
PostgreSQL started on loopback, the code location as its own gRPC process
and a real ``dagster-daemon``, run for a bounded time. A schedule tick
launches a run, the CRM-change sensor's run delivers alerts to the Slack
stand-in, and the run history survives restarting the daemon and the
database. (A changed deal reaching Slack is measured by
``benchmarks/bench_event_latency.py``; the sensor's reaction to a change is
unit-tested in ``alerts/test_sensors.py``.)"""

import dagster as dg
import pytest

from salesintel_assets_tests.deploy_location import TEST_SCHEDULE
from salesintel_assets_tests.deployment import (Deployment, deployment_environment, stall_a_deal, wait_for,
                                                write_crm_export)
from salesintel_assets_tests.postgres_loopback import LoopbackPostgres
from salesintel_assets_tests.slack_standin import SlackStandIn
from salesintel_assets_tests.support import light_rules

RUN_TIMEOUT = 240  # bounds for a loaded 2-core machine; none of them is a speed assertion


def _runs(instance, **filters):
    return instance.get_runs(filters=dg.RunsFilter(**filters))


def _succeeded(instance, **filters):
    runs = _runs(instance, **filters)
    failed = [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
    if failed:   # with what the run's log says went wrong: a failure under load is otherwise hard to trace
        raise AssertionError(f"run {failed[0].run_id} of {failed[0].job_name} failed: {_why(instance, failed[0])}")
    return [r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]


def _why(instance, run) -> str:
    """The failure events of a run, with their errors."""
    said = []
    for kind in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE):
        for entry in instance.all_logs(run.run_id, of_type=kind):
            error = getattr(entry.dagster_event.event_specific_data, "error", None) if entry.dagster_event else None
            said.append(f"{entry.message} {error.to_string() if error else ''}".strip())
    return " | ".join(said) or "no failure event logged"


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    with LoopbackPostgres(tmp_path / "postgres") as postgres, SlackStandIn(token="xoxb-deployment-test") as slack:
        for name, value in postgres.environment().items():
            monkeypatch.setenv(name, value)
        export, org = write_crm_export(tmp_path / "crm", n_deals=600)   # a small world: the processes are under test
        stall_a_deal(export, avoid_reps=set())  # a real crisis: only P1 alerts are sent at once
        env = {**deployment_environment(tmp_path / "home", export, org, slack.base_url), **postgres.environment(),
               "SALESINTEL_RULES": str(light_rules(tmp_path))}  # the processes are under test, not the model
        deploy = Deployment(tmp_path / "deployment", env, location_module="salesintel_assets_tests.deploy_location")
        try:
            deploy.start_code_server()
            yield deploy, postgres, slack, export
        finally:
            deploy.stop()


def test_daemon_runs_schedules_and_sensors_and_history_survives_a_restart(deployment):
    deploy, postgres, slack, export = deployment
    deploy.start_daemon()
    instance = deploy.instance()
    # the CRM-change sensor sees the export for the first time: one run builds everything and delivers
    [first] = wait_for(lambda: _succeeded(instance, job_name="crm_change_job"),
                       "a successful crm_change_job run launched by the pull_on_crm_change sensor", RUN_TIMEOUT)
    assert first.tags["dagster/sensor_name"] == "pull_on_crm_change"
    assert slack.posted, "the sensor's run delivered no alert to Slack"
    assert all(m["metadata"]["event_payload"]["delivery_id"] for m in slack.posted)
    # the daemon's scheduler launches the test schedule's run at the next minute
    [scheduled] = wait_for(lambda: _runs(instance, tags={"dagster/schedule_name": TEST_SCHEDULE})[:1],
                           f"a run launched by the {TEST_SCHEDULE} schedule", RUN_TIMEOUT)
    assert scheduled.job_name == "ingestion_job"

    # restart the daemon (a run in flight carries on) and then the database: the history is still there
    before = {r.run_id for r in _runs(instance)}
    deploy.stop_daemon()
    deploy.start_daemon()
    wait_for(lambda: _succeeded(instance, run_ids=[scheduled.run_id]),
             f"the scheduled run {scheduled.run_id} finishing after the daemon restart", RUN_TIMEOUT)
    deploy.stop_daemon()
    # a later tick's run may have started meanwhile; it carries on without the daemon
    wait_for(lambda: not _runs(instance, statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]),
             "no run in flight", RUN_TIMEOUT)
    # The sensor's and the schedule's runs may have queued in either order: the facts come from the last one.
    # Each scheduled pull also refreshes the sales org, so the alerts and delivery sensors may have re-run the
    # alerts and their (by then empty) delivery after the sensor's run: the deliveries come from the last of those.
    facts_from = instance.get_latest_materialization_event(dg.AssetKey("fact_deals")).run_id
    scheduled_runs = {r.run_id for r in _runs(instance, tags={"dagster/schedule_name": TEST_SCHEDULE})}
    assert facts_from in {first.run_id} | scheduled_runs
    deliveries_from = instance.get_latest_materialization_event(dg.AssetKey("alert_deliveries")).run_id
    redelivered = {r.run_id for job in ("crm_change_job", "alert_delivery_job", "alert_refresh_job")
                   for r in _succeeded(instance, job_name=job)}
    assert deliveries_from in {first.run_id} | redelivered
    postgres.stop()
    postgres.start()
    after = deploy.instance()
    assert before <= {r.run_id for r in _runs(after)}
    assert after.get_run_by_id(first.run_id).status == dg.DagsterRunStatus.SUCCESS
    assert after.get_latest_materialization_event(dg.AssetKey("alert_deliveries")).run_id == deliveries_from
    assert after.get_latest_materialization_event(dg.AssetKey("fact_deals")).run_id == facts_from
