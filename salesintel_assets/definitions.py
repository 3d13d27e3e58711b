"""The Dagster code location. Definitions are built when Dagster loads them
(``@dg.definitions``), so importing this module reads no environment."""

import importlib

import dagster as dg

from salesintel_assets import assets, checks
from salesintel_assets.jobs import jobs
from salesintel_assets.metadata import with_table_names
from salesintel_assets.executors import executor_from_environment
from salesintel_assets.resources.factory import environment_resources
from salesintel_assets.resources.tenancy import with_tenants
from salesintel_assets.schedules import schedules
from salesintel_assets.sensors import sensors

LAYERS = ["ingestion", "warehouse", "metrics", "drivers", "models", "anomalies", "alerts", "serving"]
LAYER_MODULES = [importlib.import_module(f"{assets.__name__}.{layer}") for layer in LAYERS]
CHECK_MODULES = [importlib.import_module(f"{checks.__name__}.{layer}") for layer in LAYERS]


def build_definitions(resources: dict, executor: dg.ExecutorDefinition = dg.in_process_executor) -> dg.Definitions:
    """Every asset partitioned by tenant; every job runs with ``executor``
    (configuration: see ``executors.py``)."""
    return dg.Definitions(
        assets=with_tenants(with_table_names(dg.load_assets_from_modules(LAYER_MODULES))),
        asset_checks=dg.load_asset_checks_from_modules(CHECK_MODULES),
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources=resources,
        executor=executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(environment_resources(), executor_from_environment())
