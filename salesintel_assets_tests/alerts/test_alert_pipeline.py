"""The real chain on the sample CRM: warehouse -> metrics -> anomalies ->
alerts -> outbox, with the layer's checks, and a re-run that sends nothing."""

import json

import pytest

from salesintel_assets_tests.support import check_results, read_table, run_job, run_selection, sample_resources

N_DEALS = 3000
CHAIN = "key:deal_metrics or key:anomalies or key:alerts or key:alert_deliveries"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    home = tmp_path_factory.mktemp("alert_pipeline")
    resources = sample_resources(home, n_deals=N_DEALS)
    run_job(resources, job="ingestion_job")
    result = run_selection(resources, CHAIN)
    return home, resources, result


def test_planted_problems_reach_the_outbox_as_alerts(pipeline):
    home, resources, result = pipeline
    alerts = read_table(home, "alerts")
    anomalies = read_table(home, "anomalies")
    assert len(anomalies) > 0 and len(alerts) > 0
    # every anomaly is accounted for: mapped to an alert (several may share one subject)
    mapped = {a for ids in alerts["anomaly_ids"] for a in ids.split(",")}
    assert mapped == set(anomalies["anomaly_id"])
    outbox = resources["outbox"].read()
    ledger = read_table(home, "alert_deliveries")
    assert sorted(r["delivery_id"] for r in outbox) == sorted(ledger["delivery_id"])
    crisis = next(r for r in outbox if r["kind"] == "alert" and "Deal Velocity Crisis" in r["subject"])
    text = crisis["text"]
    for part in ("\nDeal: ", "\nRep: ", "\nStage: ", "\nMetric: ", "\n\nWhy this matters:\n", "\n\nRoot cause:\n",
                 "\n\nRecommended actions:\n1. ", "\n\nMoney at stake: $"):
        assert part in text
    assert text.startswith("🔴 [P1] Deal Velocity Crisis: ")
    assert crisis["blocks"][0]["type"] == "header" and crisis["blocks"][-2]["type"] == "actions"
    alert = alerts.set_index("alert_id").loc[crisis["alert_ids"]]
    assert text == alert["body_text"] and json.loads(alert["blocks_json"]) == crisis["blocks"]


def test_the_layers_checks_pass(pipeline):
    _, _, result = pipeline
    checks = check_results(result)
    for name in ("one_live_alert_per_dedup_key", "each_message_sent_at_most_once", "every_message_delivered",
                 "p1_throttle_respected"):
        assert checks[name], name


def test_rerunning_the_chain_sends_nothing_twice(pipeline):
    home, resources, _ = pipeline
    before = len(resources["outbox"].read())
    alerts_before = read_table(home, "alerts")
    run_selection(resources, "key:alerts or key:alert_deliveries")
    assert len(resources["outbox"].read()) == before
    after = read_table(home, "alerts")
    assert sorted(after["alert_id"]) == sorted(alerts_before["alert_id"])
    assert set(after["status"]) <= {"open"}  # same analysis date: still new, not re-sent
