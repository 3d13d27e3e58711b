"""Open deals without an amount: many CRMs leave it empty until a price is
agreed (an export of closed values has it only for closed deals). They are
kept, their amount unknown (never 0), counted in the quality report, and the
whole pipeline runs on them; revenue figures count only deals with an amount."""

import numpy as np

from salesintel_assets.cli import main
from salesintel_assets.constants import EXPORT_COLUMNS
from salesintel_assets.domain.ingestion import pulls
from salesintel_assets.sources import sample_crm
from salesintel_assets_tests.support import light_rules, read_table

AS_OF = "2026-06-30"


def _export(path, share: float = 0.7, seed: int = 3) -> list[str]:
    """A sample-CRM export whose open deals lack an amount at ``share``; the ids left without one."""
    deals = sample_crm.snapshot(sample_crm.generate_world(1500, seed, with_activities=False)).deals
    frame = pulls.as_export_text(deals)[list(EXPORT_COLUMNS)].drop_duplicates("deal_id", keep="last")
    is_open = (frame["closed_date"] == "").to_numpy()
    blank = is_open & (np.random.default_rng(seed).random(len(frame)) < share)
    frame.loc[blank, "deal_amount"] = ""
    frame.to_csv(path, index=False)
    return frame.loc[blank, "deal_id"].tolist()


def test_a_run_keeps_open_deals_without_an_amount_and_counts_revenue_only_where_known(
        contract_env, home, tmp_path, capsys, monkeypatch):
    export = tmp_path / "export.csv"
    blank = _export(export)
    monkeypatch.setenv("SALESINTEL_RULES", str(light_rules(tmp_path)))
    code = main(["run", "--csv", str(export), "--as-of", AS_OF, "--home", str(home)])
    out = capsys.readouterr()
    assert code == 0, out.err + out.out
    assert "Failed steps" not in out.out
    failed = [line for line in out.out.splitlines() if "failed check" in line]
    assert all("(warning)" in line for line in failed), failed     # the sample's weak signal, nothing broken

    fact = read_table(home, "fact_deals").set_index("deal_id")
    assert fact.loc[blank, "deal_amount"].isna().all() and len(blank) > 100
    assert fact["deal_amount"].isna().sum() == len(blank)                 # never 0, never another deal's
    report = read_table(home, "data_quality_report").set_index("rule")
    assert report.loc["missing_amount", ["rows", "action"]].tolist() == [len(blank), "auto_correct"]
    # more than the breaker's 10 % of the rows, yet not broken rows: only the sample's few dirty ones count
    assert len(blank) > 0.1 * report["batch_rows"].max()
    assert not report["breaker_tripped"].any() and report["bad_rows"].max() < 20

    scores = read_table(home, "deal_risk_scores").set_index("deal_id")
    assert scores.loc[blank, "revenue_at_risk"].isna().all() and scores.loc[blank, "win_probability"].notna().all()
    known = scores.drop(index=blank)
    assert known["revenue_at_risk"].notna().all()
    forecast = read_table(home, "pipeline_forecast")
    total = forecast[forecast["grouping"] == "total"].iloc[0]
    assert total["open_deals"] == len(scores)
    assert np.isclose(total["pipeline_amount"], known["deal_amount"].sum(), atol=0.01)
    assert np.isclose(total["expected_won_revenue"], (known["deal_amount"] * known["win_probability"]).sum(), atol=1)
    assert forecast[["expected_won_revenue", "revenue_p10", "revenue_p90"]].notna().all().all()
    backtest = read_table(home, "forecast_backtest")
    ok = backtest[backtest["status"] == "ok"]
    assert len(ok) and ok["revenue_shift"].notna().all()
    alerts = read_table(home, "alerts")
    assert not (alerts["title"] + alerts["body_text"]).str.contains("nan", case=False).any()
    assert f"{len(blank):,} open deals have no amount (kept as unknown, not 0)" in out.out
