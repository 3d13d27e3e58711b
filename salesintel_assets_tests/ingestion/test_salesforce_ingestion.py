"""Salesforce through the real ingestion assets: the cursor, the raw lake,
a deal changed while a pull pages, a pull that fails half-way, a deletion,
and re-pulling an unchanged window."""

import pandas as pd
import pytest

from salesintel_assets.resources.factory import build_resources
from salesintel_assets.resources.salesforce import SalesforceCRM
from salesintel_assets_tests.salesforce_standin import TOKEN, SalesforceStandIn
from salesintel_assets_tests.support import read_table, run_job, run_selection

N_DEALS = 400


@pytest.fixture
def org(monkeypatch):
    with SalesforceStandIn(n_deals=N_DEALS, page_size=100) as standin:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", standin.ca_bundle())
        yield standin


def pull(org, home, **kwargs):
    crm = SalesforceCRM(instance_url=org.instance_url, access_token=TOKEN, backoff_seconds=0.01, max_retries=2,
                        batch_size=100, **kwargs)
    return run_selection(build_resources(home=str(home), crm=crm, as_of="2026-06-30"), "group:ingestion",
                         raise_on_error=False)


def live(org) -> dict:
    return {r["Id"]: r for r in org.data["Opportunity"] if not r["IsDeleted"]}


def cursor(home) -> pd.Timestamp:
    return pd.Timestamp(read_table(home, "raw_deals")["last_modified"].max())


def lake_files(home) -> list:
    return sorted((home / "lake" / "raw_deals").glob("*.parquet"))


def test_a_deal_changed_while_the_pull_pages_arrives_next_time_once(org, home):
    first = min(live(org).values(), key=lambda r: (r["SystemModstamp"], r["Id"]))   # on the first page

    def edit_behind_the_cursor(obj: str, first_row: int) -> None:
        if obj == "Opportunity" and first_row == 100:   # the deals' second page
            org.modify([first["Id"]], Amount=7777.0)

    org.after_page = edit_behind_the_cursor
    assert pull(org, home).success
    org.after_page = None
    raw = read_table(home, "raw_deals").set_index("deal_id")
    assert set(raw.index) == set(live(org)) and raw.loc[first["Id"], "deal_amount"] != "7777"
    assert cursor(home) < pd.Timestamp(first["SystemModstamp"][:19])   # the edit is past the cursor

    assert pull(org, home).success
    raw = read_table(home, "raw_deals").set_index("deal_id")
    assert raw.index.is_unique and len(raw) == len(live(org)) and raw.loc[first["Id"], "deal_amount"] == "7777"
    assert cursor(home) == pd.Timestamp(first["SystemModstamp"][:19])

    stored = read_table(home, "raw_deals").sort_values("deal_id").reset_index(drop=True)
    assert pull(org, home).success   # the same window again (the overlap re-reads the edit): nothing changes
    again = read_table(home, "raw_deals").sort_values("deal_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, again)
    report = read_table(home, "data_quality_report")
    assert report["pull_id"].nunique() == 2   # the same input pulled again writes no new report
    assert len(lake_files(home)) == 2         # nor a new lake file
    lake = pd.read_parquet(lake_files(home)[0])
    assert "Competitor__c" in lake.columns and "Competitor__c" not in stored.columns   # kept raw, ignored after


def test_a_pull_that_fails_half_way_stores_nothing_and_the_next_one_catches_up(org, home):
    assert pull(org, home).success
    before, stored = cursor(home), read_table(home, "raw_deals")
    changed = sorted(live(org))[:5]
    org.modify(changed, Amount=1234.0)
    org.outage = True
    result = pull(org, home)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "kept answering HTTP 500" in failure.event_specific_data.error.message
    assert cursor(home) == before and len(read_table(home, "raw_deals")) == len(stored)
    org.outage = False
    assert pull(org, home).success
    raw = read_table(home, "raw_deals").set_index("deal_id")
    assert len(raw) == len(stored) and set(raw.loc[changed, "deal_amount"]) == {"1234"}
    assert cursor(home) > before


def test_a_deal_deleted_in_salesforce_becomes_a_tombstone(org, home):
    def ingest():
        crm = SalesforceCRM(instance_url=org.instance_url, access_token=TOKEN, batch_size=100)
        return run_job(build_resources(home=str(home), crm=crm, as_of="2026-06-30"), job="ingestion_job")

    ingest()
    fact = read_table(home, "fact_deals")
    gone = fact.loc[fact["is_open"], "deal_id"].iloc[0]
    org.delete(gone)
    ingest()
    after = read_table(home, "fact_deals")
    assert set(fact["deal_id"]) - set(after["deal_id"]) == {gone}
    assert read_table(home, "raw_deal_deletions")["deal_id"].tolist() == [gone]
    assert read_table(home, "raw_stage_history")["deal_id"].eq(gone).any()   # its history is kept
    history = read_table(home, "deal_history")
    assert history.loc[history["deal_id"] == gone, "is_deleted"].all()
    assert not history.loc[history["deal_id"] == gone, "is_current"].any()
    ingest()   # the deletion is reported again: nothing changes
    assert len(read_table(home, "raw_deal_deletions")) == 1
    assert len(read_table(home, "deal_history")) == len(history)
    assert len(read_table(home, "fact_deals")) == len(after)
