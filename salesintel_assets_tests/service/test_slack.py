"""Signed Slack requests through Bolt and its FastAPI adapter: valid clicks
are recorded once and update the message; forged, stale and replayed
requests change nothing; an empty secret refuses to start."""

import time

import pytest
from fastapi.testclient import TestClient

from salesintel_assets.cli import main
from salesintel_assets.domain.alerts.feedback_inbox import read_events
from salesintel_assets.service.settings import inbox_file as inbox_path
from salesintel_assets.service import queries
from salesintel_assets.service.app import create_app
from salesintel_assets.service.settings import ServiceConfigError, ServiceSettings
from salesintel_assets.service.tokens import TokenStore
from salesintel_assets_tests.service.conftest import N_DEALS
from salesintel_assets_tests.service.service_support import (
    SECRET, ResponseUrlStandIn, block_actions, signed)
from salesintel_assets_tests.support import read_table, run_selection, sample_resources


@pytest.fixture
def slack(served_home):
    with ResponseUrlStandIn() as standin, TestClient(create_app(
            ServiceSettings(home=served_home, signing_secret=SECRET))) as client:
        alert = queries.ServingData(served_home).table("alerts").iloc[0]
        yield client, standin, served_home, alert


def _post(client, payload, **sign):
    body, headers = signed(payload, **sign)
    return client.post("/slack/events", content=body, headers=headers)


def test_a_click_is_recorded_once_and_the_message_says_who_did_what(slack):
    client, standin, home, alert = slack
    now = time.time()
    payload = block_actions(alert["alert_id"], "salesintel_acknowledge", "U100", now, standin.url)
    answer = _post(client, payload)
    assert answer.status_code == 200  # Bolt acked
    update = standin.wait_for(1)[0]
    assert update["replace_original"] is True
    status = update["blocks"][-1]
    assert status["block_id"] == "salesintel_status"
    assert status["elements"][0]["text"].startswith("<@U100> ✅ acknowledged it (escalation stopped)")
    assert update["blocks"][0]["text"]["text"] == "*Deal stalled*"  # the original message is kept

    # Slack retries the same delivery (or the user double-clicks the same event): a no-op
    assert _post(client, payload).status_code == 200
    events = read_events(inbox_path(home))
    assert events[["alert_id", "alert_type", "action", "actor", "source"]].values.tolist() == [
        [alert["alert_id"], alert["alert_type"], "acknowledge", "slack:U100", "slack"]]
    state = queries.alert_states(home, [alert["alert_id"]])
    assert state.iloc[0]["acknowledged_by"] == "slack:U100"


def test_snooze_records_the_chosen_end_time(slack):
    client, standin, home, alert = slack
    clicked = time.time()
    assert _post(client, block_actions(alert["alert_id"], "salesintel_snooze", "U7", clicked, standin.url,
                                       snooze_hours=24)).status_code == 200
    update = standin.wait_for(1)[0]
    assert "💤 snoozed it until" in update["blocks"][-1]["elements"][0]["text"]
    event = read_events(inbox_path(home)).iloc[0]
    assert event["action"] == "snooze"
    assert (event["until"] - event["occurred_at"]).total_seconds() == pytest.approx(24 * 3600, abs=1)
    assert queries.alert_states(home, [alert["alert_id"]]).iloc[0]["snoozed_by"] == "slack:U7"


def test_forged_and_stale_requests_are_refused_and_change_nothing(slack):
    client, standin, home, alert = slack
    payload = block_actions(alert["alert_id"], "salesintel_feedback_noise", "U1", time.time(), standin.url)
    assert _post(client, payload, secret="not-the-secret").status_code == 401
    assert _post(client, payload, timestamp=int(time.time()) - 6 * 60).status_code == 401  # outside Bolt's 5 min
    body, headers = signed(payload)
    signature = headers["X-Slack-Signature"]   # one hex digit changed (setting two to "00" left one in 256 intact)
    headers["X-Slack-Signature"] = signature[:-1] + ("1" if signature[-1] == "0" else "0")
    assert client.post("/slack/events", content=body, headers=headers).status_code == 401
    assert read_events(inbox_path(home)).empty
    assert standin.received == []


