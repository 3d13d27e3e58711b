"""Asset metadata helpers: row counts, markdown previews, column schemas
derived from the pandera models, and plots embedded as images."""

from __future__ import annotations

import base64
import io
from datetime import timedelta

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from salesintel_assets.domain.common.storage import DATABASE_FILE, TABLE_SCHEMA


def _preview_metadata(count: int, preview: pd.DataFrame, extra: dict) -> dict:
    return {
        "dagster/row_count": dg.MetadataValue.int(count),
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False) if len(preview) else "_empty_"),
        **extra,
    }


def frame_metadata(frame: pd.DataFrame, preview_rows: int = 10, **extra) -> dict:
    """Row count and a markdown preview of the first rows."""
    return _preview_metadata(len(frame), frame.head(preview_rows), extra)


def table_metadata(con, table: str, preview_rows: int = 10, **extra) -> dict:
    """Row count and preview of a table written with SQL (not loaded whole)."""
    from salesintel_assets.resources.warehouse import table_preview

    return _preview_metadata(*table_preview(con, table, preview_rows), extra)


def stored_row_count(con, table: str) -> dict:
    """``dagster/row_count`` of the whole stored table (for a table that grows
    by appends while the preview shows only what this run added)."""
    from salesintel_assets.resources.warehouse import table_preview

    return {"dagster/row_count": dg.MetadataValue.int(table_preview(con, table, 0)[0])}


def column_schema(model: type[pa.DataFrameModel]) -> dg.TableSchema:
    """The table's columns as the Dagster UI shows them, from the pandera model."""
    schema = model.to_schema()
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, str(col.dtype), description=col.description or "",
                           constraints=dg.TableColumnConstraints(nullable=col.nullable, unique=col.unique))
            for name, col in schema.columns.items()
        ]
    )


def schema_metadata(model: type[pa.DataFrameModel]) -> dict:
    return {"dagster/column_schema": column_schema(model)}


def table_name(asset: str) -> str:
    """The asset's table as DuckDB names it: catalog (the database file's
    stem), schema and table."""
    return f"{DATABASE_FILE.rsplit('.', 1)[0]}.{TABLE_SCHEMA}.{asset}"


def with_table_names(assets: list) -> list:
    """Every asset is the table of the same name: say so with Dagster's
    standard ``dagster/table_name`` key (the UI links lineage by it)."""
    return dg.map_asset_specs(
        lambda spec: spec.merge_attributes(metadata={"dagster/table_name": table_name(spec.key.path[-1])}),
        assets)


def fail_after(hours: float, warn_hours: float | None = None) -> dg.FreshnessPolicy:
    """A time-window freshness policy: fail when not updated within ``hours``."""
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=hours),
        warn_window=timedelta(hours=warn_hours) if warn_hours else None,
    )


def figure_markdown(fig) -> dg.MetadataValue:
    """A ``matplotlib.figure.Figure`` (built without pyplot, so no GUI
    backend or global state) as an inline PNG the Dagster UI renders."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=90)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{encoded})")
