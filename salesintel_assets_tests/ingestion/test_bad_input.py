"""Bad exports, rule by rule: exact values or a quarantine reason, file-level
blocks with one sentence, idempotent pulls; and a fast subset of the
bad-export study through the real command."""

import pandas as pd
import pytest

from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.domain.ingestion import values
from salesintel_assets.domain.ingestion.blocked import BlockedInput
from salesintel_assets.domain.ingestion.pulls import conform_raw
from salesintel_assets.domain.ingestion import quality
from salesintel_assets.domain.ingestion.quality import validate_deals
from salesintel_assets.sources.csv_export import read_export
from salesintel_assets_tests.ingestion import bad_input_study as study
from salesintel_assets_tests.ingestion.test_quality import batch, deal, good

RULES = load_rules()
HEADER = ",".join(study.HEADER)
ROW = "D1,2024-01-01,2024-01-31,rep_1,SaaS,Europe,Core,Inbound,Closed,1000,30,Won"


@pytest.mark.parametrize("text, order, expected", [
    ("2024-01-05", None, "2024-01-05"),
    ("2024-01-05T23:30:00Z", None, "2024-01-05"),
    ("2024-01-05T23:30:00-05:00", None, "2024-01-05"),     # the calendar day as written
    ("05/01/2024", values.DAY_FIRST, "2024-01-05"),
    ("05/01/2024", values.MONTH_FIRST, "2024-05-01"),
    ("2024/1/5", None, "2024-01-05"),
    ("2024-1-5", None, "2024-01-05"),
    ("1/15/2024 10:30 AM", values.MONTH_FIRST, "2024-01-15"),  # a report's date and time
    ("5 Jan 2024", None, "2024-01-05"),
])
def test_dates_parse_exactly(text, order, expected):
    assert values._one_date(text, order, with_time=False) == (expected, "")


@pytest.mark.parametrize("text, order, reason", [
    ("2024-02-30", None, "is not a real date"),
    ("31/02/2024", values.DAY_FIRST, "is not a real date when read day-first"),
    ("13/01/2024", values.MONTH_FIRST, "is not a real date when read month-first"),
    ("05/01/24", values.DAY_FIRST, "two-digit year"),
    ("45292", None, "is not a date"),
    ("05/01/2024", None, "could be day-first or month-first"),
    ("2024-1/5", None, "is not a date"),
    ("1/15/2024 13:30 PM", values.MONTH_FIRST, "is not a real date"),
])
def test_dates_that_cannot_be_read_exactly_say_why(text, order, reason):
    parsed, why = values._one_date(text, order, with_time=False)
    assert parsed is None and reason in why


def test_timestamps_with_offsets_become_utc():
    assert values._one_date("2024-01-05T23:30:00-05:00", None, with_time=True) == ("2024-01-06T04:30:00", "")


@pytest.mark.parametrize("text, expected", [("1/15/2024 12:05 AM", "2024-01-15T00:05:00"),
                                            ("1/15/2024 12:05 PM", "2024-01-15T12:05:00"),
                                            ("1/15/2024 1:05 pm", "2024-01-15T13:05:00")])
def test_a_twelve_hour_clock_is_read(text, expected):
    assert values._one_date(text, values.MONTH_FIRST, with_time=True) == (expected, "")


def test_date_order_is_decided_for_the_whole_file_or_blocked_with_a_question():
    frame = lambda *days: pd.DataFrame({"created_date": list(days)})
    assert values.decide_date_order(frame("05/01/2024", "25/01/2024"), None, "f") == values.DAY_FIRST
    assert values.decide_date_order(frame("05/01/2024", "01/25/2024"), None, "f") == values.MONTH_FIRST
    with pytest.raises(BlockedInput, match="could be day-first or month-first.*--date-order"):
        values.decide_date_order(frame("05/01/2024", "03/02/2024"), None, "f")
    with pytest.raises(BlockedInput, match="mix day-first"):
        values.decide_date_order(frame("25/01/2024", "01/25/2024"), None, "f")
    assert values.decide_date_order(frame("05/01/2024"), values.MONTH_FIRST, "f") == values.MONTH_FIRST


@pytest.mark.parametrize("text, mark, expected", [
    ("1.234,50", ",", "1234.5"), ("1,234.50", ".", "1234.5"), ("$4,253", ".", "4253"),
    ("4 253 EUR", None, "4253"), ("(1,234)", ".", "-1234"), ("-500", None, "-500"), ("1e3", None, "1000"),
    ("EUR 1.234", ",", "1234"), ("1.234", ".", "1.234"),
])
def test_amounts_parse_exactly(text, mark, expected):
    assert values._one_amount(text, mark, 1e12) == (expected, "")