def test_an_older_click_replayed_within_the_window_does_not_overwrite_a_newer_one(slack):
    client, standin, home, alert = slack
    first = time.time() - 60
    older = block_actions(alert["alert_id"], "salesintel_feedback_helpful", "U5", first, standin.url)
    newer = block_actions(alert["alert_id"], "salesintel_feedback_noise", "U5", first + 30, standin.url)
    old_body, old_headers = signed(older, timestamp=int(first))
    assert client.post("/slack/events", content=old_body, headers=old_headers).status_code == 200
    assert _post(client, newer).status_code == 200
    standin.wait_for(2)
    # an attacker (or a proxy) replays the first signed request, unchanged, still inside the window
    assert client.post("/slack/events", content=old_body, headers=old_headers).status_code == 200
    events = read_events(inbox_path(home))
    assert events["action"].tolist() == ["helpful", "noise"]
    state = queries.alert_states(home, [alert["alert_id"]]).iloc[0]
    assert (state["helpful"], state["noise"]) == (0, 1)


def test_an_empty_secret_refuses_to_start_and_no_secret_accepts_nothing(served_home, monkeypatch, capsys):
    with pytest.raises(ServiceConfigError, match="SLACK_SIGNING_SECRET is set but empty"):
        ServiceSettings(home=served_home, signing_secret="  ")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "")
    assert main(["serve", "--home", str(served_home)]) == 2
    assert "SLACK_SIGNING_SECRET is set but empty" in capsys.readouterr().err

    with TestClient(create_app(ServiceSettings(home=served_home, signing_secret=None))) as client:
        body, headers = signed(block_actions("x", "salesintel_acknowledge", "U1", time.time(), None))
        answer = client.post("/slack/events", content=body, headers=headers)
    assert answer.status_code == 503
    assert "set SLACK_SIGNING_SECRET" in answer.json()["detail"]
    assert read_events(inbox_path(served_home)).empty


def test_a_click_on_an_unknown_alert_is_answered_and_not_recorded(slack):
    client, standin, home, _ = slack
    assert _post(client, block_actions("no-such-alert", "salesintel_feedback_helpful", "U2", time.time(),
                                       standin.url)).status_code == 200
    reply = standin.wait_for(1)[0]
    assert reply["response_type"] == "ephemeral" and reply["text"].startswith("Not recorded: alert no-such-alert")
    assert read_events(inbox_path(home)).empty


def test_clicks_change_the_alerts_state_and_the_next_runs_precision(slack):
    client, standin, home, alert = slack
    now = time.time()
    for action, user, at in [("salesintel_feedback_noise", "U9", now - 5), ("salesintel_acknowledge", "U8", now)]:
        assert _post(client, block_actions(alert["alert_id"], action, user, at, standin.url)).status_code == 200
    standin.wait_for(2)
    token, _ = TokenStore(home / "service" / "tokens.sqlite3").create("leader")
    states = {a["alert_id"]: a for a in client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {token}"}).json()}
    assert states[alert["alert_id"]]["state"] == "acknowledged"
    assert (states[alert["alert_id"]]["acknowledged_by"], states[alert["alert_id"]]["noise"]) == ("slack:U8", 1)

    run_selection(sample_resources(home, n_deals=N_DEALS), "key:alert_feedback or key:alert_precision")
    answers = read_table(home, "alert_feedback").set_index("actor")
    assert answers.loc["slack:U9", ["alert_id", "verdict"]].tolist() == [alert["alert_id"], "noise"]
    assert answers.loc["slack:U8", "last_action"] == "acknowledge"
    precision = read_table(home, "alert_precision").set_index("alert_type").loc[alert["alert_type"]]
    assert (precision["rated"], precision["noise"]) == (1, 1)
