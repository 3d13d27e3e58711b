"""Runs for tenants: one run per tenant (its partition key), in process for
one tenant, or several tenants side by side, each a Dagster run of its own
with the configured executor. A tenant's failure is its run's failure: the
other runs go on."""

from __future__ import annotations

import multiprocessing
import queue
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Optional, Sequence

import dagster as dg

from salesintel_assets.domain.common.tenants import DEFAULT_TENANT
from salesintel_assets.resources.tenancy import PARTITION_TAG, ensure_tenants


def run_in_process(job: dg.JobDefinition, tenant: str = DEFAULT_TENANT,
                   instance: Optional[dg.DagsterInstance] = None, **kwargs) -> dg.ExecuteInProcessResult:
    """The job for one tenant in this process (the tenant is registered first)."""
    instance = instance or dg.DagsterInstance.ephemeral()
    ensure_tenants(instance, [tenant])
    return job.execute_in_process(instance=instance, partition_key=tenant, **kwargs)


def tenant_job(job_name: str, home: Optional[str] = None, executor: str = "in_process",
               selection: Optional[str] = None, check_steps: bool = True) -> dg.JobDefinition:
    """The job as every process of a run rebuilds it (see ``reconstructable``):
    resources from the run-time contract, ``home`` replacing SALESINTEL_HOME.
    With ``selection`` (an asset selection string) a job of those assets,
    named ``job_name``; without ``check_steps`` only the checks that run
    inside their asset's own step (a smaller job: fewer processes)."""
    from salesintel_assets.definitions import build_definitions
    from salesintel_assets.executors import executor_named
    from salesintel_assets.resources.factory import environment_resources

    defs = build_definitions(environment_resources(home=home), executor_named(executor))
    if selection:
        chosen = dg.AssetSelection.from_string(selection).required_multi_asset_neighbors()
        if not check_steps:
            selected = chosen.resolve(defs.resolve_asset_graph())
            inside = [key for asset in defs.assets for key in asset.check_keys if key.asset_key in selected]
            chosen = chosen.without_checks() | dg.AssetSelection.checks(*inside)
        job = dg.define_asset_job(job_name, selection=chosen)
        return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, resources=defs.resources,
                              jobs=[job], executor=defs.executor).resolve_job_def(job_name)
    return defs.resolve_job_def(job_name)


def reconstructable(job_name: str, home: Optional[str] = None, executor: str = "in_process",
                    selection: Optional[str] = None, check_steps: bool = True):
    """A job handle that the executor's step processes rebuild by import."""
    return dg.build_reconstructable_job(
        "salesintel_assets.tenant_runs", "tenant_job",
        reconstructable_kwargs={"job_name": job_name, "home": home, "executor": executor, "selection": selection,
                                "check_steps": check_steps})


@dataclass
class TenantRun:
    """One tenant's run as the caller sees it (``all_events`` for ``read_outcome``)."""

    tenant: str
    run_id: Optional[str]
    success: bool
    all_events: list = field(default_factory=list)
    crashed: Optional[str] = None


def _run_worker(job_kwargs: dict, instance_ref, tenant: str, run_config: Optional[dict], answers) -> None:
    """A run worker process: one tenant's run, recorded in the shared instance."""
    instance = dg.DagsterInstance.from_ref(instance_ref)
    result = dg.execute_job(reconstructable(**job_kwargs), instance=instance, tags={PARTITION_TAG: tenant},
                            run_config=run_config, raise_on_error=False)
    answers.put((tenant, result.run_id, result.success))


def run_tenants(tenants: Sequence[str], instance: dg.DagsterInstance, job_name: str = "salesintel_job",
                home: Optional[str] = None, executor: str = "multiprocess", selection: Optional[str] = None,
                parallel: int = 2, run_config: Optional[dict] = None,
                check_steps: bool = True) -> dict[str, TenantRun]:
    """One run per tenant, ``parallel`` at a time, each in a run worker
    process of its own (as Dagster's default run launcher does) and recorded
    in ``instance`` (a persistent one: the multiprocess executor needs it).
    A tenant whose run fails, or whose worker dies, leaves the others running."""
    ensure_tenants(instance, list(tenants))
    job_kwargs = {"job_name": job_name, "home": home, "executor": executor, "selection": selection,
                  "check_steps": check_steps}
    spawn = multiprocessing.get_context("spawn")
    answers = spawn.Queue()
    pending, running, finished = list(tenants), {}, {}
    while pending or running:
        while pending and len(running) < max(1, parallel):
            tenant = pending.pop(0)
            worker = spawn.Process(target=_run_worker, name=f"salesintel-run-{tenant}",
                                   args=(job_kwargs, instance.get_ref(), tenant, run_config, answers))
            worker.start()
            running[worker.sentinel] = (tenant, worker)
        for sentinel in wait(list(running)):
            tenant, worker = running.pop(sentinel)
            worker.join()
            finished[tenant] = worker.exitcode
    answered = {}
    while len(answered) < len(tenants):
        try:
            tenant, run_id, success = answers.get(timeout=5)
        except queue.Empty:
            break
        answered[tenant] = (run_id, success)
    runs = {}
    for tenant in tenants:
        if tenant not in answered:
            runs[tenant] = TenantRun(tenant, None, False,
                                     crashed=f"the run worker of tenant {tenant} exited with code {finished[tenant]}")
            continue
        run_id, success = answered[tenant]
        events = [record.dagster_event for record in instance.all_logs(run_id) if record.is_dagster_event]
        runs[tenant] = TenantRun(tenant, run_id, success, events)
    return runs
