"""Run-wide settings: the analysis date and the rules file."""

from datetime import date
from typing import Optional

import dagster as dg
import pandas as pd
from pydantic import PrivateAttr

from salesintel_assets.domain.common.rules import Rules, load_rules
from salesintel_assets.domain.ingestion.values import parse_analysis_date


class SalesintelSettings(dg.ConfigurableResource):
    """``as_of`` is the analysis date (YYYY-MM-DD), "today" for every relative
    window; unset, the source's own date (``source_as_of``, e.g. the sample
    CRM's end date) is used, else today. ``rules_path`` overrides the packaged
    rules file. The rules are loaded and validated once per run. ``home``
    (SALESINTEL_HOME) finds the tenants file: in a run for a named tenant its
    own rules file, analysis date and source date replace these."""

    as_of: Optional[str] = None
    source_as_of: Optional[str] = None
    rules_path: Optional[str] = None
    home: Optional[str] = None

    _rules: Optional[Rules] = PrivateAttr(default=None)
    _dates: Optional[tuple] = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        rules_path = self.rules_path
        if self.home:
            from salesintel_assets.resources.tenancy import run_tenant, tenant_crm

            tenant = run_tenant(context, self.home)
            if not tenant.is_default:
                rules_path = tenant.path(tenant.config.rules)
                source_date = tenant_crm(tenant).default_as_of()
                self._dates = (tenant.config.as_of, source_date.isoformat() if source_date else None)
        self._rules = load_rules(rules_path)

    def rules(self) -> Rules:
        if self._rules is None:  # used outside a run (a test, a script): load on first use
            self._rules = load_rules(self.rules_path)
        return self._rules

    def analysis_date(self) -> pd.Timestamp:
        as_of, source_as_of = self._dates or (self.as_of, self.source_as_of)
        day = parse_analysis_date(as_of) or parse_analysis_date(source_as_of, "the source's date")
        return pd.Timestamp(day or date.today())
