"""The run summary leads with what a reader must know."""

import duckdb
import numpy as np
import pandas as pd

from salesintel_assets.resources.warehouse import SalesintelHome, Warehouse
from salesintel_assets.summary import run_summary


def _summary(home, failed_checks=None) -> str:
    return run_summary(Warehouse(home=SalesintelHome(path=str(home))), failed_checks)


def test_the_summary_leads_with_what_you_must_know(home):
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("CREATE TABLE fact_deals AS SELECT * FROM (VALUES ('D1', true, false, false, 1000.0, TIMESTAMP '2026-06-30'),"
                " ('D2', false, true, false, 500.0, TIMESTAMP '2026-06-30')) t(deal_id, is_open, is_won, needs_review, deal_amount, as_of_date)")
    con.register("_q", pd.DataFrame({"rule": ["critical_nulls", "schema", "critical_nulls"], "reason": "x"}))
    con.execute("CREATE TABLE quarantined_deals AS SELECT * FROM _q")
    con.register("_r", pd.DataFrame({
        "pull_id": ["p1", "p2", "p2"], "pulled_at": pd.to_datetime(["2026-06-01", "2026-06-30", "2026-06-30"]),
        "rule": ["leakage:old_column", "leakage:deal_amount", "duplicates"],
        "action": ["exclude", "exclude", "keep_latest"],
        "detail": ["old_column was known only after close",  # an earlier pull's finding: not current
                   "deal_amount looks like it encodes the outcome: 0 on 100 % of lost deals", "2 duplicates"]}))
    con.execute("CREATE TABLE data_quality_report AS SELECT * FROM _r")
    con.register("_s", pd.DataFrame({"deal_id": ["D1"], "win_probability": [0.4], "risk_band": ["medium"],
                                     "model_verdict": ["weak"]}))
    con.execute("CREATE TABLE deal_risk_scores AS SELECT * FROM _s")
    con.close()

    text = _summary(home, failed_checks=[("model_beats_baseline", "warning", "AUC 0.51 vs 0.50"),
                                            ("fact_deals_schema_valid", "error", "")])
    lines = text.splitlines()
    start = lines.index("What you must know:")
    assert start < next(i for i, line in enumerate(lines) if line.startswith("analysis date"))
    assert lines[start + 1:start + 5] == [
        "  - excluded column: deal_amount looks like it encodes the outcome: 0 on 100 % of lost deals",
        "  - no signal found: the risk model is no better than deal age or the segment win rate, so its win "
        "probabilities are not quoted in alerts",
        "  - failed check model_beats_baseline (warning): AUC 0.51 vs 0.50",
        "  - quarantined rows: 2 critical_nulls, 1 schema",
    ]
    # a weak model's bands are no risk judgement: the count says so
    assert "high-risk open deals 0 (bands of a model with no signal, see above: not a risk judgement)" in lines


def test_a_weak_models_verdict_is_said_once(home):
    reason = "no better than deal age: validation AUC 0.427 vs 0.474 on 228 validation snapshots"
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("CREATE TABLE fact_deals AS SELECT 'D1' AS deal_id, true AS is_open, false AS is_won, "
                "false AS needs_review, 1.0 AS deal_amount, TIMESTAMP '2026-06-30' AS as_of_date")
    con.execute(f"CREATE TABLE deal_risk_model AS SELECT TIMESTAMP '2026-06-30' AS as_of_date, 'trained' AS status, "
                f"'weak' AS model_verdict, '{reason}' AS verdict_reason")
    con.close()
    lines = _summary(home, failed_checks=[("model_beats_baseline", "warning", reason),
                                          ("forecast_win_rate_within_target", "warning", "missed on 1 of 1 dates")]
                     ).splitlines()
    start = lines.index("What you must know:")
    assert lines[start + 1:start + 3] == [
        f"  - no signal found: the risk model is weak and not promoted ({reason}), so its win probabilities are "
        "not quoted in alerts",
        "  - failed check forecast_win_rate_within_target (warning): missed on 1 of 1 dates"]
    assert sum(reason in line for line in lines) == 1


