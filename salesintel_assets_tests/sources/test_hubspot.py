"""HubSpot as a CRM source, through the real ``hubspot-api-client`` against a
loopback stand-in that speaks HubSpot's wire format. Every fault ends with
nothing lost, nothing duplicated and the cursor where it should be."""

import json

import pandas as pd
import pytest

from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.resources.hubspot import HubSpotCRM
from salesintel_assets.sources.hubspot import pull as hubspot_pull
from salesintel_assets.sources.hubspot import records
from salesintel_assets.sources.hubspot.api import HubSpotAccessError, HubSpotApi, HubSpotError, HubSpotRetry
from salesintel_assets_tests.hubspot_standin import TOKEN, HubSpotStandIn
from salesintel_assets.resources.factory import build_resources
from salesintel_assets_tests.support import check_results, read_table, run_job

N_DEALS = 400
FAST = {"search_lag_seconds": 0, "retry_backoff_seconds": 0.01, "timeout_seconds": 10}
STALL = 2.5   # seconds a faulty answer waits; fault tests read with a 1 s timeout


@pytest.fixture
def standin():
    with HubSpotStandIn(n_deals=N_DEALS) as server:
        yield server


def crm(standin, **kwargs) -> HubSpotCRM:
    return HubSpotCRM(access_token=TOKEN, base_url=standin.base_url, **{**FAST, **kwargs})


def deals_of(source: HubSpotCRM, since=None) -> pd.DataFrame:
    return pd.concat(list(source.fetch_deal_pages(since)), ignore_index=True)


def direct_pull(standin, since=None, cap=None, timeout=10.0):
    """One pull through the plain functions (lets a test lower the search cap)."""
    api = HubSpotApi.connect(TOKEN, standin.base_url, attempts=8, backoff_seconds=0.01, timeout_seconds=timeout)
    if cap:
        api.search_cap = standin.search_cap = cap
    stages = load_rules().stages
    until = pd.Timestamp.now(tz="UTC").tz_localize(None)
    return hubspot_pull.pull(api, since, until, records.PropertyNames(), stages.canonical, stages.closed_stage,
                             with_activities=False)


def test_a_pull_maps_hubspot_to_the_export_format(standin):
    source = crm(standin)
    deals = deals_of(source)
    assert len(deals) == len(standin.stores["deals"].records) and deals["deal_id"].is_unique
    assert set(deals["outcome"]) == {"Won", "Lost", "Open"}
    assert set(deals["deal_stage"]) <= {"Qualified", "Demo", "Proposal", "Negotiation", "Closed"}
    won = deals[deals["outcome"] == "Won"]
    assert (won["deal_stage"] == "Closed").all() and (won["closed_date"] != "").all()
    lost = deals[deals["outcome"] == "Lost"]
    assert (lost["deal_stage"] != "Closed").all()          # a lost deal keeps the stage it was lost in
    assert (deals.loc[deals["outcome"] == "Open", "closed_date"] == "").all()
    assert json.loads(deals["hubspot_properties"].iloc[0])["hs_object_id"] == deals["deal_id"].iloc[0]
    history = source.fetch_stage_history(None)
    assert set(history["deal_id"]) <= set(deals["deal_id"]) and "closedlost" not in set(history["stage"])
    activities = source.fetch_activities(None)
    assert activities["activity_id"].is_unique and set(activities["activity_type"]) == {"call", "email", "meeting"}
    org = source.fetch_org()
    reps = org[org["sales_rep_id"].isin(deals["sales_rep_id"])]
    assert reps["manager_id"].notna().all() and reps["cro_id"].nunique() == 1


