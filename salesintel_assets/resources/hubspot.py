"""HubSpot as a CRM source (CRM v3 through the official client)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Optional

import pandas as pd

from salesintel_assets.resources.crm import WindowedCRMSource


class HubSpotCRM(WindowedCRMSource):
    """Deals changed since the cursor with their stage history, owners and
    teams as the sales org, engagements as activities, archived deals as
    deletions. ``base_url`` lets an operator use a proxy (and tests a
    stand-in). Custom properties name the fields HubSpot has no standard
    property for; an unknown property stays in the raw response and is ignored.

    One pull is read once and cached per cursor, so deals, history,
    activities and deletions come from the same view."""

    access_token: str
    base_url: str = "https://api.hubapi.com"
    rules_path: Optional[str] = None
    product_type_property: str = "product_type"
    lead_source_property: str = "lead_source"
    company_industry_property: str = "industry"
    company_region_property: str = "region"
    manager_role: str = "Sales Manager"
    cro_role: str = "Chief Revenue Officer"
    with_activities: bool = True
    concurrency: int = 4   # requests in flight at once (HubSpot allows about 10 a second per app)
    retry_attempts: int = 8
    retry_backoff_seconds: float = 0.5
    timeout_seconds: float = 30.0
    # HubSpot's search index trails writes by a few seconds: changes newer
    # than this are left for the next pull.
    search_lag_seconds: float = 30.0

    def describe(self) -> str:
        return f"hubspot:{self.base_url.rstrip('/')}"

    def _api(self):
        from salesintel_assets.sources.hubspot.api import HubSpotApi

        return HubSpotApi.connect(self.access_token, self.base_url, self.retry_attempts,
                                  self.retry_backoff_seconds, self.timeout_seconds)

    def _read_window(self, since: Optional[pd.Timestamp]):
        from salesintel_assets.domain.common.rules import load_rules
        from salesintel_assets.sources.hubspot import pull, records

        stages = load_rules(self.rules_path).stages
        names = records.PropertyNames(self.product_type_property, self.lead_source_property,
                                      self.company_industry_property, self.company_region_property)
        until = pd.Timestamp(datetime.now(timezone.utc).replace(tzinfo=None)
                             - timedelta(seconds=self.search_lag_seconds))
        return pull.pull(self._api(), since, until, names, stages.canonical, stages.closed_stage,
                         with_activities=self.with_activities, workers=self.concurrency)

    def missing_fields(self, since: Optional[pd.Timestamp]) -> list[str]:
        return [f"HubSpot deal property {name} is missing (deleted or renamed in HubSpot?)"
                for name in self._pull(since).missing_properties]

    def fetch_org(self) -> Optional[pd.DataFrame]:
        from salesintel_assets.sources.hubspot import pull

        return pull.org(self._api(), self.manager_role, self.cro_role)
