"""The Salesforce source through the real simple-salesforce client against
the loopback stand-in org: paging, logins, rate limits, server errors,
timeouts, refusals and schema changes."""

import dagster as dg
import pandas as pd
import pytest

from salesintel_assets.resources.salesforce import SalesforceCRM
from salesintel_assets_tests.salesforce_standin import (PASSWORD, SECURITY_TOKEN, TOKEN, USERNAME,
                                                        SalesforceStandIn)

N_DEALS = 300


@pytest.fixture
def org(monkeypatch):
    with SalesforceStandIn(n_deals=N_DEALS, page_size=50) as standin:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", standin.ca_bundle())
        yield standin


def source(org, **kwargs) -> SalesforceCRM:
    settings = {"instance_url": org.instance_url, "access_token": TOKEN, "backoff_seconds": 0.01,
                "timeout_seconds": 2.0, **kwargs}
    return SalesforceCRM(**settings)


def deals(crm, since=None) -> pd.DataFrame:
    return pd.concat(list(crm.fetch_deal_pages(since)), ignore_index=True)


def opportunities(org) -> set[str]:
    return {r["Id"] for r in org.data["Opportunity"] if not r["IsDeleted"]}


def test_full_pull_follows_next_records_url_through_every_page(org):
    pulled = deals(source(org, page_size=120))
    assert pulled["deal_id"].is_unique and set(pulled["deal_id"]) == opportunities(org)
    assert org.count("more") >= N_DEALS // 50 - 1
    assert "Competitor__c" in pulled.columns   # a custom field travels to the raw lake


def test_username_password_login_reaches_the_same_org(org):
    crm = source(org, access_token=None, username=USERNAME, password=PASSWORD, security_token=SECURITY_TOKEN)
    assert len(deals(crm)) == len(opportunities(org)) and org.count("login") == 1
    wrong = source(org, access_token=None, username=USERNAME, password="nope", security_token=SECURITY_TOKEN)
    with pytest.raises(dg.Failure, match="INVALID_LOGIN.*SALESFORCE_PASSWORD"):
        deals(wrong)


def test_429_storm_honours_retry_after_and_loses_nothing(org):
    org.fail(("429", 1), on="more")
    for _ in range(3):
        org.fail(("429", 0), on="more")
    # a timeout far above the wait: on a loaded machine a starved stand-in thread answered the 429 after the
    # client's 2 s, which then asked again at once (a timeout's retry), and the two asks looked 0.02 s apart
    pulled = deals(source(org, timeout_seconds=30.0))
    assert pulled["deal_id"].is_unique and set(pulled["deal_id"]) == opportunities(org)
    assert not org.faults
    first_429 = next(i for i, (kind, _) in enumerate(org.requests) if kind == "more")
    retry = next(i for i, (_, path) in enumerate(org.requests) if i > first_429 and path == org.requests[first_429][1])
    assert org.times[retry] - org.times[first_429] >= 1.0   # waited as told


def test_server_errors_and_a_timed_out_page_are_retried(org):
    org.fail(("500",), on="query")
    org.fail(("500",), on="more")
    org.fail(("delay", 1.0), on="more")   # longer than the client's timeout: the page is asked again
    pulled = deals(source(org, timeout_seconds=0.4))
    assert pulled["deal_id"].is_unique and set(pulled["deal_id"]) == opportunities(org)
    assert not org.faults


def test_a_server_that_keeps_failing_stops_the_pull_with_one_sentence(org):
    org.outage = True
    with pytest.raises(dg.Failure, match="kept answering HTTP 500.*next run resumes from the same cursor"):
        deals(source(org, max_retries=3))


def test_refusals_name_what_to_fix(org):
    org.fail(("401",))
    with pytest.raises(dg.Failure, match="INVALID_SESSION_ID.*SALESFORCE_ACCESS_TOKEN"):
        deals(source(org))
    org.fail(("403", "API_DISABLED_FOR_ORG"))
    with pytest.raises(dg.Failure, match="API Enabled permission"):
        deals(source(org))
    org.fail(("403", "REQUEST_LIMIT_EXCEEDED"))
    with pytest.raises(dg.Failure, match="API request limit is used up"):
        deals(source(org))
    org.deny("OpportunityHistory")
    with pytest.raises(dg.Failure, match="read OpportunityHistory.*Read on Opportunity"):
        source(org).fetch_stage_history(None)


def test_request_limit_with_retry_after_is_waited_out(org):
    org.fail(("403", "REQUEST_LIMIT_EXCEEDED", 0), on="query")
    assert len(deals(source(org))) == len(opportunities(org))


def test_a_removed_required_field_is_named_and_a_removed_custom_field_is_ignored(org):
    org.remove_field("Opportunity", "Competitor__c")
    assert "Competitor__c" not in deals(source(org)).columns
    org.remove_field("Opportunity", "Amount")
    crm = source(org)
    assert "deal_amount" not in deals(crm).columns   # the schema gate blocks on the missing column
    assert crm.missing_fields(None) == [
        "Salesforce field Opportunity.Amount is missing or hidden from the API user: grant read access to it "
        "(field-level security) or restore the field"]
    org.remove_field("Opportunity", "SystemModstamp")
    with pytest.raises(dg.Failure, match=r"Opportunity\.SystemModstamp is missing or hidden"):
        deals(source(org))


def test_incremental_pull_and_deletions(org):
    crm = source(org, overlap_seconds=0)
    cursor = pd.Timestamp(deals(crm)["last_modified"].max())
    changed = sorted(opportunities(org))[:4]
    org.modify(changed, Amount=4321.0)
    org.delete(changed[0])
    fresh = source(org, overlap_seconds=0)
    pulled = deals(fresh, cursor)
    assert sorted(pulled["deal_id"]) == changed[1:] and set(pulled["deal_amount"]) == {"4321"}
    gone = fresh.fetch_deletions(cursor)
    assert gone["deal_id"].tolist() == [changed[0]] and gone["deleted_at"].iloc[0] > cursor
    history = fresh.fetch_stage_history(cursor)
    assert set(history["deal_id"]) == set(changed[1:])   # the whole history of the changed deals only
