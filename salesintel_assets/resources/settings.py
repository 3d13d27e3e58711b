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
    rules file. The rules are loaded and validated once per run."""

    as_of: Optional[str] = None
    source_as_of: Optional[str] = None
    rules_path: Optional[str] = None

    _rules: Optional[Rules] = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._rules = load_rules(self.rules_path)

    def rules(self) -> Rules:
        if self._rules is None:  # used outside a run (a test, a script): load on first use
            self._rules = load_rules(self.rules_path)
        return self._rules

    def analysis_date(self) -> pd.Timestamp:
        day = parse_analysis_date(self.as_of) or parse_analysis_date(self.source_as_of, "the source's date")
        return pd.Timestamp(day or date.today())
