"""The embedded sample CRM through ingestion and warehouse: its dirty rows
hit every rule, and advancing its clock gives a real incremental pull."""

import pandas as pd

from salesintel_assets.sources import sample_crm
from salesintel_assets_tests.support import check_results, read_table, run_job, sample_resources

N_DEALS = 3000


def pull(home, clock=None):
    return run_job(sample_resources(home, n_deals=N_DEALS, clock=clock), job="ingestion_job")


def test_sample_pull_quarantines_dirty_rows_and_passes_gates(home):
    result = pull(home)
    assert [name for name, passed in check_results(result).items() if not passed] == []
    dirty = sample_crm.dirty_records(sample_crm.generate_world(N_DEALS, 42))
    quarantined = read_table(home, "quarantined_deals")
    expected = dirty[dirty["kind"].isin(["invalid_outcome", "null_amount", "null_created_date", "null_outcome",
                                         "duplicate"])]
    assert set(quarantined["deal_id"]) == set(expected["deal_id"])
    fact = read_table(home, "fact_deals")
    assert fact["deal_id"].is_unique and fact["is_open"].any() and fact["stage_entered_date"].notna().all()
    flagged = set(fact.loc[fact["needs_review"], "deal_id"])
    assert set(dirty.loc[dirty["kind"] == "closed_before_created", "deal_id"]) <= flagged
    assert fact.loc[fact["is_open"], "days_in_stage"].ge(0).all()
    assert (fact["activity_count"] > 0).mean() > 0.9
    reps = read_table(home, "dim_sales_reps")
    known = reps[reps["sales_rep_id"] != "Unknown"]   # a dirty row with no rep is filled "Unknown"
    assert known["has_org"].all() and known["cro_id"].nunique() == 1
    transitions = read_table(home, "fact_stage_transitions")
    assert transitions.groupby("deal_id")["is_current"].sum().eq(1).all()


def test_advancing_the_clock_pulls_only_new_and_changed_deals(home):
    pull(home)
    before = read_table(home, "fact_deals").set_index("deal_id")
    history_before = len(read_table(home, "deal_history"))
    clock = (pd.Timestamp(sample_crm.SAMPLE_END_DATE) + pd.Timedelta(days=14)).date().isoformat()
    pull(home, clock)
    report = read_table(home, "data_quality_report")
    batches = report.groupby("pull_id", sort=False)["batch_rows"].first().tolist()
    assert batches[0] > 2900 and 0 < batches[1] < 0.25 * batches[0]
    after = read_table(home, "fact_deals").set_index("deal_id")
    new = after.index.difference(before.index)
    closed_now = before.index[before["is_open"]].intersection(after.index[~after["is_open"]])
    assert len(new) > 0 and len(closed_now) > 0
    history = read_table(home, "deal_history")
    assert len(history) > history_before
    assert history.groupby("deal_id")["is_current"].sum().eq(1).all()
    assert (after["as_of_date"] == pd.Timestamp(clock)).all()
    pull(home, clock)   # same clock again: nothing new
    report = read_table(home, "data_quality_report")
    assert report.groupby("pull_id", sort=False)["batch_rows"].first().tolist()[-1] == 0
    assert len(read_table(home, "deal_history")) == len(history)
