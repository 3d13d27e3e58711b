"""Delivery when the outcome is ambiguous, with the real slack_sdk and
smtplib against the loopback stand-ins: Slack took the message but answered
late, reset the connection or answered 500; a 429 storm; a bot without the
history scope; an SMTP connection dropped after the message was queued; the
one-run-per-home lock; a reader holding the warehouse; SMTP security and the
Slack base URL from the run-time contract."""

import threading

import duckdb
import pandas as pd
import pytest

from salesintel_assets.domain.alerts.delivery import deliver
from salesintel_assets.domain.alerts.delivery_plan import message_states
from salesintel_assets.domain.alerts.ledger_store import DeliveryBusy, LedgerStore, exclusive_delivery
from salesintel_assets.domain.common.tables import WarehouseBusy, open_waiting
from salesintel_assets.resources.notifier import EmailNotifier, OutboxNotifier, SlackNotifier, build_channels
from salesintel_assets.resources.warehouse import SalesintelHome
from salesintel_assets_tests import delivery_faults as study
from salesintel_assets_tests.slack_standin import SlackStandIn
from salesintel_assets_tests.smtp_standin import SMTPStandIn

TOKEN = "xoxb-test-secret-token-4242"


def _now():
    return pd.Timestamp.now(tz="UTC").tz_localize(None)


def _deliver(ledger, tmp_path, slack=None, email=None, store=None):
    outbox = OutboxNotifier(home=SalesintelHome(path=str(tmp_path / "home")))
    channels, configured = build_channels(slack or SlackNotifier(), email or EmailNotifier(), outbox)
    store = store or LedgerStore(tmp_path / "home" / "deliveries")
    if store.is_empty():
        store.commit_many(ledger)
    final, report = deliver(store.read(), channels, configured, store.commit, _now)
    return store.read(), report


def _slack(standin, **kw):
    return SlackNotifier(token=TOKEN, base_url=standin.base_url, timeout_seconds=kw.pop("timeout", 1.0), **kw)


def _email(smtp):
    return EmailNotifier(host="127.0.0.1", port=smtp.port, security="none")


@pytest.mark.parametrize("fault", ["accept-500", "accept-reset", ("accept-delay", 2.0)])
def test_ambiguous_slack_send_is_found_in_the_history_and_never_sent_again(fault, tmp_path):
    with SlackStandIn(token=TOKEN) as slack, SMTPStandIn() as smtp:
        slack.script = [fault]
        ledger = study.planned_ledger(3, ["slack", "email"])
        final, report = _deliver(ledger, tmp_path, _slack(slack), _email(smtp))
        assert len(slack.calls("chat.postMessage")) == 3      # no blind re-send by slack_sdk's retry handlers
        assert sorted(slack.delivered_ids()) == sorted(final["delivery_id"])
        assert smtp.received == [] and report.fallbacks == 0   # no email copy of the accepted message
        assert report.reconciled == 1 and report.sent == 3
        assert set(final["status"]) == {"sent"}
        again, report = _deliver(ledger, tmp_path, _slack(slack), _email(smtp))
        assert report.sent == 0 and len(slack.posted) == 3


def test_a_500_before_posting_is_checked_then_falls_back_to_email(tmp_path):
    with SlackStandIn(token=TOKEN) as slack, SMTPStandIn() as smtp:
        slack.script = ["500"]
        final, report = _deliver(study.planned_ledger(2, ["slack", "email"]), tmp_path, _slack(slack), _email(smtp))
        by = final.set_index("channel")
        assert len(slack.posted) == 1 and len(smtp.received) == 1 and report.fallbacks == 1
        assert len(slack.calls("conversations.history")) == 1
        failed = final[final["status"].eq("failed")].iloc[0]
        assert failed["error"].startswith("slack error internal_error (HTTP 500); not delivered")
        assert message_states(final)["messages_sent"] == 2 and by["status"].eq("sent").sum() == 2


def test_without_the_history_scope_an_ambiguous_send_is_unknown_not_resent(tmp_path):
    with SlackStandIn(token=TOKEN) as slack, SMTPStandIn() as smtp:
        slack.script, slack.history = ["accept-reset"], "missing_scope"
        ledger = study.planned_ledger(2, ["slack", "email"])
        final, report = _deliver(ledger, tmp_path, _slack(slack), _email(smtp))
        assert len(slack.posted) == 2 and smtp.received == []
        [unknown] = final[final["status"].eq("unknown")].to_dict("records")
        assert "missing_scope" in unknown["error"] and report.new_unknown == 1
        assert "history scopes" in report.problem()
        again, report = _deliver(ledger, tmp_path, _slack(slack), _email(smtp))   # still not re-sent
        assert len(slack.posted) == 2 and smtp.received == [] and report.unknown == 1 and report.problem() is None
        slack.history = "ok"                                                    # the scope granted: settled
        settled, report = _deliver(ledger, tmp_path, _slack(slack), _email(smtp))
        assert report.reconciled == 1 and set(settled["status"]) == {"sent"} and len(slack.posted) == 2


