"""Serving layer: the read-only snapshot the web service (``salesintel serve``)
reads, published at the end of a run so the service never opens the
warehouse (one DuckDB writer at a time)."""

import dagster as dg
import pandas as pd

from salesintel_assets.constants import SERVING
from salesintel_assets.domain.common.tables import table_exists
from salesintel_assets.domain.serving.snapshot import publish_snapshot
from salesintel_assets.metadata import fail_after, frame_metadata, schema_metadata
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse
from salesintel_assets.schemas import serving as schemas

SNAPSHOT_SOURCES = [
    "raw_deals", "quarantined_deals", "data_quality_report", "fact_deals", "dim_sales_reps", "segment_metrics",
    "win_rate_attribution", "deal_risk_model", "deal_risk_scores", "deal_risk_drift", "pipeline_forecast",
    "forecast_backtest", "alerts", "alert_deliveries", "alert_precision",
]


@dg.asset(group_name=SERVING, freshness_policy=fail_after(hours=26), kinds={"parquet"},
          deps=SNAPSHOT_SOURCES, metadata=schema_metadata(schemas.ServingSnapshot))
def serving_snapshot(settings: SalesintelSettings, warehouse: Warehouse,
                     home: SalesintelHome) -> dg.Output[pd.DataFrame]:
    """The files the web service reads (deals with risk, per-rep aggregates,
    forecast, attribution, open alerts, freshness and quality), written to a
    new folder under ``serving/snapshots`` and switched in atomically."""
    as_of = settings.analysis_date()
    with warehouse.connect() as con:
        if not table_exists(con, "fact_deals"):
            raise dg.Failure("fact_deals does not exist yet: materialise the warehouse layer before the snapshot")
        manifest = publish_snapshot(con, home.root(), as_of)
    return dg.Output(manifest, metadata=frame_metadata(
        manifest, folder=dg.MetadataValue.path(str(home.root() / "serving" / "snapshots" / manifest["snapshot"][0]))))
