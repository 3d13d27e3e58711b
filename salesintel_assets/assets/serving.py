"""Serving layer: the read-only snapshot the web service (``salesintel serve``)
reads, published at the end of a run so the service never opens the
warehouse (one DuckDB writer at a time)."""

import dagster as dg

from salesintel_assets.constants import SERVING
from salesintel_assets.domain.common import reruns
from salesintel_assets.domain.common.tables import TABLE_SCHEMA, table_exists
from salesintel_assets.domain.serving.snapshot import current_snapshot, publish_snapshot
from salesintel_assets.metadata import fail_after, frame_metadata, schema_metadata
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse
from salesintel_assets.schemas import serving as schemas

SNAPSHOT_SOURCES = [
    "raw_deals", "quarantined_deals", "data_quality_report", "fact_deals", "dim_sales_reps", "segment_metrics",
    "win_rate_attribution", "deal_risk_model", "deal_risk_scores", "deal_risk_drift", "pipeline_forecast",
    "forecast_backtest", "alerts", "alert_deliveries", "alert_precision",
]


# Small tables whose content is digested to tell whether a snapshot would differ from the current one;
# the large ones are covered by the run stamp (domain/common/reruns.py).
DIGESTED_SOURCES = ["alerts", "alert_deliveries", "alert_precision"]


@dg.asset(group_name=SERVING, freshness_policy=fail_after(hours=26), kinds={"parquet"},
          deps=SNAPSHOT_SOURCES, metadata=schema_metadata(schemas.ServingSnapshot), output_required=False)
def serving_snapshot(settings: SalesintelSettings, warehouse: Warehouse, home: SalesintelHome):
    """The files the web service reads (deals with risk, per-rep aggregates,
    forecast, attribution, open alerts, freshness and quality), written to a
    new folder under ``serving/snapshots`` and switched in atomically. Not
    written again when the current snapshot was built from the same data."""
    as_of = settings.analysis_date()
    with warehouse.connect() as con:
        if not table_exists(con, "fact_deals"):
            raise dg.Failure("fact_deals does not exist yet: materialise the warehouse layer before the snapshot")
        state = reruns.read_state(con)
        key = reruns.digest(state.get(reruns.PENDING), as_of.date(), *(
            reruns.frame_digest(con.sql(f"SELECT * FROM {TABLE_SCHEMA}.{name}").df()
                                if table_exists(con, name) else None) for name in DIGESTED_SOURCES))
        if key == state.get(reruns.SERVING) and current_snapshot(home.root()) is not None:
            return
        manifest = publish_snapshot(con, home.root(), as_of)
        reruns.write_state(con, **{reruns.SERVING: key})
    yield dg.Output(manifest, metadata=frame_metadata(
        manifest, folder=dg.MetadataValue.path(str(home.root() / "serving" / "snapshots" / manifest["snapshot"][0]))))
