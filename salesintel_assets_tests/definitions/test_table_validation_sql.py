"""A large table's schema check runs in SQL derived from its pandera model:
the SQL finds the same broken rules, with the same counts, as pandera on
the whole table, for every kind of rule the models use."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from salesintel_assets.domain.common.table_validation import sql_translatable, validate_stored_table
from salesintel_assets.schemas.ingestion import QuarantinedDeals, RawDeals
from salesintel_assets.schemas.metrics import DealMetrics
from salesintel_assets.schemas.warehouse import DealHistory, FactDeals


def _both(frame: pd.DataFrame, model):
    con = duckdb.connect()
    con.register("frame_view", frame)
    con.execute("CREATE TABLE t AS SELECT * FROM frame_view")
    in_sql = validate_stored_table(con, "t", model, part_rows=50)
    whole = validate_stored_table(con, "t", model, part_rows=10_000_000)
    assert in_sql.method == "sql" and whole.method == "pandera"
    return in_sql, whole


def _rules(validation) -> dict[tuple[str, str], int]:
    table = validation.by_rule()
    return {(str(c), str(k)): int(n) for c, k, n in table[["column", "check", "failures"]].itertuples(index=False)}


def _fact(n: int = 200) -> pd.DataFrame:
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n) % 90, unit="D")
    is_open = np.arange(n) % 5 == 0
    closed = (created + pd.Timedelta(days=30)).where(~is_open)
    return pd.DataFrame({
        "deal_id": [f"D{i:04d}" for i in range(n)], "created_date": created, "closed_date": closed,
        "sales_rep_id": "R1", "industry": "Retail", "region": "EU", "product_type": "Core", "lead_source": "Web",
        "deal_stage": "Demo", "crm_stage": "Engaging", "stage_number": pd.array([2] * n, dtype="Int64"),
        "deal_amount": np.full(n, 1000.0), "sales_cycle_days": np.where(is_open, np.nan, 30.0),
        "outcome": np.where(is_open, "Open", np.where(np.arange(n) % 2 == 0, "Won", "Lost")),
        "is_open": is_open, "is_won": ~is_open & (np.arange(n) % 2 == 0), "age_days": 30.0,
        "stage_entered_date": created, "days_in_stage": 3.0, "last_modified": pd.NaT,
        "activity_count": np.zeros(n, dtype="int64"), "last_activity_date": pd.NaT,
        "needs_review": False, "review_reason": None, "cycle_corrected": False,
        "original_sales_cycle_days": np.nan, "as_of_date": pd.Timestamp("2024-06-30"),
        "_row_hash": pd.array(np.arange(n), dtype="UInt64"), "_rules_hash": "abc"})


def test_every_model_of_the_large_tables_has_its_sql_form():
    for model in (RawDeals, QuarantinedDeals, FactDeals, DealMetrics, DealHistory):
        assert sql_translatable(model)


def test_a_clean_fact_table_passes_in_sql():
    in_sql, whole = _both(_fact(), FactDeals)
    assert in_sql.failure_cases is None and whole.failure_cases is None
    assert in_sql.rows == 200 and in_sql.parts == 4


def test_fact_rules_broken_are_found_alike_with_their_counts():
    fact = _fact()
    fact.loc[[3, 4, 7], "deal_amount"] = -5.0                        # ge(0), three rows
    fact.loc[[8], "deal_amount"] = np.nan                            # a closed deal without an amount
    fact.loc[[10], "deal_amount"] = np.nan                           # an open one may lack it
    fact.loc[[11, 12], "outcome"] = "Maybe"                          # isin
    fact.loc[13, "deal_id"] = "D0014"                                # duplicate id: two rows
    fact.loc[[21, 22], "stage_number"] = 0                           # ge(1) on a nullable Int64
    fact.loc[31, "created_date"] = pd.NaT                            # not nullable timestamp
    fact.loc[[40, 41], "sales_cycle_days"] = 99.0                    # row 40 is open, row 41 closed
    in_sql, whole = _both(fact, FactDeals)
    sql_rules, pandera_rules = _rules(in_sql), _rules(whole)
    frame_checks = {check.name for check in FactDeals.to_schema().checks}
    column_rules = {rule: n for rule, n in pandera_rules.items() if rule[1] not in frame_checks}
    assert {rule: sql_rules[rule] for rule in column_rules} == column_rules
    assert column_rules == {("deal_amount", "greater_than_or_equal_to(0)"): 3,
                            ("outcome", "isin(['Won', 'Lost', 'Open'])"): 2, ("deal_id", "field_uniqueness"): 2,
                            ("stage_number", "greater_than_or_equal_to(1)"): 2,
                            ("created_date", "not_nullable"): 1}
    # pandera reports a dataframe check once per column of a failing row; the SQL path once per row
    assert {check for _, check in pandera_rules if check in frame_checks} == frame_checks
    assert {check for column, check in sql_rules if column == "FactDeals"} == frame_checks
    # every failing row of a dataframe check, counted once: the open deal with a cycle (row 40); a closed
    # cycle off its dates (row 41) and a cycle without a created date (row 31)
    failing_rows = whole.failure_cases.groupby("check")["index"].nunique()
    assert sql_rules[("FactDeals", "open_deals_have_no_close")] == failing_rows["open_deals_have_no_close"] == 1
    assert sql_rules[("FactDeals", "closed_cycles_match_dates")] == failing_rows["closed_cycles_match_dates"] == 2
    assert sql_rules[("FactDeals", "closed_deals_have_an_amount")] == failing_rows["closed_deals_have_an_amount"] == 1


def test_missing_unknown_and_mistyped_columns_are_found_in_sql():
    fact = _fact().drop(columns=["region"]).assign(surprise=1)
    fact["activity_count"] = fact["activity_count"].astype(str).where(fact.index != 5, "many")
    in_sql, whole = _both(fact, FactDeals)
    assert set(_rules(in_sql)) >= {("FactDeals", "column_in_dataframe"), ("FactDeals", "column_in_schema"),
                                   ("activity_count", "coerce_dtype('int64')")}
    assert _rules(in_sql)[("activity_count", "coerce_dtype('int64')")] == 1
    assert whole.failure_cases is not None


def test_quarantine_rules_and_reasons_in_sql_match_pandera():
    n = 120
    rows = pd.DataFrame({"rule": ["critical_nulls"] * n, "reason": ["deal_amount is empty"] * n,
                         "deal_id": [f"D{i}" for i in range(n)], "_pull_id": "p1"})
    rows.loc[[2, 9], "rule"] = "made_up_rule"
    rows.loc[4, "rule"] = None
    rows.loc[[5, 6, 7], "reason"] = ""
    rows.loc[8, "deal_id"] = None                                    # nullable: fine
    in_sql, whole = _both(rows, QuarantinedDeals)
    assert _rules(in_sql) == _rules(whole) == {
        ("rule", "isin(['malformed_row', 'unparseable_value', 'duplicates', 'critical_nulls', 'outcome_values', "
                 "'negative_amount', 'future_date'])"): 2,
        ("rule", "not_nullable"): 1, ("reason", "str_length(1, None)"): 3}


def test_raw_text_ids_in_sql_match_pandera():
    n = 100
    raw = pd.DataFrame({c: [""] * n for c in RawDeals.to_schema().columns if c != "_pulled_at"})
    raw["deal_id"] = [f"D{i}" for i in range(n)]
    raw["_pulled_at"] = pd.Timestamp("2024-01-01")
    raw.loc[[1, 2], "deal_id"] = "D0"
    raw.loc[3, "deal_id"] = None
    in_sql, whole = _both(raw, RawDeals)
    assert _rules(in_sql) == _rules(whole) == {("deal_id", "field_uniqueness"): 3, ("deal_id", "not_nullable"): 1}


def test_key_rules_hold_across_hash_parts_in_sql():
    ids = [f"D{i:05d}" for i in range(150)]
    history = pd.DataFrame({
        "deal_id": ids + ids, "version": [1] * 150 + [2] * 150,
        "valid_from": pd.Timestamp("2024-01-01"), "valid_to": [pd.Timestamp("2024-02-01")] * 150 + [pd.NaT] * 150,
        "is_current": [False] * 150 + [True] * 150, "is_deleted": False})
    clean, _ = _both(history, DealHistory)
    assert clean.failure_cases is None and clean.parts == 6
    history.loc[[10, 160], "is_current"] = True                      # D00010 has two current versions
    history.loc[7, "version"] = 0
    in_sql, whole = _both(history, DealHistory)
    assert set(_rules(in_sql)) == set(_rules(whole))
    assert ("DealHistory", "one_current_version_per_deal") in _rules(in_sql)
    assert _rules(in_sql)[("version", "greater_than_or_equal_to(1)")] == 1
