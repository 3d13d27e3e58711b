"""Build an asset check from a pandera model: the table is validated
lazily, so every failing rule is reported at once (a large table in SQL
derived from the model, see domain/common/table_validation.py)."""

from __future__ import annotations

import dagster as dg
import pandera.pandas as pa

from salesintel_assets.domain.common.storage import TABLE_SCHEMA
from salesintel_assets.domain.common.table_validation import validate_stored_table
from salesintel_assets.domain.common.tables import table_exists
from salesintel_assets.resources.warehouse import Warehouse


def table_schema_check(asset: str, model: type[pa.DataFrameModel], name: str | None = None,
                       blocking: bool = False) -> dg.AssetChecksDefinition:
    """``<asset>_schema_valid``: the stored table satisfies its pandera model."""
    check_name = name or f"{asset}_schema_valid"

    @dg.asset_check(asset=asset, name=check_name, blocking=blocking,
                    description=f"{asset} satisfies the {model.__name__} pandera model.")
    def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            if not table_exists(con, asset):
                return dg.AssetCheckResult(passed=False, description=f"table {asset} does not exist")
            validation = validate_stored_table(con, f'{TABLE_SCHEMA}."{asset}"', model)
        cases = validation.failure_cases
        if cases is not None:
            summary = validation.by_rule()
            first = summary.iloc[0]
            return dg.AssetCheckResult(passed=False, description=(
                f"{validation.failures:,} values of {asset} break its schema, e.g. column {first['column']} fails "
                f"{first['check']}: see the check's metadata and fix the rule or the data that produced them."),
                metadata={
                "failures": validation.failures, "method": validation.method,
                "by_rule": dg.MetadataValue.md(summary.head(20).to_markdown(index=False)),
            })
        return dg.AssetCheckResult(passed=True, metadata={"rows": validation.rows, "parts": validation.parts,
                                                                "method": validation.method})

    return _check
