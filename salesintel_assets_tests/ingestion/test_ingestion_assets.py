"""The ingestion and warehouse layers materialised with real DuckDB: full
and incremental pulls, the raw lake, the gates and the SCD2 history."""

import json

import pandas as pd
import pytest

from salesintel_assets_tests.support import check_results, csv_resources, read_table, run_job

AS_OF = "2024-07-20"


def load(home, path, **kwargs):
    return run_job(csv_resources(home, path, as_of=AS_OF), job="ingestion_job", **kwargs)


@pytest.fixture
def export(tmp_path, skygeni_csv):
    """A writable copy of the shared export, read as text like the CRM wrote it."""
    frame = pd.read_csv(skygeni_csv, dtype=str, keep_default_na=False)
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_shared_export_loads_whole_and_clean(home, export):
    path, _ = export
    result = load(home, path)
    assert result.success
    fact = read_table(home, "fact_deals")
    assert len(fact) == 5000 and fact["deal_id"].is_unique
    assert read_table(home, "quarantined_deals").empty
    assert fact["is_won"].sum() == 2263 and not fact["is_open"].any()
    assert (fact["sales_cycle_days"] == (fact["closed_date"] - fact["created_date"]).dt.days).all()
    # closed deals only: none created in the 116 days before its last close, which the run says
    assert [name for name, passed in check_results(result).items() if not passed] == [
        "new_deals_reach_the_analysis_date"]
    [said] = [e.event_specific_data.description for e in result.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed]
    assert said.startswith("no deal was created in the 116 days before the analysis date 2024-07-20 "
                           "(the newest on 2024-03-26")
    report = read_table(home, "data_quality_report")
    assert set(report["rule"]) >= {"schema", "date_logic", "sales_cycle", "outcome_values", "duplicates",
                                   "critical_nulls"}
    checked = report[report["action"] != "exclude"]
    assert checked["rows"].sum() == 0 and (report["batch_rows"] == 5000).all()
    # the only column kept out of models and drivers: the final cycle length, known only after the close
    assert set(report.loc[report["action"] == "exclude", "rule"]) == {"leakage:sales_cycle_days"}


def test_raw_lake_keeps_every_pull_immutable(home, export):
    path, frame = export
    load(home, path)
    load(home, path)    # the same file again: recognised, nothing new in the lake
    frame.assign(deal_amount=frame["deal_amount"].where(frame.index != 0, "12345")).to_csv(path, index=False)
    load(home, path)
    notes = sorted((home / "lake" / "raw_deals").glob("*.json"))
    assert len(notes) == 2
    first, second = (json.loads(n.read_text()) for n in notes)
    assert first["rows"] == 5000 and second["rows"] == 5000  # a file cannot say what changed
    assert first["source"].startswith("csv:") and first["file"] != second["file"]
    assert len(pd.read_parquet(home / "lake" / "raw_deals" / first["file"])) == 5000


def test_second_pull_without_changes_adds_nothing(home, export):
    path, _ = export
    load(home, path)
    before = {t: len(read_table(home, t)) for t in ("raw_deals", "deal_history", "quarantined_deals")}
    load(home, path)
    after = {t: len(read_table(home, t)) for t in before}
    assert after == before
    report = read_table(home, "data_quality_report")
    assert report.groupby("pull_id")["batch_rows"].first().sort_values().tolist() == [5000]


def test_three_changed_deals_give_three_new_versions(home, export):
    path, frame = export
    load(home, path)
    changed = frame.copy()
    changed.loc[[0, 1, 2], "deal_amount"] = ["11111", "22222", "33333"]
    changed.to_csv(path, index=False)
    load(home, path)
    report = read_table(home, "data_quality_report")
    assert report.groupby("pull_id")["batch_rows"].first().sort_values().tolist() == [3, 5000]
    history = read_table(home, "deal_history")
    ids = list(frame.loc[[0, 1, 2], "deal_id"])
    assert len(history) == 5003
    versions = history[history["deal_id"].isin(ids)].sort_values(["deal_id", "version"])
    assert versions.groupby("deal_id")["version"].max().tolist() == [2, 2, 2]
    old = versions[versions["version"] == 1]
    assert not old["is_current"].any() and old["valid_to"].notna().all()
    assert old["deal_amount"].tolist() == frame.loc[[0, 1, 2], "deal_amount"].astype(float).tolist()
    fact = read_table(home, "fact_deals").set_index("deal_id")
    assert fact.loc[ids, "deal_amount"].tolist() == [11111, 22222, 33333]


