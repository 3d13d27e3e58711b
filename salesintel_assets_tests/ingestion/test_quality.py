"""Each data-quality rule with bad input: the row's fate and the batch's fate."""

import pandas as pd
import pytest

from salesintel_assets.domain.ingestion.pulls import conform_raw
from salesintel_assets.domain.ingestion.quality import validate_deals
from salesintel_assets.domain.common.rules import load_rules

RULES = load_rules()


def deal(deal_id="D1", **overrides) -> dict:
    row = dict(deal_id=deal_id, created_date="2024-01-01", closed_date="2024-01-31", sales_rep_id="rep_1",
               industry="SaaS", region="Europe", product_type="Core", lead_source="Inbound",
               deal_stage="Closed", deal_amount="1000", sales_cycle_days="30", outcome="Won")
    row.update(overrides)
    return row


def batch(*rows) -> pd.DataFrame:
    return conform_raw(pd.DataFrame(list(rows)))


def good(n: int) -> list[dict]:
    return [deal(f"G{i}") for i in range(n)]


def test_clean_batch_passes_untouched():
    result = validate_deals(batch(*good(5)), RULES)
    assert len(result.clean) == 5 and result.quarantined.empty
    assert result.bad_rows == 0 and not result.schema_errors
    assert set(result.clean["outcome"]) == {"Won"}


def test_missing_column_blocks_the_batch():
    raw = batch(*good(3)).drop(columns=["outcome"])
    result = validate_deals(raw, RULES)
    assert result.schema_errors == ["missing required columns: outcome"]
    assert result.clean.empty and result.bad_share == 1.0
    assert result.breaker_tripped(RULES) is False  # 3 rows: below min_rows, the schema gate blocks instead


def test_unparseable_cell_is_quarantined_with_reason():
    result = validate_deals(batch(deal("BAD", created_date="not a date"), *good(3)), RULES)
    row = result.quarantined.set_index("deal_id").loc["BAD"]
    assert row["rule"] == "unparseable_value" and "created_date 'not a date' is not a date" in row["reason"]
    assert result.rule_counts["unparseable_value"] == 1 and "BAD" not in set(result.clean["deal_id"])


def test_mostly_unparseable_column_is_a_schema_error():
    rows = [deal(f"X{i}", deal_amount="n/a") for i in range(6)] + good(2)
    result = validate_deals(batch(*rows), RULES)
    assert any(err.startswith("deal_amount") for err in result.schema_errors)


def test_date_logic_flags_row_for_review_and_keeps_it():
    result = validate_deals(batch(deal("REV", created_date="2024-02-10", closed_date="2024-02-01",
                                       sales_cycle_days="-9"), *good(2)), RULES)
    row = result.clean.set_index("deal_id").loc["REV"]
    assert bool(row["needs_review"]) and row["review_reason"] == "closed_date is before created_date"
    assert result.quarantined.empty and result.rule_counts["date_logic"] == 1


def test_wrong_sales_cycle_is_corrected_and_recorded():
    result = validate_deals(batch(deal("CYC", sales_cycle_days="45"), deal("NUL", sales_cycle_days="")), RULES)
    fixed = result.clean.set_index("deal_id")
    assert fixed.loc["CYC", "sales_cycle_days"] == 30 and fixed.loc["CYC", "original_sales_cycle_days"] == 45
    assert fixed.loc["NUL", "sales_cycle_days"] == 30 and bool(fixed.loc["NUL", "cycle_corrected"])
    assert result.rule_counts["sales_cycle"] == 2 and result.quarantined.empty


@pytest.mark.parametrize("outcome", ["Pending", "Closed", "TBD", "Unknown", "Open"])
def test_invalid_outcome_of_closed_deal_is_quarantined(outcome):
    result = validate_deals(batch(deal("OUT", outcome=outcome), *good(2)), RULES)
    row = result.quarantined.set_index("deal_id").loc["OUT"]
    assert row["rule"] == "outcome_values" and "is not one of" in row["reason"]
    assert "OUT" not in set(result.clean["deal_id"])


