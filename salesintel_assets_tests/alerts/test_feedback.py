"""Feedback: the feedback inbox (append-only, idempotent, newest event
wins), the ``salesintel feedback`` command (Slack's signed button requests are
tested with the service), precision per alert type, the recorded threshold
adaptation that the alert engine then applies, and the loop's lineage."""

import warnings

import dagster as dg
import duckdb
import pandas as pd
import pytest

from salesintel_assets.cli import main
from salesintel_assets.definitions import build_definitions
from salesintel_assets.domain.alerts import feedback, feedback_inbox
from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets_tests.alert_support import N_DEALS, build_alerts, segment, write_rules
from salesintel_assets_tests.support import read_table, run_selection, sample_resources


def _alerts_db(home):
    alerts, _ = build_alerts([segment("win_rate_dip", "region=APAC", severity="medium")])
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("CREATE TABLE main.alerts AS SELECT * FROM alerts")
    con.close()
    return alerts.iloc[0]["alert_id"]


def _inbox(home):
    return home / "feedback" / "inbox.sqlite3"


def _feedback(home):
    table = feedback_inbox.feedback_table(feedback_inbox.read_events(_inbox(home)))
    return table[["alert_id", "alert_type", "verdict", "actor", "last_source"]].to_dict("records")


# --- the inbox -------------------------------------------------------------------------------
def _event(path, **overrides):
    event = {"alert_id": "a1", "alert_type": "stalled_deal", "action": "noise", "actor": "claire",
             "source": "slack", "occurred_at": pd.Timestamp("2026-07-01 10:00")}
    return feedback_inbox.record_event(path, **{**event, **overrides})


def test_a_repeated_event_is_a_no_op(tmp_path):
    inbox = tmp_path / "inbox.sqlite3"
    assert _event(inbox) is True
    assert _event(inbox) is False  # the same click twice
    assert _event(inbox, event_id="slack-action-1") is True
    assert _event(inbox, event_id="slack-action-1", action="helpful") is False  # same id: ignored
    assert len(feedback_inbox.read_events(inbox)) == 2