@pytest.mark.parametrize("text, mark, reason", [
    ("1e309", None, "out of range"), ("inf", None, "not a finite number"), ("NaN", None, "not a finite number"),
    ("1e15", None, "out of range"), ("lots", None, "not a number"), ("45,000", None, "ambiguous"),
    ("1.234,50", ".", "with '.' as the decimal mark"), ("1,23,456", ".", "with '.' as the decimal mark"),
])
def test_amounts_that_cannot_be_read_exactly_say_why(text, mark, reason):
    parsed, why = values._one_amount(text, mark, 1e12)
    assert parsed is None and reason in why


def test_decimal_mark_is_decided_by_the_files_evidence():
    amounts = lambda *a: pd.Series(list(a))
    assert values.decide_decimal_mark(amounts("1.234,50", "99", "12,5"), None, "f") == ","
    assert values.decide_decimal_mark(amounts("1,234.50", "1,000,000", "45,000"), None, "f") == "."
    assert values.decide_decimal_mark(amounts("45,000", "100"), None, "f") is None
    with pytest.raises(BlockedInput, match="both '.'"):
        values.decide_decimal_mark(amounts("1,234.50", "1.234,50"), None, "f")


@pytest.mark.parametrize("overrides, rule, reason", [
    ({"deal_amount": "-5"}, "negative_amount", "deal_amount -5 is negative"),
    ({"deal_amount": "(1,234.00)"}, "negative_amount", "deal_amount -1234 is negative"),
    ({"deal_amount": "1e309"}, "unparseable_value", "deal_amount '1e309' is out of range"),
    ({"created_date": "2024-08-01", "closed_date": "2024-08-05", "sales_cycle_days": "4"}, "future_date",
     "created_date 2024-08-01 is after the analysis date 2024-07-20"),
    ({"deal_stage": "Won", "outcome": "Lost"}, "outcome_values", "deal_stage 'Won' means Won but outcome is 'Lost'"),
])
def test_bad_values_are_quarantined_with_the_reason(overrides, rule, reason):
    result = validate_deals(batch(deal("BAD", **overrides), *good(3)), RULES, as_of=pd.Timestamp("2024-07-20"))
    row = result.quarantined.set_index("deal_id").loc["BAD"]
    assert row["rule"] == rule and reason in row["reason"]
    assert len(result.clean) == 3


def test_crm_stage_names_map_through_the_rules_file():
    raw = RULES.model_dump()
    raw["stages"]["names"] = {"Prospecting": "Qualified"}
    rules = type(RULES).model_validate(raw)
    rows = [deal("P", deal_stage="Prospecting", closed_date="", sales_cycle_days="", outcome=""),
            deal("W", deal_stage="won", outcome=""), deal("L", deal_stage="Closed Lost", outcome="")]
    result = validate_deals(batch(*rows), rules)
    clean = result.clean.set_index("deal_id")
    assert clean.loc["P", "deal_stage"] == "Qualified" and clean.loc["P", "outcome"] == "Open"
    assert clean.loc[["W", "L"], "outcome"].tolist() == ["Won", "Lost"]
    assert (clean.loc[["W", "L"], "deal_stage"] == "Closed").all() and not clean["needs_review"].any()
    assert result.rule_counts["stage_mapping"] == 3 and result.bad_rows == 0


@pytest.mark.parametrize("crm, stages", [
    ("Maven Analytics' sample", {"Prospecting": "Qualified", "Engaging": "Demo"}),
    ("Pipedrive", {"Lead In": "Qualified", "Contact Made": "Qualified", "Demo Scheduled": "Demo",
                   "Proposal Made": "Proposal", "Negotiations Started": "Negotiation"}),
    ("Dynamics 365", {"Qualify": "Qualified", "Develop": "Demo", "Propose": "Proposal", "Close": "Negotiation"}),
    ("Zoho", {"Qualification": "Qualified", "Identify Decision Makers": "Proposal",
              "Negotiation/Review": "Negotiation"}),
])
def test_common_crms_stage_names_need_no_mapping(crm, stages):
    rows = [deal(f"O{k}", deal_stage=stage, closed_date="", sales_cycle_days="", outcome="")
            for k, stage in enumerate(stages)]
    rows.append(deal("L", deal_stage="Closed Lost to Competition", outcome=""))
    clean = validate_deals(batch(*rows), RULES).clean.set_index("deal_id")
    assert not clean["needs_review"].any()
    assert clean.loc[[f"O{k}" for k in range(len(stages))], "deal_stage"].tolist() == list(stages.values())
    assert clean.loc["L", ["deal_stage", "outcome"]].tolist() == ["Closed", "Lost"]
    # What the CRM calls them is kept for the words its users read.
    assert clean.loc[[f"O{k}" for k in range(len(stages))], "crm_stage"].tolist() == list(stages)