def test_notes_and_tasks_are_activities_of_the_deal_they_are_associated_with():
    engagements = {"notes": [{"id": "7", "properties": {"hs_timestamp": "2026-05-01T10:00:00.000Z",
                                                        "hubspot_owner_id": "101"}}],
                   "tasks": [{"id": "8", "properties": {"hs_timestamp": "2026-05-02T10:00:00.000Z"}}],
                   "calls": [{"id": "9", "properties": {"hs_timestamp": "2026-05-03T10:00:00.000Z"}}]}
    deal_of = records.first_deal([{"from": {"id": "7"}, "to": [{"toObjectId": 42}, {"toObjectId": 41}]},
                                  {"from": {"id": "8"}, "to": [{"toObjectId": 42}]}])
    frame = records.activity_frame(engagements, deal_of)
    assert frame[["activity_id", "deal_id", "activity_type"]].values.tolist() == [["7", "41", "note"],
                                                                                 ["8", "42", "task"]]
    assert str(frame["activity_date"].iloc[0]) == "2026-05-01 10:00:00"   # the call with no deal is left out


def test_rate_limits_server_errors_and_timeouts_are_retried_to_the_same_result(standin):
    clean = direct_pull(standin)
    standin.inject([("429", 0), ("429", None), ("429", 0), ("429", 0), "500", "500"], path="/deals/search")
    standin.inject([("stall", STALL), "500", ("429", None)], path="/batch/read")
    standin.inject([("stall", STALL)], path="/crm/v4/associations")
    stormy = direct_pull(standin, timeout=1.0)
    pd.testing.assert_frame_equal(stormy.deals, clean.deals)
    pd.testing.assert_frame_equal(stormy.stage_history, clean.stage_history)
    statuses = [r.status for r in standin.calls("/deals/search")]
    assert statuses.count(429) == 4 and statuses.count(500) == 2


def test_a_page_that_breaks_off_stops_the_pull_and_the_next_pull_gets_everything(standin):
    clean = direct_pull(standin)
    standin.inject([("stall_body", STALL)], path="/batch/read")
    with pytest.raises(HubSpotError, match="broke off.*cursor did not move"):
        direct_pull(standin, timeout=1.0)
    pd.testing.assert_frame_equal(direct_pull(standin).deals, clean.deals)


def test_hubspot_rate_limit_interval_is_honoured_when_retry_after_is_absent():
    class Response:
        status = 429
        headers = {"X-HubSpot-RateLimit-Interval-Milliseconds": "2500"}

    assert HubSpotRetry(retry_after_max=60).get_retry_after(Response()) == 2.5


def test_more_deals_than_one_search_can_return_are_walked_in_windows(standin):
    clean = direct_pull(standin)
    windowed = direct_pull(standin, cap=200)     # the stand-in's search now stops at 200 results
    pd.testing.assert_frame_equal(windowed.deals, clean.deals)
    starts = {next((f["value"] for f in r.body["filterGroups"][0]["filters"] if f["operator"] == "GTE"), None)
              for r in standin.calls("/deals/search")}
    assert len(starts) > len(clean.deals) // 200


def test_a_deal_modified_during_the_pull_is_neither_lost_nor_duplicated(standin):
    deals = standin.stores["deals"].records
    first_ids = sorted(deals, key=lambda i: deals[i]["hs_lastmodifieddate"])
    early, late = first_ids[3], first_ids[-5]
    standin.on_request("/deals/search", 2, lambda: (standin.modify(early, amount="777"),
                                                    standin.modify(late, amount="888")))
    first = direct_pull(standin)
    # The late deal moved past the pull's end before it was read: the next pull takes it.
    assert set(first.deals["deal_id"]) == set(deals) - {late} and first.deals["deal_id"].is_unique
    assert first.deals.set_index("deal_id").loc[early, "deal_amount"] != "777"   # read before the edit
    cursor = pd.Timestamp(first.deals["last_modified"].max())
    second = direct_pull(standin, since=cursor)
    changed = second.deals.set_index("deal_id")
    assert changed.loc[early, "deal_amount"] == "777" and changed.loc[late, "deal_amount"] == "888"
    assert set(first.deals["deal_id"]) | set(second.deals["deal_id"]) == set(deals)
    assert len(second.deals) < 10


