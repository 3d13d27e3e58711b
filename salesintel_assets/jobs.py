"""Jobs. They run in process: DuckDB allows one writing process per file,
and a process per step would re-import the code location for every asset."""

import dagster as dg

from salesintel_assets.constants import INGESTION, WAREHOUSE

salesintel_job = dg.define_asset_job(
    "salesintel_job",
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="Materialise every asset: pull, check, warehouse, analyse, alert.",
)

ingestion_job = dg.define_asset_job(
    "ingestion_job",
    selection=dg.AssetSelection.groups(INGESTION, WAREHOUSE),
    executor_def=dg.in_process_executor,
    description="Incremental CRM pull through the quality gates into the warehouse.",
)

jobs = [salesintel_job, ingestion_job]
