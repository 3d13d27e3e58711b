"""Checks of the serving layer: the manifest's schema, and the pointer names a
complete snapshot whose files have the rows the manifest promises."""

import dagster as dg
import duckdb

from salesintel_assets.checks.schema import table_schema_check
from salesintel_assets.domain.serving.snapshot import current_snapshot
from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse
from salesintel_assets.schemas import serving as schemas

serving_snapshot_schema_valid = table_schema_check("serving_snapshot", schemas.ServingSnapshot)


@dg.asset_check(asset="serving_snapshot", description="The CURRENT pointer names the snapshot in the manifest, "
                                                      "and every file in it has the promised rows.")
def serving_snapshot_is_live(warehouse: Warehouse, home: SalesintelHome) -> dg.AssetCheckResult:
    manifest = warehouse.read_table("serving_snapshot")
    folder = current_snapshot(home.root())
    if manifest is None or manifest.empty or folder is None:
        return dg.AssetCheckResult(passed=False, description="no snapshot has been published")
    if folder.name != manifest["snapshot"].iloc[0]:
        return dg.AssetCheckResult(passed=False, description=f"the pointer names {folder.name}, "
                                                             f"the manifest {manifest['snapshot'].iloc[0]}")
    wrong = []
    with duckdb.connect() as con:
        for row in manifest.to_dict("records"):
            path = folder / row["file"]
            found = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()[0] if path.exists() else None
            if found != row["rows"]:
                wrong.append(f"{row['file']}: {found} rows, manifest says {row['rows']}")
    return dg.AssetCheckResult(passed=not wrong, description="; ".join(wrong) or None,
                               metadata={"files": len(manifest), "snapshot": folder.name})