def test_an_outcome_is_read_however_the_crm_spells_it():
    spelled = {"won ": "Won", "WON": "Won", "lost": "Lost", "Closed Won": "Won", "closed_lost": "Lost"}
    result = validate_deals(batch(*[deal(f"S{k}", outcome=o) for k, o in enumerate(spelled)],
                                  deal("O1", closed_date="", sales_cycle_days="", outcome="OPEN", deal_stage="Demo"),
                                  deal("O2", closed_date="", sales_cycle_days="", outcome="open", deal_stage="Demo")),
                            RULES)
    assert result.quarantined.empty and not result.clean["needs_review"].any()
    outcomes = result.clean.set_index("deal_id")["outcome"]
    assert [outcomes[f"S{k}"] for k in range(len(spelled))] == list(spelled.values())
    assert outcomes[["O1", "O2"]].tolist() == ["Open", "Open"]


def test_open_deal_is_recognised_not_quarantined():
    result = validate_deals(batch(deal("OPN", closed_date="", sales_cycle_days="", outcome="",
                                      deal_stage="Demo"), deal("OP2", closed_date="", sales_cycle_days="",
                                                               outcome="Open", deal_stage="Proposal")), RULES)
    assert result.quarantined.empty
    assert set(result.clean["outcome"]) == {"Open"} and result.clean["sales_cycle_days"].isna().all()


def test_an_open_deals_expected_close_date_is_cleared_counted_and_no_broken_row():
    """Salesforce and many reports give every open opportunity a close date
    (when it is expected to close, past or ahead): the deal stays open."""
    expecting = [deal(f"E{i}", closed_date=day, sales_cycle_days="", outcome="Open", deal_stage=stage)
                 for i, (day, stage) in enumerate([("2026-09-30", "Demo"), ("2024-01-15", "Proposal")] * 15)]
    result = validate_deals(batch(*expecting, *good(70)), RULES, as_of=pd.Timestamp("2026-06-30"))
    assert result.quarantined.empty and result.bad_rows == 0 and not result.breaker_tripped(RULES)
    kept = result.clean.set_index("deal_id").loc[[f"E{i}" for i in range(30)]]
    assert (kept["outcome"] == "Open").all() and kept["closed_date"].isna().all()
    assert result.rule_counts["expected_close_date"] == 30
    # an empty outcome with a close date may be a close whose outcome was left out: still quarantined
    unsaid = validate_deals(batch(deal("U", outcome="", deal_stage="Demo"), *good(2)), RULES)
    assert unsaid.quarantined["reason"].tolist() == ["closed deal without outcome"]


def test_duplicates_keep_the_most_recent_version():
    old = deal("DUP", deal_amount="500", last_modified="2024-01-05T10:00:00")
    new = deal("DUP", deal_amount="900", last_modified="2024-02-01T10:00:00")
    result = validate_deals(batch(new, old, *good(2)), RULES)
    kept = result.clean.set_index("deal_id").loc["DUP"]
    assert kept["deal_amount"] == 900
    dropped = result.quarantined.set_index("deal_id").loc["DUP"]
    assert dropped["rule"] == "duplicates" and dropped["deal_amount"] == "500"
    assert result.rule_counts["duplicates"] == 1


def test_duplicates_without_timestamps_keep_the_later_row():
    result = validate_deals(batch(deal("DUP", deal_amount="500"), deal("DUP", deal_amount="900")), RULES)
    assert result.clean.set_index("deal_id").loc["DUP", "deal_amount"] == 900


@pytest.mark.parametrize("overrides, reason", [
    ({"deal_amount": ""}, "closed deal without deal_amount"),
    ({"created_date": ""}, "created_date is empty"),
    ({"closed_date": ""}, "closed deal without closed_date"),
    ({"outcome": ""}, "closed deal without outcome"),
    ({"deal_id": ""}, "deal_id is empty"),
])
def test_critical_nulls_are_quarantined(overrides, reason):
    result = validate_deals(batch({**deal("NUL"), **overrides}, *good(2)), RULES)
    assert len(result.quarantined) == 1
    row = result.quarantined.iloc[0]
    assert row["rule"] == "critical_nulls" and reason in row["reason"]
    assert len(result.clean) == 2 and result.rule_counts["critical_nulls"] == 1


def test_an_open_deal_without_amount_is_kept_unknown_and_is_no_broken_row():
    """CRMs leave an open deal's amount empty until a price is agreed: kept,
    never 0, counted, and not toward the breaker (a closed one still is)."""
    unpriced = [deal(f"O{i}", closed_date="", sales_cycle_days="", outcome="", deal_stage="Demo", deal_amount="")
                for i in range(30)]
    result = validate_deals(batch(*unpriced, *good(70)), RULES)
    assert len(result.clean) == 100 and result.quarantined.empty
    amounts = result.clean.set_index("deal_id")["deal_amount"]
    assert amounts[[f"O{i}" for i in range(30)]].isna().all() and amounts["G0"] == 1000
    assert result.rule_counts["missing_amount"] == 30 and result.bad_rows == 0 and not result.breaker_tripped(RULES)
    closed = validate_deals(batch(deal("C", deal_amount=""), *good(2)), RULES)
    assert closed.quarantined["reason"].tolist() == ["closed deal without deal_amount"]