def test_401_and_403_stop_the_pull_naming_the_token_or_the_scope(standin):
    standin.inject(["401"], path="/pipelines")
    with pytest.raises(HubSpotAccessError, match="HUBSPOT_ACCESS_TOKEN"):
        deals_of(crm(standin))
    assert len(standin.calls("/pipelines")) == 1                          # never retried
    standin.scopes.discard("crm.objects.owners.read")
    with pytest.raises(HubSpotAccessError, match="crm.objects.owners.read"):
        crm(standin).fetch_org()


def test_hubspot_pulls_through_ingestion_incrementally_with_deletions(standin, home):
    resources = build_resources(home=str(home), crm=crm(standin), as_of="2026-06-30")
    result = run_job(resources, job="ingestion_job")
    assert [name for name, passed in check_results(result).items() if not passed] == []
    fact = read_table(home, "fact_deals")
    raw = read_table(home, "raw_deals")
    assert len(raw) == N_DEALS and len(fact) > 0.95 * N_DEALS
    assert "hubspot_properties" not in raw.columns
    lake = pd.concat(pd.read_parquet(p) for p in (home / "lake" / "raw_deals").glob("*.parquet"))
    assert "hs_object_id" in lake["hubspot_properties"].iloc[0]            # unknown properties kept in the lake
    reps = read_table(home, "dim_sales_reps")
    assert reps.loc[reps["deals"] > 0, "has_org"].all()                    # routing from HubSpot's own org
    assert read_table(home, "raw_stage_history")["deal_id"].nunique() > 0.9 * N_DEALS

    ids = sorted(fact["deal_id"], key=int)
    standin.modify(ids[0], amount="12345")
    standin.modify(ids[1], amount="23456")
    standin.archive(ids[2])
    run_job(build_resources(home=str(home), crm=crm(standin), as_of="2026-06-30"), job="ingestion_job")
    report = read_table(home, "data_quality_report")
    assert report.groupby("pull_id", sort=False)["batch_rows"].first().tolist()[-1] == 2
    after = read_table(home, "fact_deals").set_index("deal_id")
    assert after.loc[ids[0], "deal_amount"] == 12345 and ids[2] not in after.index
    history = read_table(home, "deal_history")
    assert history.loc[history["deal_id"] == ids[2], "is_deleted"].all()

    versions = len(history)
    run_job(build_resources(home=str(home), crm=crm(standin), as_of="2026-06-30"), job="ingestion_job")
    assert len(read_table(home, "deal_history")) == versions               # re-pulling changes nothing
    assert len(read_table(home, "raw_deal_deletions")) == 1


def test_a_removed_required_property_blocks_the_pull_and_names_it(standin, home):
    standin.remove_property("product_type")
    result = run_job(build_resources(home=str(home), crm=crm(standin), as_of="2026-06-30"), job="ingestion_job",
                     raise_on_error=False)
    assert check_results(result)["raw_deals_schema_valid"] is False
    report = read_table(home, "data_quality_report")
    assert "HubSpot deal property product_type is missing" in " ".join(report["detail"])
    assert read_table(home, "raw_deals").empty                              # not merged: the cursor stays put
    assert len(list((home / "lake" / "raw_deals").glob("*.parquet"))) == 1   # but kept in the lake


def test_a_refused_token_fails_the_run_with_one_sentence_and_stores_nothing(standin, home):
    standin.token = "pat-revoked"
    result = run_job(build_resources(home=str(home), crm=crm(standin), as_of="2026-06-30"), job="ingestion_job",
                     raise_on_error=False)
    assert not result.success
    failures = [e.step_failure_data.error.cause.message for e in result.all_events if e.is_step_failure]
    assert any("HubSpot rejected the access token" in m and "HUBSPOT_ACCESS_TOKEN" in m for m in failures)
    assert not (home / "lake" / "raw_deals").exists() or not list((home / "lake" / "raw_deals").glob("*.parquet"))
