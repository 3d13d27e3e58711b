"""The executor is configuration (``SALESINTEL_EXECUTOR``), never code:

- ``in_process`` (default): one tenant on a laptop; every step in the run's
  own process, the fastest on few cores.
- ``multiprocess``: several tenants on one machine; each step in its own
  process (a crash or memory blow-up of one step takes nothing else down).
  Steps of one run share the tenant's DuckDB file, so they run one at a
  time; tenants run side by side as separate runs. Step processes fork from
  a server that has imported the code location once.

Many machines: Dagster's official Helm chart launches every run (one
tenant) in its own pod with ``K8sRunLauncher`` (or ``CeleryK8sRunLauncher``
with ``celery_k8s_job_executor``); the values are in docs/architecture.md.
"""

import os

import dagster as dg

EXECUTORS = ("in_process", "multiprocess")
PRELOADED = ["salesintel_assets.definitions"]


class ExecutorError(ValueError):
    """SALESINTEL_EXECUTOR names no executor."""


def executor_named(name: str) -> dg.ExecutorDefinition:
    name = (name or "in_process").strip().lower().replace("-", "_")
    if name == "in_process":
        return dg.in_process_executor
    if name == "multiprocess":
        return dg.multiprocess_executor.configured(
            {"max_concurrent": 1, "start_method": {"forkserver": {"preload_modules": PRELOADED}}},
            name="multiprocess")
    raise ExecutorError(f"SALESINTEL_EXECUTOR={name!r}: expected one of {', '.join(EXECUTORS)}")


def executor_from_environment() -> dg.ExecutorDefinition:
    """Read when Dagster loads the definitions, never at import."""
    return executor_named(os.environ.get("SALESINTEL_EXECUTOR", "in_process"))
