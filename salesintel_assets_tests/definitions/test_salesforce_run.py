"""`salesintel run` on a Salesforce org (the loopback stand-in holding the
sample CRM's world): the whole pipeline, routed through the org's own
manager chain, with stalled deals judged by OpportunityHistory."""

import pandas as pd

from salesintel_assets.cli import main
from salesintel_assets_tests.salesforce_standin import TOKEN, SalesforceStandIn
from salesintel_assets_tests.support import light_rules, read_table

N_DEALS = 800


def connect(monkeypatch, org, home, token: str = TOKEN) -> None:
    """The run-time contract for the stand-in org (no org file, no Slack or email;
    the light rules: these tests are about the source, not the model)."""
    for name, value in {"SALESINTEL_SOURCE": "salesforce", "SALESFORCE_INSTANCE_URL": org.instance_url,
                        "SALESFORCE_ACCESS_TOKEN": token, "SALESINTEL_HOME": str(home),
                        "SALESINTEL_AS_OF": "2026-06-30", "REQUESTS_CA_BUNDLE": org.ca_bundle(),
                        "SALESINTEL_RULES": str(light_rules(home.parent))}.items():
        monkeypatch.setenv(name, value)
    for name in ("SALESINTEL_CSV", "SALESINTEL_ORG", "SLACK_BOT_TOKEN", "SALESINTEL_SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)


def test_salesintel_run_on_salesforce(monkeypatch, home, capsys):
    with SalesforceStandIn(n_deals=N_DEALS) as org:
        connect(monkeypatch, org, home)
        code = main(["run"])
        users = {u["Id"]: u for u in org.data["User"]}
    out = capsys.readouterr().out
    assert code == 0, out

    fact = read_table(home, "fact_deals")
    assert len(fact) > 0.95 * N_DEALS and fact["deal_id"].str.startswith("006").all()
    assert not fact.loc[fact["is_open"], "deal_stage"].isin(["Qualification", "Needs Analysis"]).any()

    reps = read_table(home, "dim_sales_reps").set_index("sales_rep_id")
    owners = reps.loc[reps["deals"] > 0]
    assert owners["has_org"].all()   # no org file: the chain is User.ManagerId
    for rep_id, rep in owners.iterrows():
        assert rep["manager_id"] == users[rep_id]["ManagerId"]
        assert rep["cro_email"] == users[users[rep["manager_id"]]["ManagerId"]]["Email"]

    transitions = read_table(home, "fact_stage_transitions")
    assert transitions["stage_number"].notna().all() and transitions["deal_id"].nunique() > 0.9 * len(fact)
    stalled = read_table(home, "anomalies").query("anomaly_type == 'stalled_deal'")
    assert len(stalled) > 0
    open_days = fact.set_index("deal_id").loc[stalled["deal_id"], "days_in_stage"]
    assert open_days.notna().all()   # judged by days in stage from the stage history

    alerts = read_table(home, "alerts")
    routed = alerts[alerts["sales_rep_id"].isin(owners.index)]
    assert len(routed) > 0
    for _, alert in routed.iterrows():
        chain = {alert["sales_rep_id"], *owners.loc[alert["sales_rep_id"], ["manager_id", "cro_id"]]}
        assert {r.strip() for r in alert["recipients"].split(",")} <= chain, alert["recipient_roles"]
    assert pd.notna(read_table(home, "raw_deals")["last_modified"]).all()


def test_salesintel_run_names_an_expired_token_and_fails(monkeypatch, home, capsys):
    with SalesforceStandIn(n_deals=100) as org:
        connect(monkeypatch, org, home, token="00D!expired")
        code = main(["run"])
    err = capsys.readouterr().err
    assert code == 1
    assert "crm_pull: Salesforce at https://127.0.0.1" in err
    assert "INVALID_SESSION_ID" in err and "SALESFORCE_ACCESS_TOKEN" in err