def test_a_429_storm_waits_as_told_then_falls_back_to_email_once(tmp_path):
    with SlackStandIn(token=TOKEN) as slack, SMTPStandIn() as smtp:
        slack.script = [("429", 0)] * 2 + [("429", 120)]  # then Slack asks for a wait longer than we allow
        final, report = _deliver(study.planned_ledger(3, ["slack", "email"]), tmp_path,
                                 _slack(slack, rate_limit_retries=2), _email(smtp))
        # the first message: 3 calls; the others are not queued behind a 120 s Retry-After
        assert len(slack.calls("chat.postMessage")) == 3 and slack.posted == []
        assert len(smtp.received) == 3 and report.fallbacks == 3
        assert set(final.loc[final["channel"].eq("slack"), "error"]) == {
            "slack error ratelimited (HTTP 429)", "slack error ratelimited (HTTP 429; waiting out Retry-After)"}


def test_an_outage_with_the_history_down_too_falls_back_to_email(tmp_path):
    with SlackStandIn(token=TOKEN) as slack, SMTPStandIn() as smtp:
        slack.outage = True
        final, report = _deliver(study.planned_ledger(2, ["slack", "email"]), tmp_path, _slack(slack), _email(smtp))
        assert len(smtp.received) == 2 and report.sent == 2 and report.problem() is None


def test_every_channel_failing_is_reported_and_counted_as_undelivered(tmp_path):
    with SlackStandIn(token=TOKEN) as slack, SMTPStandIn() as smtp:
        slack.script, smtp.fail = ["500"] * 10, True
        final, report = _deliver(study.planned_ledger(2, ["slack", "email"]), tmp_path, _slack(slack), _email(smtp))
        assert report.undelivered == 2 and report.sent == 0
        assert report.problem().startswith("delivery: 2 message(s) could not be delivered on any channel")
        states = message_states(final)
        assert states["messages_sent"] == 0 and states["messages_failed"] == 2


def test_smtp_dropped_after_queueing_is_resent_once_by_email_with_the_same_message_id(tmp_path):
    with SlackStandIn(token=TOKEN) as slack, SMTPStandIn() as smtp:
        slack.outage, smtp.drop_after_accept = True, 1
        ledger = study.planned_ledger(1, ["slack", "email"])
        final, report = _deliver(ledger, tmp_path, _slack(slack), _email(smtp))
        assert report.undelivered == 1 and len(smtp.received) == 1
        slack.outage = False                                     # Slack is back: still no Slack copy
        again, report = _deliver(ledger, tmp_path, _slack(slack), _email(smtp))
        assert slack.posted == [] and report.sent == 1
        first, second = smtp.message_ids()                       # the stated SMTP limit: same Message-ID
        assert first == second


def test_smtp_security_none_never_starts_tls_and_bad_values_are_one_line(tmp_path):
    with SMTPStandIn() as smtp:
        _deliver(study.planned_ledger(1, ["email"]), tmp_path, email=_email(smtp))
        assert "STARTTLS" not in smtp.verbs and len(smtp.received) == 1
        final, _ = _deliver(study.planned_ledger(1, ["email"]), tmp_path / "b",
                            email=EmailNotifier(host="127.0.0.1", port=smtp.port))  # default: starttls
        # the stand-in offers no STARTTLS: a starttls connection refuses to go on in plain text
        assert final.iloc[0]["error"] == "smtp error SMTPNotSupportedError" and len(smtp.received) == 1
        # implicit TLS speaks TLS first: the plain stand-in cannot answer the handshake, nothing is sent
        final, _ = _deliver(study.planned_ledger(1, ["email"]), tmp_path / "c",
                            email=EmailNotifier(host="127.0.0.1", port=smtp.port, security="ssl", timeout_seconds=2))
        assert final.iloc[0]["status"] == "failed" and final.iloc[0]["error"].startswith("smtp error SSL")
        assert len(smtp.received) == 1
    assert EmailNotifier(host="h", port=465).channel().security == "ssl"
    assert EmailNotifier(host="h", security="ssl").channel().port == 465
    assert EmailNotifier(host="h", security="none").channel().port == 25
    assert EmailNotifier(host="h").channel().port == 587


