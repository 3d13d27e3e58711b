"""The tenant dimension on the Dagster side: every asset is partitioned by
sales org (a dynamic partition per tenant, added at run time), and resources
resolve the run's tenant from its partition key when they are set up, so the
asset code never sees tenants at all.

A run is always for one tenant: its warehouse file, lake and MLflow store
are its own, so runs of different tenants never share a DuckDB writer.
"""

from __future__ import annotations

from typing import Iterator, Optional

import dagster as dg
import pandas as pd
from pydantic import PrivateAttr

from salesintel_assets.domain.common.tenants import DEFAULT_TENANT, Tenant, TenantError, resolve_tenant
from salesintel_assets.resources.crm import CRMSource, CsvCRM, SampleCRM

TENANTS = dg.DynamicPartitionsDefinition(name="tenants")
# Dagster's run tag that carries a run's partition key (set by partition_key= and by the UI).
PARTITION_TAG = "dagster/partition"


def run_tenant_name(context: Optional[dg.InitResourceContext]) -> Optional[str]:
    """The partition key (tenant) of the run a resource is set up for."""
    run = getattr(context, "dagster_run", None) if context is not None else None
    return run.tags.get(PARTITION_TAG) if run is not None else None


def run_tenant(context: Optional[dg.InitResourceContext], home: str) -> Tenant:
    """The run's tenant, or a clear failure when its partition names no tenant."""
    try:
        return resolve_tenant(home, run_tenant_name(context))
    except TenantError as exc:
        raise dg.Failure(str(exc)) from None


def with_tenants(assets: list) -> list:
    """Every asset partitioned by tenant (one place, so asset modules stay unaware)."""
    return dg.map_asset_specs(lambda spec: spec.replace_attributes(partitions_def=TENANTS), assets)


def registered_tenants(instance: dg.DagsterInstance) -> list[str]:
    """The tenants Dagster knows, the default one always among them."""
    names = list(instance.get_dynamic_partitions(TENANTS.name))
    if DEFAULT_TENANT not in names:
        instance.add_dynamic_partitions(TENANTS.name, [DEFAULT_TENANT])
        names.insert(0, DEFAULT_TENANT)
    return names


def ensure_tenants(instance: dg.DagsterInstance, names: list[str]) -> None:
    missing = [n for n in names if not instance.has_dynamic_partition(TENANTS.name, n)]
    if missing:
        instance.add_dynamic_partitions(TENANTS.name, missing)


def tenant_crm(tenant: Tenant) -> CRMSource:
    """A named tenant's CRM source, from its entry in the tenants file."""
    config = tenant.config
    if config.source == "csv":
        return CsvCRM(path=tenant.path(config.csv), org_path=tenant.path(config.org))
    return SampleCRM(n_deals=config.n_deals, seed=config.seed)


class TenantCRM(CRMSource):
    """The run's CRM: ``default`` (the environment's source) for the default
    tenant, the tenant's own export or sample for a named one."""

    default: CRMSource
    home: str

    _active: Optional[CRMSource] = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        tenant = run_tenant(context, self.home)
        self._active = self.default if tenant.is_default else tenant_crm(tenant)

    def source(self) -> CRMSource:
        return self._active or self.default

    def describe(self) -> str:
        return self.source().describe()

    def fetch_deal_pages(self, since: Optional[pd.Timestamp]) -> Iterator[pd.DataFrame]:
        return self.source().fetch_deal_pages(since)

    def fetch_stage_history(self, since: Optional[pd.Timestamp]) -> pd.DataFrame:
        return self.source().fetch_stage_history(since)

    def fetch_activities(self, since: Optional[pd.Timestamp]) -> pd.DataFrame:
        return self.source().fetch_activities(since)

    def fetch_deletions(self, since: Optional[pd.Timestamp]) -> pd.DataFrame:
        return self.source().fetch_deletions(since)

    def fetch_org(self) -> Optional[pd.DataFrame]:
        return self.source().fetch_org()

    def missing_fields(self, since: Optional[pd.Timestamp]) -> list[str]:
        return self.source().missing_fields(since)

    def default_as_of(self):
        return self.source().default_as_of()

    def stated_formats(self):
        return self.source().stated_formats()

    def change_marker(self) -> Optional[str]:
        return self.source().change_marker()

    def snapshot_fingerprint(self) -> Optional[str]:
        return self.source().snapshot_fingerprint()

    def stage_deals(self, con, table: str) -> Optional[list[str]]:
        return self.source().stage_deals(con, table)