def test_a_stage_name_is_known_however_the_crm_spells_it():
    """Case, spaces and punctuation aside: snake case, HubSpot's internal ids
    (its API and CSV exports write "closedwon", "decisionmakerboughtin"), dashes, doubled spaces."""
    spelled = {"closed_won": ("Closed", "Won"), "Closed-Lost": ("Closed", "Lost"), "closedlost": ("Closed", "Lost"),
               "Closed  Won": ("Closed", "Won"), "appointmentscheduled": ("Qualified", "Open"),
               "decisionmakerboughtin": ("Proposal", "Open"), "negotiation_review": ("Negotiation", "Open"),
               "PROPOSAL/PRICE-QUOTE": ("Proposal", "Open")}
    rows = [deal(f"S{k}", deal_stage=name, outcome="", **({} if outcome != "Open" else
                                                        {"closed_date": "", "sales_cycle_days": ""}))
            for k, (name, (_, outcome)) in enumerate(spelled.items())]
    result = validate_deals(batch(*rows), RULES)
    clean = result.clean.set_index("deal_id")
    assert result.quarantined.empty and not clean["needs_review"].any()
    assert [tuple(clean.loc[f"S{k}", ["deal_stage", "outcome"]]) for k in range(len(spelled))] == list(spelled.values())


def test_stage_names_that_read_alike_must_mean_the_same_stage():
    raw = RULES.model_dump()
    raw["stages"]["names"] = {"Demo-Done": "Proposal", "demo done": "Negotiation"}
    with pytest.raises(ValueError, match=r"\['demodone'\] .* map to different stages"):
        type(RULES).model_validate(raw)


def test_unknown_stage_names_are_kept_counted_and_not_bad_rows():
    """A CRM's own pipeline is analysed (without stage positions) rather than
    the whole pull refused."""
    open_deals = [deal(f"U{i}", deal_stage="Evaluation", closed_date="", sales_cycle_days="", outcome="")
                  for i in range(60)]
    result = validate_deals(batch(*open_deals, deal("C", deal_stage="Signed")), RULES)
    assert result.rule_counts["unknown_stage"] == 61 and result.rule_counts["closed_stage_open_deal"] == 0
    assert set(result.clean["deal_stage"]) == {"Evaluation", "Signed"} and not result.clean["needs_review"].any()
    assert result.bad_rows == 0 and not result.breaker_tripped(RULES)


@pytest.mark.parametrize("stage", ["Closed - Signed", "Deal Won", "lost to competitor", "Dead", "Disqualified"])
def test_an_unknown_stage_that_reads_as_closed_on_an_open_deal_is_flagged_and_counts_toward_the_breaker(stage):
    rows = [deal(f"U{i}", deal_stage=stage, closed_date="", sales_cycle_days="", outcome="") for i in range(60)]
    result = validate_deals(batch(*rows), RULES)
    assert result.rule_counts["closed_stage_open_deal"] == 60 and result.clean["needs_review"].all()
    assert result.clean["review_reason"].iloc[0] == (
        f"deal_stage {stage} reads as closed but the deal has no closed_date or outcome")
    assert result.breaker_tripped(RULES)
    assert "closed_stage_open_deal 60 (e.g. U0: deal_stage" in quality.breaker_sentence(result, RULES, "the export")


def test_blank_optional_fields_are_filled_reported_and_not_bad_rows():
    result = validate_deals(batch(*[deal(f"B{i}", lead_source="") for i in range(60)]), RULES)
    assert set(result.clean["lead_source"]) == {"Unknown"} and result.rule_counts["missing_dimension"] == 60
    assert result.bad_rows == 0 and not result.breaker_tripped(RULES)


