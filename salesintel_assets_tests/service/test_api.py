"""The REST API per role: each role sees exactly its rows, another rep's deal
is a 404, wrong and expired tokens are 401, deal access is audited."""

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from salesintel_assets.cli import main
from salesintel_assets.service.app import create_app
from salesintel_assets.service.settings import ServiceSettings
from salesintel_assets.service.tokens import TokenStore


@pytest.fixture
def service(served_home):
    settings = ServiceSettings(home=served_home)
    app = create_app(settings)
    store = TokenStore(settings.tokens_path)
    with TestClient(app) as client:
        yield client, store, settings


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


def _team(org, manager):
    reps, _ = org
    return set(reps.loc[reps["manager_id"].eq(manager), "sales_rep_id"])


def test_each_role_sees_exactly_its_deals(service, org):
    client, store, _ = service
    reps, deals = org
    open_deals = deals[deals["is_open"]]
    rep = open_deals["sales_rep_id"].value_counts().index[0]
    manager = reps.loc[reps["sales_rep_id"].eq(rep), "manager_id"].iloc[0]
    expected = {
        "rep": set(open_deals.loc[open_deals["sales_rep_id"].eq(rep), "deal_id"]),
        "manager": set(open_deals.loc[open_deals["sales_rep_id"].isin(_team(org, manager)), "deal_id"]),
        "leader": set(open_deals["deal_id"]),
        "data": set(open_deals["deal_id"]),
    }
    for role, who in [("rep", rep), ("manager", manager), ("leader", None), ("data", None)]:
        token, _ = store.create(role, who)
        page = client.get("/api/v1/deals?limit=1000", headers=_auth(token)).json()
        assert {d["deal_id"] for d in page["deals"]} == expected[role], role
        assert page["total"] == len(expected[role])
    assert expected["rep"] < expected["manager"] < expected["leader"]


def test_a_deal_has_its_risk_and_reasons_and_another_reps_deal_is_a_404(service, org):
    client, store, settings = service
    _, deals = org
    open_deals = deals[deals["is_open"]].sort_values("deal_id")
    mine = open_deals.iloc[0]
    theirs = open_deals[~open_deals["sales_rep_id"].eq(mine["sales_rep_id"])].iloc[0]
    token, who = store.create("rep", mine["sales_rep_id"])
    found = client.get(f"/api/v1/deals/{mine['deal_id']}", headers=_auth(token))
    assert found.status_code == 200
    body = found.json()
    assert body["deal_id"] == mine["deal_id"] and body["sales_rep_id"] == mine["sales_rep_id"]
    assert 0 <= body["win_probability"] <= 1 and body["risk_band"] in ("low", "medium", "high")
    assert body["reasons"] and all(isinstance(r, str) and r for r in body["reasons"])
    other = client.get(f"/api/v1/deals/{theirs['deal_id']}", headers=_auth(token))
    missing = client.get("/api/v1/deals/NO_SUCH_DEAL", headers=_auth(token))
    assert other.status_code == missing.status_code == 404
    assert other.json()["detail"] == f"deal {theirs['deal_id']} not found"  # no hint that it exists

    # every access to deal-level data is audited, the refused one too; the log cannot be rewritten
    audit = create_app(settings).state.audit.read()
    assert audit[["action", "resource", "status", "role", "rep_id"]].values.tolist() == [
        ["api.deal", mine["deal_id"], 200, "rep", mine["sales_rep_id"]],
        ["api.deal", theirs["deal_id"], 404, "rep", mine["sales_rep_id"]],
        ["api.deal", "NO_SUCH_DEAL", 404, "rep", mine["sales_rep_id"]]]
    assert (audit["token_id"] == who.token_id).all()
    with sqlite3.connect(settings.audit_path) as con, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM audit")


def test_wrong_missing_and_expired_tokens_are_401(service):
    client, store, _ = service
    good, _ = store.create("leader")
    expired, _ = store.create("leader", expires_in=timedelta(hours=1),
                              now=datetime.now(timezone.utc) - timedelta(hours=2))
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    assert client.get("/api/v1/alerts", headers=_auth(good)).status_code == 200
    for headers in [{}, _auth(expired), _auth(forged), _auth("si_nope_nope"), _auth("garbage")]:
        answer = client.get("/api/v1/alerts", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"


def test_tokens_are_stored_hashed_and_printed_once(served_home, capsys):
    assert main(["token", "create", "--role", "manager", "--rep", "mgr_1", "--home", str(served_home)]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("si_")
    raw = (served_home / "service" / "tokens.sqlite3").read_bytes()
    assert token.encode() not in raw and token.split("_", 2)[2].encode() not in raw
    assert TokenStore(served_home / "service" / "tokens.sqlite3").verify(token).rep_id == "mgr_1"
    # a rep token without a rep, or for an id that is not in the org, is refused in one sentence
    assert main(["token", "create", "--role", "rep", "--home", str(served_home)]) == 2
    assert main(["token", "create", "--role", "rep", "--rep", "rep_999", "--home", str(served_home)]) == 2
    assert "not created: 'rep_999' is not a sales_rep_id in dim_sales_reps" in capsys.readouterr().err


def test_alerts_segments_forecast_and_data_views_per_role(service, org):
    client, store, _ = service
    reps, _ = org
    leader, _ = store.create("leader")
    data, _ = store.create("data")
    all_alerts = client.get("/api/v1/alerts", headers=_auth(leader)).json()
    assert all_alerts and {a["state"] for a in all_alerts} <= {"open", "updated", "acknowledged", "snoozed"}
    rep = next(a["sales_rep_id"] for a in all_alerts if a["sales_rep_id"])
    rep_token, _ = store.create("rep", rep)
    mine = client.get("/api/v1/alerts", headers=_auth(rep_token)).json()
    assert mine and {a["sales_rep_id"] for a in mine} == {rep}
    assert all(a["owner"] for a in mine)

    rep_segments = client.get("/api/v1/segments?dimension=sales_rep_id", headers=_auth(rep_token)).json()
    assert [s["segment"] for s in rep_segments] == [rep]
    assert len(client.get("/api/v1/segments?dimension=sales_rep_id", headers=_auth(leader)).json()) > 1

    company = client.get("/api/v1/forecast", headers=_auth(leader)).json()
    assert company["basis"] == "horizon" and [r["key"] for r in company["rows"]] == ["30d", "90d", "quarter_end"]
    months = company["months"]   # and by close month: every deal's chance spread over the months
    assert months and [m["key"] for m in months] == sorted(m["key"] for m in months)
    assert all(m["won_deals_p10"] - 0.5 <= m["expected_won_deals"] <= m["won_deals_p90"] + 0.5 for m in months)
    own = client.get("/api/v1/forecast", headers=_auth(rep_token)).json()
    row = own["rows"][0]
    assert own["basis"] == "scope" and row["won_deals_p10"] <= row["expected_won_deals"] <= row["won_deals_p90"]

    assert client.get("/api/v1/freshness", headers=_auth(rep_token)).json()["tables"]
    assert client.get("/api/v1/quality", headers=_auth(leader)).status_code == 403
    assert client.get("/api/v1/quality", headers=_auth(data)).json()["latest_pull"]
    assert client.get("/api/v1/model", headers=_auth(data)).json()["model"]

    spec = client.get("/api/openapi.json").json()
    assert {"/api/v1/deals/{deal_id}", "/api/v1/alerts", "/api/v1/forecast", "/api/v1/segments",
            "/api/v1/freshness", "/api/v1/quality"} <= set(spec["paths"])
    assert "win_probability" in spec["components"]["schemas"]["Deal"]["properties"]
