"""An old export run as of today: the warehouse check says the data stops
long before the analysis date, in words the run summary can lead with."""

import pandas as pd
import pytest

from salesintel_assets.checks.warehouse import deals_reach_the_analysis_date
from salesintel_assets.domain.warehouse.recency import quiet_before
from salesintel_assets.resources.settings import SalesintelSettings
from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse

T = pd.Timestamp


@pytest.mark.parametrize("latest, days", [
    ([T("2024-07-20"), T("2024-03-26")], 135),        # the later of created and closed counts
    ([T("2024-03-26"), None], 251),                   # no deal closed yet
    ([T("2024-03-26"), T("2025-01-01")], 251),        # a close after the analysis date is not known then
    ([T("2024-12-02 17:30"), pd.NaT], 0),             # a time of day is still that day
])
def test_quiet_days_count_from_the_newest_known_date(latest, days):
    quiet = quiet_before(latest, "2024-12-02")
    assert quiet.days == days and quiet.too_long(30) == (days > 30)


def test_no_deals_is_not_called_quiet():
    quiet = quiet_before([None, pd.NaT], "2024-12-02")
    assert quiet.newest is None and not quiet.too_long(30)


def _warehouse(tmp_path, created, closed, as_of):
    warehouse = Warehouse(home=SalesintelHome(path=str(tmp_path)))
    warehouse.write_table("fact_deals", pd.DataFrame({
        "deal_id": ["D1", "D2"], "created_date": pd.to_datetime(created), "closed_date": pd.to_datetime(closed),
        "as_of_date": pd.to_datetime([as_of] * 2)}))
    return warehouse


def test_an_export_a_year_older_than_the_analysis_date_is_a_warning_that_says_what_to_do(tmp_path):
    warehouse = _warehouse(tmp_path, ["2023-01-05", "2023-11-02"], ["2023-12-20", None], "2024-12-31")
    result = deals_reach_the_analysis_date(warehouse=warehouse, settings=SalesintelSettings())
    assert not result.passed and result.severity.value == "WARN"
    assert result.description.startswith("no deal was created or closed in the 377 days before the analysis date "
                                         "2024-12-31 (the newest on 2023-12-20)")
    assert "--as-of, SALESINTEL_AS_OF" in result.description
    assert result.metadata["quiet_days"].value == 377 and result.metadata["max_quiet_days"].value == 30


def test_a_live_crm_passes(tmp_path):
    warehouse = _warehouse(tmp_path, ["2024-11-05", "2024-12-20"], ["2024-12-01", None], "2024-12-31")
    result = deals_reach_the_analysis_date(warehouse=warehouse, settings=SalesintelSettings())
    assert result.passed and result.metadata["quiet_days"].value == 11
