"""The real-export replay study: the export as it looked on a past date."""

import pandas as pd

from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets_tests.export_replay import as_of_export, judged, won_within

EXPORT = pd.DataFrame({
    "deal_id": ["A", "B", "C", "D", "E"],
    "created_date": ["2024-01-05", "2024-02-01", "2024-02-10", "2024-03-20", "2024-02-15"],
    "closed_date": ["2024-02-20", "2024-03-30", "2024-06-30", "2024-04-01", ""],
    "deal_stage": ["Closed", "Won", "Negotiation", "Demo", "Engaging"],
    "sales_cycle_days": ["46", "58", "141", "12", ""],
    "outcome": ["Won", "Won", "Lost", "Won", ""],
})
AS_OF = pd.Timestamp("2024-03-01")


def test_the_export_as_of_a_past_date_drops_later_deals_and_reopens_later_closes():
    then = as_of_export(EXPORT, AS_OF, load_rules().stages).set_index("deal_id")
    assert list(then.index) == ["A", "B", "C", "E"]                     # D was created later
    assert then.loc["A", ["closed_date", "outcome"]].tolist() == ["2024-02-20", "Won"]   # closed by then
    for deal in ("B", "C"):                                                # closed later: open then
        assert then.loc[deal, ["closed_date", "sales_cycle_days", "outcome"]].tolist() == ["", "", ""]
    # a stage that names the outcome would give it away: the pipeline's first stage instead
    assert then.loc["B", "deal_stage"] == "Qualified" and then.loc["C", "deal_stage"] == "Negotiation"
    assert then.loc["E", "closed_date"] == "" and then.loc["E", "deal_stage"] == "Engaging"


def test_the_truth_is_won_within_the_horizon_after_the_date():
    truth = won_within(EXPORT, ["B", "C", "E"], AS_OF)
    assert truth.to_dict() == {"B": True, "C": False, "E": False}
    assert not won_within(EXPORT, ["B"], AS_OF, days=20)["B"]


def test_a_run_is_judged_on_the_open_deals_it_scored():
    truth = pd.Series([True, False, False, True], index=["B", "C", "E", "F"])
    ran = {"verdict": "usable", "candidate": "blend", "forecast": (3.0, 2.5, 4.0),
           "scores": pd.DataFrame({"deal_id": ["B", "C", "E", "F"], "age_days": [10, 50, 40, 80],
                                   "win_probability_90d": [0.9, 0.2, 0.3, 0.6]})}
    row = judged(ran, truth)
    assert row["won_90d"] == 2 and row["error"] == 0.5 and not row["in_interval"]   # 3 forecast, 2 won, below p10
    assert row["auc_model"] == 1.0 and row["auc_age"] == 0.5   # the model ranks both wins first; age does not
    assert row["verdict"] == "usable" and row["candidate"] == "blend"


def test_the_forecasts_segment_changes_are_read_from_the_warehouse_as_the_forecast_finds_them():
    import duckdb

    from salesintel_assets_tests.export_replay import forecast_changes
    from salesintel_assets_tests.models.test_segment_changes import AS_OF as DAY, _closes

    con = duckdb.connect()
    for drop, said in ((("FinTech", "Europe", 0.15), "industry=FinTech, region=Europe -"), (None, "-")):
        fact = _closes(drop=drop).assign(is_open=False, needs_review=False)
        con.execute("CREATE OR REPLACE TABLE fact_deals AS SELECT * FROM fact")
        found = forecast_changes(con, DAY)
        assert found.startswith(said) and found.count(";") == 0
        if drop:
            assert float(found.rsplit(" ", 1)[1]) < -0.5    # its open deals' odds moved down
