"""Run-wide settings: the analysis date and the rules file."""


from datetime import date
from typing import Optional

import dagster as dg
import pandas as pd

from salesintel_assets.domain.common.rules import Rules, load_rules
from salesintel_assets.resources.crm import CRMSource


class SalesintelSettings(dg.ConfigurableResource):
    """``as_of`` is the analysis date (YYYY-MM-DD), "today" for every relative
    window; unset means the CRM's own default. ``rules_path`` overrides the
    packaged rules file."""

    as_of: Optional[str] = None
    rules_path: Optional[str] = None

    def rules(self) -> Rules:
        return load_rules(self.rules_path)

    def analysis_date(self, crm: CRMSource) -> pd.Timestamp:
        day = date.fromisoformat(self.as_of) if self.as_of else crm.default_as_of()
        return pd.Timestamp(day)