def test_event_times_are_read_exactly_with_or_without_fractions_of_a_second(tmp_path):
    inbox = tmp_path / "inbox.sqlite3"
    times = [pd.Timestamp("2026-07-01 10:00"), pd.Timestamp("2026-07-01 10:00:05.250000"),
             pd.Timestamp("2026-07-01 12:30:00+02:00")]
    for number, moment in enumerate(times):
        _event(inbox, event_id=f"e{number}", occurred_at=moment, action="snooze", until=moment + pd.Timedelta("1h"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no guessing the format value by value
        events = feedback_inbox.read_events(inbox)
    expected = [pd.Timestamp("2026-07-01 10:00"), pd.Timestamp("2026-07-01 10:00:05.25"),
                pd.Timestamp("2026-07-01 10:30")]   # naive UTC
    assert events["occurred_at"].tolist() == expected
    assert (events["until"] - events["occurred_at"]).eq(pd.Timedelta("1h")).all()
    assert events["recorded_at"].notna().all()


def test_an_older_event_never_overwrites_a_newer_one(tmp_path):
    inbox = tmp_path / "inbox.sqlite3"
    _event(inbox, action="helpful", occurred_at=pd.Timestamp("2026-07-01 12:00"))
    _event(inbox, action="noise", occurred_at=pd.Timestamp("2026-07-01 09:00"))  # replayed late
    _event(inbox, action="noise", actor="henrik", occurred_at=pd.Timestamp("2026-07-01 08:00"))
    table = feedback_inbox.feedback_table(feedback_inbox.read_events(inbox)).set_index("actor")
    assert table.loc["claire", ["verdict", "rated_at", "events"]].tolist() == [
        "helpful", pd.Timestamp("2026-07-01 12:00"), 2]
    assert table.loc["henrik", "verdict"] == "noise"


def test_acknowledgements_and_snoozes_stop_escalation_only_while_in_force(tmp_path):
    inbox = tmp_path / "inbox.sqlite3"
    _event(inbox, alert_id="rated")
    _event(inbox, alert_id="seen", action="acknowledge")
    _event(inbox, alert_id="snoozed", action="snooze", until=pd.Timestamp("2026-07-03"))
    _event(inbox, alert_id="rated_then_snoozed", action="snooze", until=pd.Timestamp("2026-07-01 11:00"),
           occurred_at=pd.Timestamp("2026-07-01 10:30"))
    table = feedback_inbox.feedback_table(feedback_inbox.read_events(inbox))
    assert table.set_index("alert_id").loc["snoozed", "snoozed_until"] == pd.Timestamp("2026-07-03")
    assert feedback_inbox.acknowledged_alerts(table, pd.Timestamp("2026-07-02")) == {"rated", "seen", "snoozed"}
    assert feedback_inbox.acknowledged_alerts(table, pd.Timestamp("2026-07-04")) == {"rated", "seen"}


@pytest.mark.parametrize("bad, message", [
    ({"action": "love"}, "action must be one of"),
    ({"action": "snooze"}, "a snooze needs 'until'"),
])
def test_bad_events_are_refused(tmp_path, bad, message):
    with pytest.raises(feedback_inbox.FeedbackEventError, match=message):
        _event(tmp_path / "inbox.sqlite3", **bad)
    assert feedback_inbox.read_events(tmp_path / "inbox.sqlite3").empty


# --- the command -----------------------------------------------------------------------------
def test_cli_records_feedback_in_the_inbox_and_a_new_rating_replaces_the_old(home, capsys):
    alert_id = _alerts_db(home)
    assert main(["feedback", alert_id, "noise", "--by", "claire", "--home", str(home)]) == 0
    assert capsys.readouterr().out.strip() == f"alert {alert_id} marked noise by claire"
    assert main(["feedback", alert_id, "helpful", "--by", "claire", "--home", str(home)]) == 0
    assert main(["feedback", alert_id, "noise", "--by", "henrik", "--home", str(home)]) == 0
    assert _feedback(home) == [
        {"alert_id": alert_id, "alert_type": "segment_performance_shift", "verdict": "helpful", "actor": "claire",
         "last_source": "cli"},
        {"alert_id": alert_id, "alert_type": "segment_performance_shift", "verdict": "noise", "actor": "henrik",
         "last_source": "cli"}]
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'alert_feedback'"
                       ).fetchall() == [(0,)]  # the command never writes the warehouse
    con.close()


def test_cli_rejects_unknown_alerts_bad_verdicts_and_a_missing_warehouse(home, tmp_path, capsys):
    _alerts_db(home)
    assert main(["feedback", "nope", "helpful", "--home", str(home)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == "not recorded: unknown alert 'nope' (see the alerts table for ids)"
    assert captured.out == ""
    with pytest.raises(SystemExit):
        main(["feedback", "x", "great", "--home", str(home)])
    assert main(["feedback", "x", "noise", "--home", str(tmp_path / "empty")]) == 2
    assert "no warehouse" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()
    assert not _inbox(home).exists()


def test_cli_says_when_a_run_holds_the_warehouse(home, capsys, monkeypatch):
    from salesintel_assets.resources.warehouse import Warehouse

    _alerts_db(home)

    def held(*args, **kwargs):
        raise dg.Failure("the warehouse is held by another process (PID 42) for more than about 100 s: close "
                         "that program and run again")

    monkeypatch.setattr(Warehouse, "read_table", held)
    assert main(["feedback", "A1", "helpful", "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("not recorded: the warehouse is held by another process (PID 42)")
    assert len(err.strip().splitlines()) == 1 and not _inbox(home).exists()


# --- precision and adaptation -----------------------------------------------------------------
def _rated(types_and_verdicts, at="2026-07-01 10:00"):
    return pd.DataFrame({"alert_id": [f"a{i}" for i in range(len(types_and_verdicts))],
                         "alert_type": [t for t, _ in types_and_verdicts],
                         "verdict": [v for _, v in types_and_verdicts], "actor": "someone",
                         "rated_at": pd.Timestamp(at)})


def test_precision_below_target_over_enough_ratings_raises_the_severity_floor():
    rules = load_rules()
    verdicts = [("stalled_deal", "helpful")] * 12 + [("stalled_deal", "noise")] * 8 + \
               [("segment_performance_shift", "noise")] * 5
    ratings = _rated(verdicts)
    precision = feedback.alert_precision(ratings, rules, pd.Timestamp("2026-07-01"))
    by_type = precision.set_index("alert_type")
    assert by_type.loc["stalled_deal", ["rated", "helpful", "status"]].tolist() == [20, 12, "below_target"]
    assert by_type.loc["stalled_deal", "precision"] == pytest.approx(0.6)
    assert by_type.loc["stalled_deal", "precision_low"] < 0.6 < by_type.loc["stalled_deal", "precision_high"]
    assert by_type.loc["segment_performance_shift", "status"] == "not_enough_ratings"  # 5 < 20
    assert by_type.loc["deal_velocity_crisis", "rated"] == 0
    now = pd.Timestamp("2026-07-01 12:00")
    changes = feedback.adapt_thresholds(precision, ratings, None, now)
    assert changes[["alert_type", "old_min_severity", "new_min_severity"]].to_dict("records") == [
        {"alert_type": "stalled_deal", "old_min_severity": "low", "new_min_severity": "medium"}]
    assert changes.iloc[0]["reason"] == "precision 60% over 20 rated alerts is below the target 70%"
    assert feedback.severity_floors(changes) == {"stalled_deal": "medium"}
    # the same ratings again: they predate the change, so nothing changes twice
    assert len(feedback.adapt_thresholds(precision, ratings, changes, now + pd.Timedelta(hours=1))) == 1
    # newer ratings below target again raise the floor one more step
    newer = pd.concat([ratings, _rated([("stalled_deal", "noise")] * 20, at="2026-07-02 09:00")
                       .assign(alert_id=lambda f: "b" + f["alert_id"])], ignore_index=True)
    again = feedback.adapt_thresholds(precision, newer, changes, now + pd.Timedelta(days=1))
    assert again["new_min_severity"].tolist() == ["medium", "high"]


def test_ok_precision_changes_nothing():
    ratings = _rated([("stalled_deal", "helpful")] * 15 + [("stalled_deal", "noise")] * 5)
    precision = feedback.alert_precision(ratings, load_rules(), pd.Timestamp("2026-07-01"))
    assert precision.set_index("alert_type").loc["stalled_deal", "status"] == "ok"
    assert feedback.adapt_thresholds(precision, ratings, None, pd.Timestamp("2026-07-01")).empty


LOOP = "key:alert_feedback or key:alert_precision or key:alert_threshold_changes"


def test_a_cli_rating_changes_precision_and_the_engine_on_the_next_run(alert_home, tmp_path):
    rules_path = str(write_rules(tmp_path / "rules.yaml", lambda r: r["alerts"]["feedback"].update(min_rated=1)))
    resources = sample_resources(alert_home, n_deals=N_DEALS, rules_path=rules_path)
    run_selection(resources, f"{LOOP} or key:alerts")
    assert read_table(alert_home, "alert_feedback").empty
    assert read_table(alert_home, "alert_precision")["rated"].sum() == 0
    alerts = read_table(alert_home, "alerts")
    quality = alerts[alerts["alert_type"].eq("pipeline_quality_warning")].iloc[0]
    assert main(["feedback", quality["alert_id"], "noise", "--by", "sdr", "--home", str(alert_home)]) == 0

    result = run_selection(resources, LOOP)
    assert result.success
    assert read_table(alert_home, "alert_feedback")[["alert_id", "verdict", "actor"]].to_dict("records") == [
        {"alert_id": quality["alert_id"], "verdict": "noise", "actor": "sdr"}]
    precision = read_table(alert_home, "alert_precision").set_index("alert_type")
    assert precision.loc["pipeline_quality_warning", ["rated", "helpful", "status"]].tolist() == [
        1, 0, "below_target"]
    changes = read_table(alert_home, "alert_threshold_changes")
    assert changes[["alert_type", "old_min_severity", "new_min_severity"]].to_dict("records") == [
        {"alert_type": "pipeline_quality_warning", "old_min_severity": "low", "new_min_severity": "medium"}]

    # the engine now leaves the low-severity quality finding out; its alert resolves
    run_selection(resources, "key:alerts")
    after = read_table(alert_home, "alerts").set_index("alert_id")
    assert after.loc[quality["alert_id"], "status"] == "resolved"
    # and re-running the loop records no second change
    run_selection(resources, LOOP)
    assert len(read_table(alert_home, "alert_threshold_changes")) == 1


def test_the_asset_graph_shows_the_feedback_loop(home):
    graph = build_definitions(sample_resources(home)).resolve_asset_graph()

    def parents(key):
        return {p.to_user_string() for p in graph.get(dg.AssetKey(key)).parent_keys}

    assert parents("alert_feedback") == set()  # from the feedback inbox, outside the warehouse
    assert parents("alert_precision") == {"alert_feedback"}
    assert {"alert_precision", "alert_feedback"} <= parents("alert_threshold_changes")
    assert "alert_threshold_changes" in parents("alerts")
    assert {"alerts", "alert_feedback", "alert_precision"} <= parents("alert_deliveries")
