"""The scheduled summaries: weekly rep scorecards and the monthly executive
report, delivered once per period through the ledger; the schedules' config."""

import dagster as dg
import pandas as pd
import pytest

from salesintel_assets.definitions import build_definitions
from salesintel_assets.domain.alerts.reports import rep_scorecards
from salesintel_assets.domain.alerts.routing import Router
from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.schedules import schedules
from salesintel_assets.tenant_runs import run_in_process
from salesintel_assets_tests.alert_support import AS_OF, N_DEALS, reps_frame
from salesintel_assets_tests.support import read_table, sample_resources


def _deliver(home, reports, digests=()):
    defs = build_definitions(sample_resources(home, n_deals=N_DEALS))
    job = dg.define_asset_job("t", selection="key:alerts or key:alert_deliveries")
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    config = {"ops": {"alert_deliveries": {"config": {"digests": list(digests), "reports": list(reports)}}}}
    return run_in_process(defs.resolve_job_def("t"), run_config=config)


def test_scorecards_and_executive_report_go_out_once_per_period(alert_home):
    _deliver(alert_home, ["rep_scorecard", "executive_report"])
    ledger = read_table(alert_home, "alert_deliveries")
    cards = ledger[ledger["message_kind"].eq("scorecard")]
    reps = read_table(alert_home, "dim_sales_reps")
    assert sorted(cards["recipient_id"]) == sorted(reps.loc[reps["deals"] > 0, "sales_rep_id"])
    assert set(cards["message_id"].str.rsplit("/", n=1).str[0]) == {"scorecard/2026-W27"}
    outbox = {(r["kind"], r["recipient_id"]): r for r in
              sample_resources(alert_home, n_deals=N_DEALS)["outbox"].read()}
    rep = read_table(alert_home, "alerts").dropna(subset=["sales_rep_id"]).iloc[0]["sales_rep_id"]
    card = outbox[("scorecard", rep)]["text"].split("\n")
    assert card[0].startswith("Weekly scorecard for ") and card[0].endswith(" · 2026-W27")
    assert card[2].startswith("Win rate (last 90 days): ") and "(team " in card[2]
    assert card[4] == "Deals at risk: risk scores not available"
    assert any(line.startswith("Alerts this week: 3 open (3 P1), 0 resolved; money at stake $") for line in card)

    report = outbox[("report", "cro_1")]["text"].split("\n")
    assert report[0] == "Monthly executive report · 2026-06"
    assert report[2].startswith("Win rate: ") and " in the 30 days before" in report[2]
    assert report[4].startswith("Alerts since 2026-06-01: 5 (P1 4, P2 1); 0 resolved;")
    assert "Largest open alerts:" in report
    assert {k for k in outbox if k[0] == "report"} == {("report", "cro_1"), ("report", "sales-leadership")}

    _deliver(alert_home, ["rep_scorecard", "executive_report"])  # the schedule fires again: nothing new
    assert len(read_table(alert_home, "alert_deliveries")) == len(ledger)


def test_unknown_report_names_fail_the_run(alert_home):
    with pytest.raises(dg.Failure, match="unknown digest or report"):
        _deliver(alert_home, ["quarterly_review"])


def test_schedules_carry_their_delivery_config():
    by_name = {s.name: s for s in schedules}
    expected = {"daily_alert_digest": ("0 8 * * *", ["daily"], []),
                "weekly_rep_scorecard": ("0 8 * * 1", ["weekly"], ["rep_scorecard"]),
                "monthly_executive_report": ("0 8 1 * *", [], ["executive_report"]),
                "alert_escalation_check": ("15 * * * *", [], [])}
    repository = build_definitions(sample_resources("unused-home")).get_repository_def()
    with dg.instance_for_test() as instance, dg.partition_loading_context(dynamic_partitions_store=instance):
        requests = {name: by_name[name].evaluate_tick(
            dg.build_schedule_context(instance=instance, repository_def=repository)).run_requests for name in expected}
    for name, (cron, digests, reports) in expected.items():
        schedule = by_name[name]
        [request] = requests[name]
        config = request.run_config
        assert request.partition_key == "default"  # one run per tenant; here only the default one
        assert schedule.cron_schedule == cron and schedule.job_name == "alert_delivery_job"
        assert config["ops"]["alert_deliveries"]["config"] == {"digests": digests, "reports": reports}


def test_a_scorecards_deal_without_an_amount_says_so_never_n_a():
    """A CRM with no amount for a deal (none until a price is agreed): "no amount", not "n/a" or $0."""
    stats = pd.DataFrame([{"sales_rep_id": "rep_1", "won_n": 9, "closed_n": 20, "open_n": 2, "open_amount": 40_000.0,
                           "open_priced_n": 1}])
    risk = pd.DataFrame([{"sales_rep_id": "rep_1", "deal_id": d, "deal_amount": amount, "win_probability": p,
                          "risk_band": "high", "revenue_at_risk": r, "reason_1": None, "model_verdict": "usable"}
                         for d, amount, p, r in (("D1", 40_000.0, 0.1, 36_000.0), ("D2", None, 0.05, 0.0))])
    alerts = pd.DataFrame(columns=["first_seen", "sales_rep_id", "status", "priority", "amount_at_stake",
                                   "content_json"])
    [(_, card)] = rep_scorecards(reps_frame(), stats, alerts, risk, Router(reps_frame(), load_rules().alerts), AS_OF,
                                 "2026-W27")
    lines = card.text.split("\n")
    assert "Open pipeline: 2 deals, $40,000 on the 1 with an amount" in lines
    assert "  - D1 ($40,000): 10 % win probability" in lines
    assert "  - D2 (no amount): 5 % win probability" in lines
