"""`salesintel run` with SALESINTEL_SOURCE=hubspot against a HubSpot
stand-in: the whole pipeline on HubSpot's data, routing through HubSpot's
owners and teams (no org file), stalled deals judged by HubSpot stage history."""

from salesintel_assets.cli import main
from salesintel_assets_tests.hubspot_standin import TOKEN, HubSpotStandIn
from salesintel_assets_tests.support import light_rules, read_table

N_DEALS = 800



def test_salesintel_run_on_hubspot(monkeypatch, home, tmp_path, capsys):
    with HubSpotStandIn(n_deals=N_DEALS) as standin:
        for name, value in {"SALESINTEL_SOURCE": "hubspot", "HUBSPOT_ACCESS_TOKEN": TOKEN,
                            "SALESINTEL_RULES": str(light_rules(tmp_path)),
                            "HUBSPOT_BASE_URL": standin.base_url, "SALESINTEL_AS_OF": "2026-06-30",
                            "SALESINTEL_HOME": str(home), "SALESINTEL_CSV": "", "SALESINTEL_ORG": ""}.items():
            monkeypatch.setenv(name, value)
        code = main(["run"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "hubspot:" in read_table(home, "raw_deals")["_source"].iloc[0]
    reps = read_table(home, "dim_sales_reps")
    assert reps.loc[reps["deals"] > 0, "has_org"].all()
    assert set(reps.loc[reps["deals"] > 0, "manager_name"]) <= {"Claire Donovan", "Henrik Sorensen", "Yuki Tanaka",
                                                               "Vikram Iyer"}
    stalled = read_table(home, "anomalies").query("anomaly_type == 'stalled_deal'")
    assert stalled["root_cause"].str.startswith("days in ").any()        # judged by time in stage
    alerts = read_table(home, "alerts")
    deal_alerts = alerts[alerts["alert_type"].isin(["stalled_deal", "deal_velocity_crisis"])]
    assert len(deal_alerts)
    owners = set(reps["sales_rep_id"])
    manager_of = reps.set_index("sales_rep_id")["manager_id"]
    for alert in deal_alerts.itertuples():
        recipients = set(alert.recipients.split(","))
        assert recipients <= owners                                   # people from HubSpot, no fallback
        if alert.alert_type == "deal_velocity_crisis":
            assert manager_of[alert.sales_rep_id] in recipients


def test_salesintel_run_names_a_refused_token_and_fails(monkeypatch, home, capsys):
    with HubSpotStandIn(n_deals=100) as standin:
        for name, value in {"SALESINTEL_SOURCE": "hubspot", "HUBSPOT_ACCESS_TOKEN": "pat-revoked",
                            "HUBSPOT_BASE_URL": standin.base_url, "SALESINTEL_AS_OF": "2026-06-30",
                            "SALESINTEL_HOME": str(home), "SALESINTEL_CSV": "", "SALESINTEL_ORG": ""}.items():
            monkeypatch.setenv(name, value)
        code = main(["run"])
    err = capsys.readouterr().err
    assert code == 1
    assert "crm_pull: HubSpot rejected the access token" in err and "HUBSPOT_ACCESS_TOKEN" in err