def test_empty_dimension_is_filled_and_counted():
    result = validate_deals(batch(deal("DIM", industry="", sales_rep_id="")), RULES)
    row = result.clean.iloc[0]
    assert row["industry"] == "Unknown" and row["sales_rep_id"] == "Unknown"
    assert result.rule_counts["missing_dimension"] == 1


def test_circuit_breaker_trips_above_limit_on_large_batches():
    bad = [deal(f"B{i}", outcome="Pending") for i in range(11)]
    result = validate_deals(batch(*bad, *good(89)), RULES)
    assert result.bad_rows == 11 and result.breaker_tripped(RULES)
    just_under = validate_deals(batch(*bad[:10], *good(90)), RULES)
    assert not just_under.breaker_tripped(RULES)


def test_circuit_breaker_ignores_tiny_batches():
    result = validate_deals(batch(deal("B", outcome="Pending"), *good(2)), RULES)
    assert result.bad_share > 0.1 and not result.breaker_tripped(RULES)


def test_every_row_is_accounted_for():
    rows = [deal("A"), deal("A", deal_amount="2"), deal("B", outcome="x"), deal("C", deal_amount=""),
            deal("D", sales_cycle_days="1"), deal("E", closed_date="2023-01-01")]
    result = validate_deals(batch(*rows), RULES)
    assert len(result.clean) + len(result.quarantined) == len(rows)


def test_rows_without_deal_id_are_not_collapsed_as_duplicates():
    rows = [{**deal(), "deal_id": ""}, {**deal(), "deal_id": " "}]
    result = validate_deals(batch(*rows, *good(1)), RULES)
    assert list(result.quarantined["rule"]) == ["critical_nulls", "critical_nulls"]


def test_formatted_amounts_parse_and_garbage_does_not():
    result = validate_deals(batch(deal("USD", deal_amount="$4,253"), deal("EUR", deal_amount="4 253 EUR"),
                                  deal("BAD", deal_amount="lots"), *good(3)), RULES)
    amounts = result.clean.set_index("deal_id")["deal_amount"]
    assert amounts["USD"] == 4253 and amounts["EUR"] == 4253
    assert result.quarantined.set_index("deal_id").loc["BAD", "rule"] == "unparseable_value"


def test_csv_export_with_bom_and_untidy_header_loads(tmp_path):
    from salesintel_assets.resources.crm import CsvCRM

    path = tmp_path / "export.csv"
    header = ",".join(f" {c.upper()} " if c == "deal_id" else c for c in deal())
    path.write_text(header + "\n" + ",".join(deal().values()) + "\n", encoding="utf-8-sig")
    page = next(CsvCRM(path=str(path)).fetch_deal_pages(None))
    assert list(page.columns)[0] == "deal_id" and page["_line"].tolist() == [2]
    assert validate_deals(conform_raw(page), RULES).schema_errors == []


def test_only_an_unknown_stage_that_reads_as_closed_is_flagged_with_its_words_next_to_other_review_reasons():
    open_fields = dict(closed_date="", sales_cycle_days="", outcome="Open")
    result = validate_deals(batch(
        deal("A", deal_stage="Haggling", **open_fields), deal("B", deal_stage="Haggling", closed_date="2023-12-01"),
        deal("C"), deal("D", deal_stage="", **open_fields), deal("E", deal_stage="Closed/Signed", **open_fields),
        deal("F", deal_stage="Wonder Phase", **open_fields), deal("G", deal_stage="Closed/Signed")), RULES)
    clean = result.clean.set_index("deal_id")
    assert clean.loc["B", "review_reason"] == "closed_date is before created_date"
    assert clean.loc["E", "review_reason"] == (
        "deal_stage Closed/Signed reads as closed but the deal has no closed_date or outcome")
    assert clean["needs_review"].to_dict() == {k: k in "BE" for k in "ABCDEFG"}
    assert clean.loc["D", "deal_stage"] == "Unknown"
    assert result.rule_counts["unknown_stage"] == 6 and result.rule_counts["closed_stage_open_deal"] == 1