def test_data_that_does_not_cover_its_period_is_said_first(home):
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("CREATE TABLE fact_deals AS SELECT 'D1' AS deal_id, false AS is_open, true AS is_won, "
                "false AS needs_review, 1.0 AS deal_amount, TIMESTAMP '2026-12-02' AS as_of_date")
    con.close()
    quiet = "no deal was created or closed in the 865 days before the analysis date 2026-12-02 (the newest on ...)"
    gap = "no deal was closed from 2016-10-20 to 2017-03-01 (132 days, at the start of the data) although ..."
    newer = "no deal was created in the 116 days before the analysis date 2024-07-20 (the newest on ...)"
    lines = _summary(home, failed_checks=[("model_beats_baseline", "warning", "AUC 0.51 vs 0.50"),
                                          ("closes_recorded_without_gaps", "warning", gap),
                                          ("new_deals_reach_the_analysis_date", "warning", newer),
                                          ("deals_reach_the_analysis_date", "warning", quiet)]).splitlines()
    start = lines.index("What you must know:")
    assert lines[start + 1:start + 5] == [f"  - closes are missing from the history: {gap}",
                                          f"  - the newer deals are missing from the data: {newer}",
                                          f"  - the data stops long before the analysis date: {quiet}",
                                          "  - failed check model_beats_baseline (warning): AUC 0.51 vs 0.50"]
    assert sum("_recorded_without_gaps" in line or "_reach_the_analysis_date" in line for line in lines) == 0


def test_a_clean_run_says_there_is_nothing_to_know_first(home):
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("CREATE TABLE fact_deals AS SELECT 'D1' AS deal_id, true AS is_open, false AS is_won, false AS needs_review, "
                "1.0 AS deal_amount, TIMESTAMP '2026-06-30' AS as_of_date")
    con.close()
    assert "What you must know:\n  - nothing that changes the figures below" in _summary(home)


def test_a_dimension_with_one_value_is_said_to_be_missing(home):
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("CREATE TABLE fact_deals AS SELECT * FROM (VALUES ('D1', 'Unknown', 'EU', 'Pro', true, false, 9.0), "
                "('D2', 'Unknown', 'EU', 'Core', false, true, 5.0)) "
                "t(deal_id, lead_source, region, product_type, is_open, is_won, deal_amount)")
    con.execute("ALTER TABLE fact_deals ADD COLUMN needs_review BOOLEAN DEFAULT false")
    con.execute("ALTER TABLE fact_deals ADD COLUMN as_of_date TIMESTAMP DEFAULT TIMESTAMP '2026-06-30'")
    con.close()
    lines = _summary(home).splitlines()
    assert "  - lead_source is empty on every deal (filled as Unknown): it cannot explain win rate and is never " \
           "named as a segment or cause" in lines
    assert "  - region is EU on every deal: it cannot explain win rate and is never named as a segment or cause" in lines
    assert not any(line.startswith("  - product_type") for line in lines)


def test_a_dimension_blank_on_many_deals_is_said(home):
    # lead_source blank on half the deals, industry on 1 of 40 (below the share said), region on none
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.register("_f", pd.DataFrame({
        "deal_id": [f"D{i}" for i in range(40)],
        "lead_source": ["Unknown", "Web", "Unknown", "Event"] * 10, "industry": ["Unknown"] + ["Retail"] * 39,
        "region": ["EU", "NA"] * 20, "is_open": [True, False] * 20, "is_won": [False, True] * 20,
        "needs_review": False, "deal_amount": 9.0, "as_of_date": pd.Timestamp("2026-06-30")}))
    con.execute("CREATE TABLE fact_deals AS SELECT * FROM _f")
    con.close()
    lines = _summary(home).splitlines()
    assert "  - lead_source is blank on 20 of 40 deals (50%; filled as Unknown): lead_source=Unknown in win rates, " \
           "drivers and alerts means the deals without one" in lines
    assert not any(line.startswith(("  - industry", "  - region")) for line in lines)


def _history_too_short(home, scored: bool):
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("CREATE TABLE fact_deals AS SELECT * FROM (VALUES ('D1', true, false, false, 1000.0, TIMESTAMP "
                "'2026-06-30'), ('D2', false, true, false, 500.0, TIMESTAMP '2026-06-30')) "
                "t(deal_id, is_open, is_won, needs_review, deal_amount, as_of_date)")
    con.register("_m", pd.DataFrame({
        "as_of_date": pd.to_datetime(["2026-05-15", "2026-06-30"]), "status": ["trained", "not enough data"],
        "decision": ["promoted", "not enough data: the validate period has no rows or only one outcome: the "
                                 "outcome window has ended for 6 past dates only (2026-01-04 to 2026-02-08); more "
                                 "history is needed"],
        "model_verdict": ["usable", None], "verdict_reason": ["beats deal age", None]}))
    con.execute("CREATE TABLE deal_risk_model AS SELECT * FROM _m")
    con.execute("CREATE TABLE deal_risk_scores AS SELECT 'D1' AS deal_id, 'low' AS risk_band, 'usable' AS model_verdict"
                + ("" if scored else " WHERE false"))
    con.close()
    return _summary(home).splitlines()


