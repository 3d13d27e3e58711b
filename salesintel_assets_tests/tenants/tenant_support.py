"""Small sales orgs for the tenant tests: CRM exports cut from the sample
CRM (different seeds, so each tenant's tables are its own) and a tenants file."""

from __future__ import annotations

from pathlib import Path

from salesintel_assets.constants import EXPORT_COLUMNS
from salesintel_assets.domain.common.tenants import TenantConfig, add_tenant
from salesintel_assets.domain.ingestion.pulls import as_export_text
from salesintel_assets.sources import sample_crm

AS_OF = sample_crm.SAMPLE_END_DATE.isoformat()


def write_export(path: Path, n_deals: int, seed: int, drop: tuple[str, ...] = ()) -> Path:
    """The sample CRM's deals at its end date as a CRM export (``drop``: columns left out)."""
    deals = as_export_text(sample_crm.snapshot(sample_crm.generate_world(n_deals, seed)).deals)
    deals[[c for c in EXPORT_COLUMNS if c not in drop]].to_csv(path, index=False)
    return path


def csv_tenant(home: Path, name: str, n_deals: int, seed: int, drop: tuple[str, ...] = (), **config) -> Path:
    """A tenant whose CRM is an export of its own; returns the export's path."""
    export = write_export(Path(home).parent / f"{name}.csv", n_deals, seed, drop)
    add_tenant(home, name, TenantConfig(source="csv", csv=str(export), as_of=AS_OF, **config))
    return export
