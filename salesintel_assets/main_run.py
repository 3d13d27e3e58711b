"""One ``salesintel run``: the main job, then what a re-run still owes when
the pull brought nothing new.

When ``crm_pull`` yields nothing, Dagster skips every step downstream of it,
including ``alerts`` and ``alert_deliveries``. The feedback loop
(``alert_feedback`` -> ``alert_precision`` -> ``alert_threshold_changes``)
has no such dependency and ran. Deliveries must still happen (retries,
escalations that became due, digests, acknowledgements and snoozes), so a
skipped main run is followed by ``alert_delivery_job``, or by
``alert_refresh_job`` when the feedback changed a severity floor and the
alerts must be derived again from the stored anomalies. A run whose every
step and check succeeded marks its stamp complete, which is what lets the
next pull skip (see ``domain/common/reruns.py``).
"""

from __future__ import annotations

import dagster as dg

from salesintel_assets.domain.common import reruns
from salesintel_assets.domain.common.tenants import DEFAULT_TENANT
from salesintel_assets.resources.tenancy import ensure_tenants
from salesintel_assets.resources.warehouse import Warehouse

MAIN_JOB = "salesintel_job"
PULL_STEP = "crm_pull"


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


def _new_threshold_changes(result: dg.ExecuteInProcessResult) -> int:
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION" and \
                event.asset_key.to_user_string() == "alert_threshold_changes":
            value = event.event_specific_data.materialization.metadata.get("new_changes")
            return int(getattr(value, "value", value) or 0)
    return 0


def pull_skipped(result: dg.ExecuteInProcessResult) -> bool:
    """Whether the pull ran and yielded no table (nothing new)."""
    ran = any(event.step_key == PULL_STEP and event.is_step_success for event in result.all_events)
    return ran and "raw_deals" not in _materialized(result)


def execute(defs: dg.Definitions, job: str, instance: dg.DagsterInstance, run_config: dict | None = None,
            warehouse: Warehouse | None = None, warnings=None,
            partition_key: str | None = None) -> list[dg.ExecuteInProcessResult]:
    """Run ``job``; after a main run whose pull brought nothing new, the
    delivery (and alert refresh) it owes. A main run without failed steps
    marks its stamp complete; ``warnings(results)`` lists its failed warning
    checks (JSON-able), or None when an error check failed (never complete).
    ``partition_key`` (one tenant, the default one unless named) is passed
    to the run and its follow-up; the stamps live in that tenant's warehouse."""
    partition_key = partition_key or DEFAULT_TENANT  # every run is for one tenant
    ensure_tenants(instance, [partition_key])
    main = defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, run_config=run_config, partition_key=partition_key)
    results = [main]
    if job == MAIN_JOB and pull_skipped(main):
        follow_up = "alert_refresh_job" if _new_threshold_changes(main) else "alert_delivery_job"
        results.append(defs.resolve_job_def(follow_up).execute_in_process(
            instance=instance, raise_on_error=False, run_config=run_config, partition_key=partition_key))
    elif job == MAIN_JOB and warehouse is not None and main.success:
        failed_warnings = warnings(results) if warnings else []
        if failed_warnings is not None:
            with warehouse.connect() as con:
                reruns.mark_completed(con, main.run_id, failed_warnings)
    return results


def carried_warnings(warehouse: Warehouse) -> list:
    """The failed warning checks of the last complete run, which a skipped
    run did not evaluate again (its data is the same)."""
    with warehouse.connect() as con:
        return reruns.completed_warnings(con)
