"""Feedback: the ``salesintel feedback`` command, Slack's interactive
buttons (signed requests), precision per alert type, and the recorded
threshold adaptation that the alert engine then applies."""

import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import duckdb
import pandas as pd
import pytest

from salesintel_assets.cli import main
from salesintel_assets.domain.alerts import feedback
from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets_tests.alert_support import (  # noqa: F401 (fixtures)
    N_DEALS, alert_home, base_home, build_alerts, segment, write_rules,
)
from salesintel_assets_tests.support import read_table, run_selection, sample_resources

SECRET = "slack-signing-secret"


def _alerts_db(home):
    alerts, _ = build_alerts([segment("win_rate_dip", "region=APAC", severity="medium")])
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("CREATE TABLE main.alerts AS SELECT * FROM alerts")
    con.close()
    return alerts.iloc[0]["alert_id"]


def _feedback(home):
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql("SELECT alert_id, verdict, rated_by, source FROM main.alert_feedback ORDER BY rated_by").df()
    finally:
        con.close()


def test_cli_records_feedback_and_a_new_rating_replaces_the_old(home, capsys):
    alert_id = _alerts_db(home)
    assert main(["feedback", alert_id, "noise", "--by", "claire", "--home", str(home)]) == 0
    assert capsys.readouterr().out.strip() == f"alert {alert_id} marked noise by claire"
    assert main(["feedback", alert_id, "helpful", "--by", "claire", "--home", str(home)]) == 0
    assert main(["feedback", alert_id, "noise", "--by", "henrik", "--home", str(home)]) == 0
    assert _feedback(home).to_dict("records") == [
        {"alert_id": alert_id, "verdict": "helpful", "rated_by": "claire", "source": "cli"},
        {"alert_id": alert_id, "verdict": "noise", "rated_by": "henrik", "source": "cli"}]


def test_cli_rejects_unknown_alerts_bad_verdicts_and_a_missing_warehouse(home, tmp_path, capsys):
    _alerts_db(home)
    assert main(["feedback", "nope", "helpful", "--home", str(home)]) == 2
    assert capsys.readouterr().out.strip() == "not recorded: unknown alert 'nope'"
    with pytest.raises(SystemExit):
        main(["feedback", "x", "great", "--home", str(home)])
    assert main(["feedback", "x", "noise", "--home", str(tmp_path / "empty")]) == 2
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    with pytest.raises(feedback.FeedbackError, match="verdict"):
        feedback.record_feedback(con, "x", "meh", "me", "cli")
    con.close()


def _signed(payload: dict, secret: str = SECRET, at: float | None = None) -> tuple[bytes, dict]:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = str(int(at if at is not None else time.time()))
    signature = "v0=" + hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return body, {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}


def _button(alert_id: str, action: str = "salesintel_feedback_noise") -> dict:
    return {"type": "block_actions", "user": {"id": "U123", "username": "marcus"},
            "actions": [{"action_id": action, "block_id": f"salesintel_feedback:{alert_id}", "value": alert_id}]}


def test_slack_button_payload_records_feedback(home):
    alert_id = _alerts_db(home)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    body, headers = _signed(_button(alert_id))
    status, response = feedback.handle_slack_interaction(con, body, headers, SECRET)
    assert (status, response) == (200, {"response_type": "ephemeral", "replace_original": False,
                                        "text": f"Thanks: alert {alert_id} marked as noise."})
    body, headers = _signed(_button(alert_id, "salesintel_feedback_helpful"))
    assert feedback.handle_slack_interaction(con, body, headers, SECRET)[0] == 200
    con.close()
    assert _feedback(home).to_dict("records") == [
        {"alert_id": alert_id, "verdict": "helpful", "rated_by": "slack:marcus", "source": "slack"}]


@pytest.mark.parametrize("tamper, message", [
    (lambda body, headers: (body, {**headers, "X-Slack-Signature": "v0=" + "0" * 64}), "bad Slack signature"),
    (lambda body, headers: (body + b"x", headers), "bad Slack signature"),
    (lambda body, headers: _signed(_button("any"), at=time.time() - 3600), "stale Slack request (possible replay)"),
    (lambda body, headers: (body, {}), "missing or bad X-Slack-Request-Timestamp"),
])
def test_unsigned_or_replayed_slack_requests_are_refused(home, tamper, message):
    alert_id = _alerts_db(home)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    body, headers = tamper(*_signed(_button(alert_id)))
    assert feedback.handle_slack_interaction(con, body, headers, SECRET) == (401, {"error": message})
    con.close()


def test_other_slack_payloads_are_answered_but_not_recorded(home):
    alert_id = _alerts_db(home)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    body, headers = _signed({"type": "block_actions", "actions": [{"action_id": "other", "value": alert_id}]})
    status, response = feedback.handle_slack_interaction(con, body, headers, SECRET)
    assert status == 200 and response["text"] == "Not recorded: not a salesintel feedback button payload"
    con.close()