def test_dirtied_export_each_rule_acts(home, export):
    path, frame = export
    dirty = frame.copy()
    dirty.loc[0, "closed_date"] = "2022-01-01"                          # date logic -> flagged, kept
    dirty.loc[1, "sales_cycle_days"] = "999"                            # sales cycle -> corrected
    dirty.loc[2, "outcome"] = "Pending"                                 # outcome -> quarantined
    dirty.loc[3, "deal_amount"] = ""                                    # critical null -> quarantined
    dup = dirty.loc[[4]].assign(deal_amount="77777")                    # duplicate -> latest kept
    dirty = pd.concat([dirty, dup], ignore_index=True)
    dirty.to_csv(path, index=False)
    result = load(home, path)
    assert result.success
    fact = read_table(home, "fact_deals").set_index("deal_id")
    ids = frame["deal_id"].tolist()
    assert len(fact) == 4998
    assert bool(fact.loc[ids[0], "needs_review"])
    assert fact.loc[ids[1], "cycle_corrected"] and fact.loc[ids[1], "original_sales_cycle_days"] == 999
    assert ids[2] not in fact.index and ids[3] not in fact.index
    assert fact.loc[ids[4], "deal_amount"] == 77777
    quarantine = read_table(home, "quarantined_deals").set_index("deal_id")
    assert quarantine.loc[ids[2], "rule"] == "outcome_values"
    assert quarantine.loc[ids[3], "rule"] == "critical_nulls"
    assert quarantine.loc[ids[4], "rule"] == "duplicates"
    counts = read_table(home, "data_quality_report").set_index("rule")["rows"]
    # The row closed before it was created also gets its cycle recomputed (negative, flagged).
    assert counts[["date_logic", "sales_cycle", "outcome_values", "critical_nulls", "duplicates"]].tolist() == \
        [1, 2, 1, 1, 1]


def test_circuit_breaker_stops_downstream_and_keeps_cursor(home, export):
    path, frame = export
    load(home, path)
    bad = frame.copy()
    bad.loc[:800, "outcome"] = "Pending"    # 16 % of the pull changed to bad rows
    bad.to_csv(path, index=False)
    result = load(home, path, raise_on_error=False)
    checks = check_results(result)
    assert checks["pull_within_error_budget"] is False
    assert not result.success
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert "fact_deals" not in materialized and "data_quality_report" in materialized
    report = read_table(home, "data_quality_report")
    last = report[report["pull_id"] == report["pull_id"].iloc[-1]]
    assert last["breaker_tripped"].all() and not last["accepted"].any()
    assert (read_table(home, "raw_deals")["outcome"] != "Pending").all()   # pull not merged
    assert len(read_table(home, "fact_deals")) == 5000                      # warehouse untouched
    assert read_table(home, "quarantined_deals").empty                      # its rows stay in the lake only
    detail = last["detail"].iloc[0]
    assert "801 of its 801 new or changed rows (100.0%, limit 10%)" in detail and "outcome_values 801" in detail
    assert "D00001: line 2: outcome 'Pending' is not one of" in detail


def test_missing_column_blocks_the_pipeline_before_anything_is_written(home, export):
    path, frame = export
    frame.drop(columns=["deal_amount"]).to_csv(path, index=False)
    result = load(home, path, raise_on_error=False)
    assert not result.success and not result.get_asset_materialization_events()
    assert not (home / "lake" / "raw_deals").exists() or not any((home / "lake" / "raw_deals").iterdir())
    frame.to_csv(path, index=False)          # the fixed export then loads without any repair
    assert load(home, path).success and len(read_table(home, "fact_deals")) == 5000