def test_malformed_rows_are_quarantined_with_their_line(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("\n".join([HEADER, ROW, ROW.replace("D1", "D2") + ",extra", ROW.replace("D1", "D3")]) + "\n")
    raw = conform_raw(read_export(path).frame)
    result = validate_deals(raw, RULES)
    assert sorted(result.clean["deal_id"]) == ["D1", "D3"]
    row = result.quarantined.iloc[0]
    assert row["rule"] == "malformed_row" and row["reason"] == "line 3: the line has 13 fields, the header has 12"


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (HEADER.encode() + b"\n", "has a header but no deals"),
    (bytes(range(256)) * 4, "is a binary file"),
    (b"id;created;won\n1;2024-01-01;yes\n", "has no column(s) deal_id, created_date, closed_date"),
    (b"id;created;won\n1;2024-01-01;yes\n", "(found: id, created, won)"),   # read with its own delimiter
    (HEADER.replace(",deal_amount", "").encode() + b"\n" + ROW.replace(",1000,", ",").encode(),
     "has no column(s) deal_amount"),
])
def test_file_level_problems_block_with_one_sentence(tmp_path, content, message):
    path = tmp_path / "export.csv"
    path.write_bytes(content)
    with pytest.raises(BlockedInput, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        read_export(path)
    assert len(str(caught.value).splitlines()) == 1 and str(path) in str(caught.value)


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])   # DuckDB's reader, then the line-by-line one
def test_derivable_columns_may_be_left_out_of_an_export(tmp_path, encoding):
    """The rep, the dimensions, the cycle and the outcome (from a won or lost
    stage name) are read as empty cells are when the file has no such column."""
    path = tmp_path / "export.csv"
    path.write_bytes(("deal_id,created_date,closed_date,deal_stage,deal_amount\n"
                      "D1,2024-01-15,2024-02-14,Won,1200\nD2,2024-01-20,2024-03-01,Lost,900\n"
                      "D3,2024-01-25,,Négociation,\n").encode(encoding))
    result = validate_deals(conform_raw(read_export(path).frame), RULES)
    clean = result.clean.set_index("deal_id")
    assert result.bad_rows == 0 and clean["outcome"].to_dict() == {"D1": "Won", "D2": "Lost", "D3": "Open"}
    assert clean["sales_cycle_days"].iloc[:2].tolist() == [30, 41] and pd.isna(clean.loc["D3", "sales_cycle_days"])
    assert (clean[["sales_rep_id", "industry", "region", "product_type", "lead_source"]] == "Unknown").all().all()
    assert result.rule_counts["missing_dimension"] == 3 and result.rule_counts["sales_cycle"] == 2


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])   # DuckDB's reader, then the line-by-line one
def test_a_european_spreadsheet_export_is_read_exactly(tmp_path, encoding):
    """Spreadsheets in much of Europe write ';' between fields, a decimal
    comma and day-first dates with dots."""
    path = tmp_path / "export.csv"
    path.write_bytes((";".join(study.HEADER) + "\n"
                      "D1;15.01.2024;14.02.2024;rep_1;Télécom;Europe;Core;Inbound;Closed;1.234,50;30;Won\n"
                      "D2;20.01.2024;;rep_2;FinTech;APAC;Pro;Referral;Demo;980,00;;Open\n").encode(encoding))
    result = validate_deals(conform_raw(read_export(path).frame), RULES)
    clean = result.clean.set_index("deal_id")
    assert result.bad_rows == 0 and list(clean.index) == ["D1", "D2"]
    assert clean.loc["D1", "industry"] == "Télécom" and clean.loc["D1", "deal_amount"] == 1234.5
    assert str(clean.loc["D1", "created_date"])[:10] == "2024-01-15" and clean.loc["D2", "deal_amount"] == 980.0
    assert pd.isna(clean.loc["D2", "closed_date"]) and clean.loc["D2", "outcome"] == "Open"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "latin-1", "cp1252"])
def test_encodings_are_detected_from_evidence(tmp_path, encoding):
    path = tmp_path / "export.csv"
    path.write_bytes((HEADER + "\n" + ROW.replace("SaaS", "Télécom") + "\n").encode(encoding))
    export = read_export(path)
    assert export.frame.loc[0, "industry"] == "Télécom" and export.frame.loc[0, "deal_id"] == "D1"


def test_a_bad_analysis_date_is_a_blocked_input():
    with pytest.raises(BlockedInput, match="SALESINTEL_AS_OF='2024-7-20' is not a date YYYY-MM-DD"):
        values.parse_analysis_date("2024-7-20")


# a row-level quarantine, re-pulls of changed deals and a file-level block
# (the whole study: `python -m salesintel_assets_tests.ingestion.bad_input_study`)
FAST_KINDS = ["rows broken in several ways, pulled 3 times",   # a file only the line-by-line reader splits
              "two versions of ten deals with last_modified, pulled 3 times",
              "a file that trips the circuit breaker, pulled twice"]


def test_bad_input_study_fast_subset(tmp_path):
    """Through ``salesintel run``: each kind handled as expected, no row lost
    or silently wrong, blocked inputs exit 2 with one sentence, re-pulls change
    nothing, and a good export loads correctly afterwards."""
    outcomes = study.run_cases([c for c in study.CASES if c.kind in FAST_KINDS], tmp_path)
    assert len(outcomes) == len(FAST_KINDS)
    for outcome in outcomes:
        assert (outcome.handled, outcome.lost, outcome.wrong, outcome.usable_after) == (True, 0, 0, True), outcome
    blocked = [o for o in outcomes if o.expected == "block"]
    assert blocked and all(o.exit_code == 2 and o.message for o in blocked)
    assert "outcome_values 20 (e.g. D0001: line 2: outcome 'Pending'" in blocked[-1].message