# --- precision and adaptation -----------------------------------------------------------------
def _rated(types_and_verdicts, at="2026-07-01 10:00"):
    alerts = pd.DataFrame({"alert_id": [f"a{i}" for i in range(len(types_and_verdicts))],
                           "alert_type": [t for t, _ in types_and_verdicts]})
    ratings = pd.DataFrame({"alert_id": alerts["alert_id"], "verdict": [v for _, v in types_and_verdicts],
                            "rated_by": "someone", "source": "cli", "recorded_at": pd.Timestamp(at)})
    return alerts, ratings


def test_precision_below_target_over_enough_ratings_raises_the_severity_floor():
    rules = load_rules()
    verdicts = [("stalled_deal", "helpful")] * 12 + [("stalled_deal", "noise")] * 8 + \
               [("segment_performance_shift", "noise")] * 5
    alerts, ratings = _rated(verdicts)
    precision = feedback.alert_precision(alerts, ratings, None, rules, pd.Timestamp("2026-07-01")).set_index("alert_type")
    assert precision.loc["stalled_deal", ["rated", "helpful", "status"]].tolist() == [20, 12, "below_target"]
    assert precision.loc["stalled_deal", "precision"] == pytest.approx(0.6)
    assert precision.loc["stalled_deal", "precision_low"] < 0.6 < precision.loc["stalled_deal", "precision_high"]
    assert precision.loc["segment_performance_shift", "status"] == "not_enough_ratings"  # 5 < 20
    assert precision.loc["deal_velocity_crisis", "rated"] == 0
    now = pd.Timestamp("2026-07-01 12:00")
    changes = feedback.adapt_thresholds(precision.reset_index(), None, now)
    assert changes[["alert_type", "old_min_severity", "new_min_severity"]].to_dict("records") == [
        {"alert_type": "stalled_deal", "old_min_severity": "low", "new_min_severity": "medium"}]
    assert changes.iloc[0]["reason"] == "precision 60% over 20 rated alerts is below the target 70%"
    assert feedback.severity_floors(changes) == {"stalled_deal": "medium"}
    # the same ratings again: they predate the change, so nothing changes twice
    again = feedback.alert_precision(alerts, ratings, changes, rules, pd.Timestamp("2026-07-01"))
    assert again.set_index("alert_type").loc["stalled_deal", "rated"] == 0
    assert len(feedback.adapt_thresholds(again, changes, now + pd.Timedelta(hours=1))) == 1


def test_ok_precision_changes_nothing():
    alerts, ratings = _rated([("stalled_deal", "helpful")] * 15 + [("stalled_deal", "noise")] * 5)
    precision = feedback.alert_precision(alerts, ratings, None, load_rules(), pd.Timestamp("2026-07-01"))
    assert precision.set_index("alert_type").loc["stalled_deal", "status"] == "ok"
    assert feedback.adapt_thresholds(precision, None, pd.Timestamp("2026-07-01")).empty


def test_feedback_loop_assets_adapt_the_engine(alert_home, tmp_path):
    rules_path = str(write_rules(tmp_path / "rules.yaml", lambda r: r["alerts"]["feedback"].update(min_rated=1)))
    resources = sample_resources(alert_home, n_deals=N_DEALS, rules_path=rules_path)
    run_selection(resources, "key:alerts or key:alert_precision or key:alert_threshold_changes")
    alerts = read_table(alert_home, "alerts")
    quality = alerts[alerts["alert_type"].eq("pipeline_quality_warning")].iloc[0]
    assert main(["feedback", quality["alert_id"], "noise", "--by", "sdr", "--home", str(alert_home)]) == 0

    result = run_selection(resources, "key:alert_precision or key:alert_threshold_changes")
    precision = read_table(alert_home, "alert_precision").set_index("alert_type")
    assert precision.loc["pipeline_quality_warning", ["rated", "status", "min_severity"]].tolist() == [
        1, "below_target", "medium"]
    changes = read_table(alert_home, "alert_threshold_changes")
    assert changes[["alert_type", "old_min_severity", "new_min_severity"]].to_dict("records") == [
        {"alert_type": "pipeline_quality_warning", "old_min_severity": "low", "new_min_severity": "medium"}]
    assert result.success

    # the engine now leaves the low-severity quality finding out; its alert resolves
    run_selection(resources, "key:alerts")
    after = read_table(alert_home, "alerts").set_index("alert_id")
    assert after.loc[quality["alert_id"], "status"] == "resolved"
    # and re-running the loop records no second change
    run_selection(resources, "key:alert_precision or key:alert_threshold_changes")
    assert len(read_table(alert_home, "alert_threshold_changes")) == 1