def test_security_and_base_url_come_from_the_run_time_contract(monkeypatch):
    from salesintel_assets.resources.factory import ConfigurationError, notifier_resources

    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_BASE_URL", "https://slack-proxy.example.com/api")
    monkeypatch.setenv("SALESINTEL_SMTP_HOST", "relay.local")
    monkeypatch.setenv("SALESINTEL_SMTP_SECURITY", "none")
    found = notifier_resources()
    assert found["slack"].base_url.env_var_name == "SLACK_BASE_URL"
    assert found["email"].security.env_var_name == "SALESINTEL_SMTP_SECURITY"
    assert SlackNotifier(token=TOKEN, base_url="https://slack-proxy.example.com/api").get_client().base_url == \
        "https://slack-proxy.example.com/api/"
    assert SlackNotifier(token=TOKEN).get_client().base_url == "https://slack.com/api/"
    monkeypatch.setenv("SALESINTEL_SMTP_SECURITY", "tls")
    with pytest.raises(ConfigurationError, match=r"^SALESINTEL_SMTP_SECURITY='tls' is not one of starttls, ssl, none$"):
        notifier_resources()
    monkeypatch.setenv("SALESINTEL_SMTP_SECURITY", "ssl")
    monkeypatch.setenv("SLACK_BASE_URL", "slack-proxy:8080")
    with pytest.raises(ConfigurationError, match="SLACK_BASE_URL"):
        notifier_resources()


def test_a_base_url_reaches_a_slack_compatible_server(tmp_path):
    with SlackStandIn(token=TOKEN) as slack:
        final, report = _deliver(study.planned_ledger(1, ["slack"]), tmp_path,
                                 SlackNotifier(token=TOKEN, base_url=slack.base_url.rstrip("/")))
        assert report.sent == 1 and len(slack.posted) == 1


def test_one_delivery_run_per_home_with_a_clear_message(tmp_path):
    folder = tmp_path / "deliveries"
    entered = threading.Event()
    release = threading.Event()

    def first_run():
        with exclusive_delivery(folder, 1):
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=first_run)
    holder.start()
    entered.wait(10)
    try:
        told = []
        with pytest.raises(DeliveryBusy, match=r"another delivery run \(pid \d+, started .*\) holds .*delivery\.lock"):
            with exclusive_delivery(folder, 0.2, told.append):
                pass
        assert told and told[0].endswith("waiting up to 0.2 s for it to finish")
    finally:
        release.set()
        holder.join()
    with exclusive_delivery(folder, 0.2):  # free again
        pass


def test_a_reader_holding_the_warehouse_is_waited_for_then_named(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).execute("CREATE TABLE t AS SELECT 1 AS a").close()
    reader = study.hold_warehouse(path, seconds=1.5)
    try:
        con = open_waiting(path, False, 30)   # waits for the reader instead of failing
        con.close()
        assert reader.wait(30) == 0
        reader = study.hold_warehouse(path, seconds=20)
        with pytest.raises(WarehouseBusy, match=r"held by another process \(PID \d+\) for more than 0\.5 s"):
            open_waiting(path, False, 0.5)
    finally:
        reader.kill()
        reader.wait()


def test_fault_study_fast_subset():
    """The kinds that need real processes, once each: kills at random
    points (with and without the history scope), two runs at once, a reader
    holding the warehouse. The full study runs every kind many times."""
    rows = study.run_study(cases_per_kind=1, messages=4, seed=7, kinds=study.FAST_KINDS)
    print("\n" + study.format_table(rows))
    for row in rows:
        assert row["duplicates"] == 0, row
        assert row["lost"] == 0, row
        assert row["warehouse_usable"], row


def test_after_a_timeout_a_message_slack_posts_late_is_still_found(tmp_path):
    with SlackStandIn(token=TOKEN) as slack, SMTPStandIn() as smtp:
        slack.latency = 0.8   # Slack still working when the client gives up at 0.5 s; posts at 0.8 s
        final, report = _deliver(study.planned_ledger(1, ["slack", "email"]), tmp_path,
                                 _slack(slack, timeout=0.5), _email(smtp))
        assert len(slack.posted) == 1 and smtp.received == [] and report.reconciled == 1
        assert len(slack.calls("conversations.history")) == 2   # looked, then looked again a second later