def test_a_history_too_short_for_a_model_is_said_first_and_the_risk_count_says_nothing_was_scored(home):
    lines = _history_too_short(home, scored=False)
    start = lines.index("What you must know:")
    assert lines[start + 1] == (
        "  - no risk model was trained (not enough data: the validate period has no rows or only one outcome: the "
        "outcome window has ended for 6 past dates only (2026-01-04 to 2026-02-08); more history is needed): open "
        "deals are not scored and no forecast is made")
    assert "high-risk open deals 0 (no open deal was scored: no risk model, see above)" in lines


def test_a_run_without_a_new_model_says_the_last_champion_scored_the_deals(home):
    lines = _history_too_short(home, scored=True)
    assert any(line.endswith("more history is needed): open deals are scored by the last champion")
               for line in lines)
    assert "high-risk open deals 0" in lines


def test_open_deals_without_an_amount_are_counted_and_said_to_be_left_out_of_revenue(home):
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("CREATE TABLE fact_deals AS SELECT *, false AS is_won, false AS needs_review, "
                "TIMESTAMP '2026-06-30' AS as_of_date FROM (VALUES ('D1', true, NULL), ('D2', true, 5.0), "
                "('D3', true, NULL), ('D4', false, 7.0)) t(deal_id, is_open, deal_amount)")
    con.close()
    assert ("2 open deals have no amount (kept as unknown, not 0): pipeline and revenue figures count only the 1 "
            "open deals that have one") in _summary(home)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("UPDATE fact_deals SET deal_amount = NULL WHERE is_open")
    con.close()
    assert "3 open deals have no amount (kept as unknown, not 0): pipeline and revenue figures count none of them: " \
           "no open deal has one" in _summary(home)


def test_stage_names_the_rules_file_does_not_map_are_named_with_their_deals(home):
    stages = ["Discovery"] * 4 + ["Review"] * 2 + [f"Step {k}" for k in range(5)] + ["Unknown", "Demo"]
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.register("_f", pd.DataFrame({
        "deal_id": [f"D{k}" for k in range(len(stages))], "deal_stage": stages,
        "stage_number": pd.array([None] * (len(stages) - 1) + [2], dtype="Int64"),
        "is_open": [True, True, True, False] + [True] * (len(stages) - 4), "is_won": False, "needs_review": False,
        "deal_amount": 1.0, "as_of_date": pd.Timestamp("2026-06-30")}))
    con.execute("CREATE TABLE fact_deals AS SELECT * FROM _f")
    con.close()
    assert ("  - 12 deals have a stage the rules file does not know: Discovery 4 (3 open), Review 2 (2 open), "
            "Step 0 1 (1 open), Step 1 1 (1 open), Step 2 1 (1 open) and 3 more: they are analysed without a stage "
            "position (stage momentum and stage-based stall checks leave them out); map the names under "
            "stages.names in the rules file (SALESINTEL_RULES)") in _summary(home).splitlines()
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("UPDATE fact_deals SET stage_number = 1")
    con.close()
    assert "does not know" not in _summary(home)


def _closes_with_sweeps(sweep_days_before: list[int], as_of=pd.Timestamp("2026-06-30")) -> pd.DataFrame:
    """A year of closes (8 a day, 40 % won) and 300 stale deals closed lost on each sweep day."""
    rng = np.random.default_rng(8)
    days = np.repeat(np.arange(365), rng.poisson(8, 365))
    won = rng.random(len(days)) < 0.4
    days, won = np.concatenate([days, np.repeat(sweep_days_before, 300)]), np.append(won, [False] * 300 * len(
        sweep_days_before))
    return pd.DataFrame({"deal_id": [f"D{i}" for i in range(len(days))], "is_open": False, "is_won": won,
                         "needs_review": False, "deal_amount": 1000.0, "as_of_date": as_of,
                         "closed_date": as_of - pd.to_timedelta(days, unit="D"),
                         "outcome": np.where(won, "Won", "Lost")})


def test_a_recent_clean_up_day_is_said(home):
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    fact = _closes_with_sweeps([20, 200])   # the sweep of 200 days ago no longer colours recent rates
    con.register("_f", fact)
    con.execute("CREATE TABLE fact_deals AS SELECT * FROM _f")
    con.close()
    on_day = fact["closed_date"].eq(pd.Timestamp("2026-06-10"))
    lines = _summary(home).splitlines()
    assert (f"  - clean-up days (stale deals closed lost in one sweep): 10 Jun 2026 ({on_day.sum()} closes, "
            f"{(on_day & ~fact['is_won']).sum() / on_day.sum():.0%} lost); housekeeping, not a fall in selling: the "
            "anomaly tests and the forecast's segment changes leave them out") in lines
    assert sum(line.startswith("  - clean-up days") for line in lines) == 1
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("DELETE FROM fact_deals WHERE closed_date = TIMESTAMP '2026-06-10'")
    con.close()
    assert not any("clean-up" in line for line in _summary(home).splitlines())
