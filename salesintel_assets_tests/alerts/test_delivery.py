"""Delivery through the real slack_sdk client against a local Slack stand-in
and a local SMTP server: exact messages, 429 Retry-After, fallback to email,
the local outbox, and exactly-once across a crash and a re-run."""

import json
import logging
import tempfile
import time

import dagster as dg
import pandas as pd

from salesintel_assets.domain.alerts import delivery_plan
from salesintel_assets.domain.alerts.delivery import deliver
from salesintel_assets.domain.alerts.routing import Router
from salesintel_assets.domain.common.rules import load_rules
from salesintel_assets.resources.notifier import EmailNotifier, OutboxNotifier, SlackNotifier, build_channels
from salesintel_assets.resources.warehouse import SalesintelHome
from salesintel_assets_tests.alert_support import AS_OF, N_DEALS, build_alerts, reps_frame, stalled, write_rules
from salesintel_assets_tests.slack_standin import SlackStandIn
from salesintel_assets_tests.smtp_standin import SMTPStandIn
from salesintel_assets_tests.support import read_ledger, read_table, run_selection, sample_resources

RULES = load_rules()
TOKEN = "xoxb-test-secret-token-4242"
SMTP_PASSWORD = "smtp-secret-password-4242"


# --- domain-level delivery against the stand-ins ---------------------------------------------
def _ledger(channels: list[str]) -> pd.DataFrame:
    table, _ = build_alerts([stalled("D00042", "rep_2", 84_000.0)])
    return delivery_plan.plan_messages(table, None, set(), Router(reps_frame(), RULES.alerts), RULES, AS_OF,
                                     pd.Timestamp("2026-06-30 09:00"), [], channels)


def _deliver(ledger, slack=None, email=None, outbox_home=None):
    slack = slack or SlackNotifier()
    email = email or EmailNotifier()
    # The outbox resource makes its folder; tests that don't use it get a throwaway one.
    outbox_home = outbox_home or tempfile.mkdtemp(prefix="salesintel-outbox-")
    outbox = OutboxNotifier(home=SalesintelHome(path=str(outbox_home)))
    channels, configured = build_channels(slack, email, outbox)
    commits = []
    final, report = deliver(ledger, channels, configured, lambda row: commits.append(dict(row)),
                            lambda: pd.Timestamp.now(tz="UTC").tz_localize(None))
    return final, report, commits


def test_slack_message_is_exactly_the_alert_in_the_persons_dm():
    with SlackStandIn(token=TOKEN) as slack:
        ledger = _ledger(["slack"])
        final, report, _ = _deliver(ledger, slack=SlackNotifier(token=TOKEN, base_url=slack.base_url))
        assert report.sent == 2 and report.failed == 0
        rep_dm = SlackStandIn.dm_channel("marcus.okafor@example.com")
        [message] = slack.messages_to(rep_dm)
        row = final[final["recipient_id"].eq("rep_2")].iloc[0]
        assert message["text"] == row["body_text"]
        assert message["blocks"] == json.loads(row["blocks_json"])
        assert message["metadata"] == {"event_type": "salesintel_message",
                                       "event_payload": {"delivery_id": row["delivery_id"]}}
        assert row["status"] == "sent" and row["target"] == rep_dm and row["response_id"] == message["ts"]
        assert [r.params["email"] for r in slack.calls("users.lookupByEmail")] == [
            "marcus.okafor@example.com", "henrik.sorensen@example.com"]


def test_rate_limit_retry_after_is_honoured():
    with SlackStandIn(token=TOKEN) as slack:
        slack.script = [("429", 1)]
        started = time.monotonic()
        final, report, _ = _deliver(_ledger(["slack"]).head(1), slack=SlackNotifier(token=TOKEN, base_url=slack.base_url))
        posts = slack.calls("chat.postMessage")
        assert len(posts) == 2 and posts[1].at - posts[0].at >= 1.0  # waited Retry-After before retrying
        assert time.monotonic() - started >= 1.0
        assert len(slack.posted) == 1 and report.sent == 1 and report.fallbacks == 0
        assert final.iloc[0]["status"] == "sent" and final.iloc[0]["attempts"] == 1


def test_persistent_rate_limit_falls_back_to_email():
    with SlackStandIn(token=TOKEN) as slack, SMTPStandIn() as smtp:
        slack.script = [("429", 0)] * 3
        final, report, _ = _deliver(_ledger(["slack", "email"]).head(1),
                                    slack=SlackNotifier(token=TOKEN, base_url=slack.base_url, rate_limit_retries=2),
                                    email=EmailNotifier(host="127.0.0.1", port=smtp.port, security="none"))
        assert len(slack.calls("chat.postMessage")) == 3 and slack.posted == []
        assert final.set_index("channel")["error"]["slack"] == "slack error ratelimited (HTTP 429)"
        assert len(smtp.received) == 1 and report.fallbacks == 1


def test_slack_outage_falls_back_to_email_with_the_exact_message():
    with SlackStandIn(token=TOKEN) as slack, SMTPStandIn() as smtp:
        slack.outage = True
        ledger = _ledger(["slack", "email"])
        final, report, commits = _deliver(
            ledger, slack=SlackNotifier(token=TOKEN, base_url=slack.base_url),
            email=EmailNotifier(host="127.0.0.1", port=smtp.port, security="none", sender="alerts@example.com"))
        assert report.sent == 2 and report.fallbacks == 2 and report.undelivered == 0
        by = final.set_index(["recipient_id", "channel"])
        assert by.loc[("rep_2", "slack"), "status"] == "failed"
        assert by.loc[("rep_2", "slack"), "error"] == "slack error internal_error (HTTP 500)"
        assert by.loc[("rep_2", "email"), "status"] == "sent"
        received = {r.rcpt_tos[0]: r for r in smtp.received}
        mail = received["marcus.okafor@example.com"]
        row = by.loc[("rep_2", "email")]
        assert mail.mail_from == "alerts@example.com"
        assert mail.message["Subject"] == "[P1] Deal Velocity Crisis: D00042 stalled 52 days in Qualified ($84,000)"
        assert mail.message.get_content().rstrip("\n") == row["body_text"]
        assert mail.message["Message-ID"] == row["response_id"] == f"<{row['delivery_id']}@salesintel>"
        # each state change was committed as it happened: pending attempt, failure, fallback row, attempt, sent
        rep_commits = [(c["channel"], c["status"]) for c in commits if c["recipient_id"] == "rep_2"]
        assert rep_commits == [("slack", "failed"), ("email", "pending"), ("email", "pending"), ("email", "sent")]


def test_unknown_slack_user_falls_back_to_email():
    with SlackStandIn(token=TOKEN, unknown_emails=("marcus.okafor@example.com",)) as slack, SMTPStandIn() as smtp:
        final, _, _ = _deliver(_ledger(["slack", "email"]),
                               slack=SlackNotifier(token=TOKEN, base_url=slack.base_url),
                               email=EmailNotifier(host="127.0.0.1", port=smtp.port, security="none"))
        by = final.set_index(["recipient_id", "channel"])
        assert by.loc[("rep_2", "slack"), "error"] == "slack error users_not_found (HTTP 200)"
        assert by.loc[("rep_2", "email"), "status"] == "sent"
        assert by.loc[("mgr_2", "slack"), "status"] == "sent"
        assert [r.rcpt_tos for r in smtp.received] == [["marcus.okafor@example.com"]]


def test_when_every_channel_fails_nothing_is_lost_and_the_retry_sends_once():
    with SlackStandIn(token=TOKEN) as slack, SMTPStandIn() as smtp:
        slack.outage, smtp.fail = True, True
        slack_res = SlackNotifier(token=TOKEN, base_url=slack.base_url)
        email_res = EmailNotifier(host="127.0.0.1", port=smtp.port, security="none")
        first, report, _ = _deliver(_ledger(["slack", "email"]), slack=slack_res, email=email_res)
        assert report.undelivered == 2 and set(first["status"]) == {"failed"}
        assert set(first.loc[first["channel"].eq("email"), "error"]) == {"smtp error SMTPSenderRefused 451"}
        slack.outage, smtp.fail = False, False
        second, report, _ = _deliver(first, slack=slack_res, email=email_res)
        assert report.sent == 2 and len(slack.posted) == 2 and smtp.received == []
        third, report, _ = _deliver(second, slack=slack_res, email=email_res)
        assert report.sent == 0 and len(slack.posted) == 2


def test_smtp_login_uses_the_configured_credentials():
    with SMTPStandIn(user="alerts", password=SMTP_PASSWORD) as smtp:
        final, report, _ = _deliver(_ledger(["email"]).head(1), email=EmailNotifier(
            host="127.0.0.1", port=smtp.port, security="none", user="alerts", password=SMTP_PASSWORD))
        assert report.sent == 1 and smtp.auth_attempts == ["alerts"]
        wrong, report, _ = _deliver(_ledger(["email"]).head(1), email=EmailNotifier(
            host="127.0.0.1", port=smtp.port, security="none", user="alerts", password="wrong"))
        assert wrong.iloc[0]["error"] == "smtp error SMTPAuthenticationError 535"


# --- the assets on a real warehouse -----------------------------------------------------------------
def _resources(home, rules_path=None, **extra):
    return sample_resources(home, n_deals=N_DEALS, rules_path=rules_path, **extra)


def _throttle_rules(tmp_path):
    return str(write_rules(tmp_path / "rules.yaml", lambda r: r["alerts"]["throttle"].update(max_p1_per_rep=2)))


class CrashingSlack(SlackNotifier):
    """Slack that 'crashes the process' right after the service accepted the
    n-th message, before the ledger could record it."""

    crash_after: int = 3

    def channel(self):
        inner, limit = super().channel(), self.crash_after

        class Crashing:
            name = "slack"
            resend_when_unconfirmed = False
            accepted = 0

            def prepare(self, row):
                return inner.prepare(row)

            def find_sent(self, row):
                return inner.find_sent(row)

            def send(self, row):
                response = inner.send(row)
                Crashing.accepted += 1
                if Crashing.accepted == limit:
                    raise RuntimeError("simulated crash after the service accepted the message")
                return response

        return Crashing()


def test_alerts_and_deliveries_on_the_warehouse_via_slack(alert_home, tmp_path):
    rules_path = _throttle_rules(tmp_path)
    with SlackStandIn(token=TOKEN) as slack:
        instance = dg.DagsterInstance.ephemeral()
        resources = _resources(alert_home, rules_path, slack=SlackNotifier(token=TOKEN, base_url=slack.base_url))
        result = run_selection(resources, "key:alerts or key:alert_deliveries", instance=instance)
        alerts = read_table(alert_home, "alerts")
        ledger = read_table(alert_home, "alert_deliveries")
        assert alerts["delivery"].value_counts().to_dict() == {"immediate": 3, "digest": 2}
        assert set(ledger["status"]) == {"sent"} and set(ledger["channel"]) == {"slack"}
        assert len(slack.posted) == len(ledger)
        # every immediate alert reached each recipient, exactly as rendered
        for alert in alerts[alerts["delivery"].eq("immediate")].to_dict("records"):
            rows = ledger[ledger["message_id"].eq(f"{alert['alert_id']}/alert")]
            assert sorted(rows["recipient_id"]) == sorted(alert["recipients"].split(","))
            for row in rows.to_dict("records"):
                [posted] = [m for m in slack.posted if m["metadata"]["event_payload"]["delivery_id"] == row["delivery_id"]]
                assert posted["text"] == alert["body_text"] and posted["channel"] == row["target"]
        digests = ledger[ledger["message_kind"].eq("digest")]
        assert set(digests["recipient_id"]) >= {"sdr-manager"}
        # a re-run sends nothing again
        run_selection(resources, "key:alerts or key:alert_deliveries", instance=instance)
        assert len(slack.posted) == len(ledger)
        assert len(read_table(alert_home, "alert_deliveries")) == len(ledger)
        # the token never reaches the event log (metadata, log lines)
        for entry in instance.all_logs(result.run_id):
            assert TOKEN not in str(entry)


def test_crash_mid_delivery_then_rerun_sends_nothing_twice_and_loses_nothing(alert_home, tmp_path):
    rules_path = _throttle_rules(tmp_path)
    with SlackStandIn(token=TOKEN) as slack:
        crashing = CrashingSlack(token=TOKEN, base_url=slack.base_url, crash_after=3)
        result = run_selection(_resources(alert_home, rules_path, slack=crashing), "key:alerts or key:alert_deliveries",
                               raise_on_error=False)
        assert not result.success
        ledger = read_ledger(alert_home)  # the live ledger (the warehouse mirror is written at the end)
        assert len(slack.posted) == 3
        assert (ledger["status"] == "sent").sum() == 2           # committed right after acceptance
        in_flight = ledger[ledger["status"].eq("pending") & ledger["attempts"].eq(1)]
        assert len(in_flight) == 1                               # accepted by Slack, not yet recorded
        untouched = ledger[ledger["attempts"].eq(0)]
        assert len(untouched) == len(ledger) - 3

        rerun = run_selection(_resources(alert_home, rules_path,
                                         slack=SlackNotifier(token=TOKEN, base_url=slack.base_url)),
                              "alert_deliveries")
        final = read_table(alert_home, "alert_deliveries")
        assert set(final["status"]) == {"sent"} and len(final) == len(ledger)
        delivered = [m["metadata"]["event_payload"]["delivery_id"] for m in slack.posted]
        assert sorted(delivered) == sorted(final["delivery_id"])  # each message exactly once
        [mat] = rerun.asset_materializations_for_node("alert_deliveries")
        assert mat.metadata["reconciled"].value == 1 and mat.metadata["sent"].value == len(untouched)


def test_without_a_configured_channel_messages_land_in_the_local_outbox(alert_home, tmp_path):
    resources = _resources(alert_home, _throttle_rules(tmp_path))
    run_selection(resources, "key:alerts or key:alert_deliveries")
    ledger = read_table(alert_home, "alert_deliveries")
    outbox = resources["outbox"].read()
    assert set(ledger["channel"]) == {"outbox"} and set(ledger["status"]) == {"sent"}
    assert sorted(r["delivery_id"] for r in outbox) == sorted(ledger["delivery_id"])
    alerts = read_table(alert_home, "alerts").set_index("alert_id")
    for record in (r for r in outbox if r["kind"] == "alert"):
        assert record["text"] == alerts.loc[record["alert_ids"], "body_text"]
    run_selection(resources, "key:alert_deliveries")
    assert len(resources["outbox"].read()) == len(outbox)


def test_secrets_stay_out_of_logs_and_metadata(alert_home, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with SlackStandIn(token=TOKEN, unknown_emails=("sdr-manager@example.com",)) as slack, \
            SMTPStandIn(user="alerts", password=SMTP_PASSWORD) as smtp:  # the SDR manager goes by email
        instance = dg.DagsterInstance.ephemeral()
        resources = _resources(alert_home, _throttle_rules(tmp_path),
                               slack=SlackNotifier(token=TOKEN, base_url=slack.base_url),
                               email=EmailNotifier(host="127.0.0.1", port=smtp.port, security="none",
                                                   user="alerts", password=SMTP_PASSWORD))
        result = run_selection(resources, "key:alerts or key:alert_deliveries", instance=instance)
        assert len(smtp.received) == 1 and len(slack.posted) > 0
    ledger = read_table(alert_home, "alert_deliveries")
    for secret in (TOKEN, SMTP_PASSWORD):
        assert secret not in caplog.text
        assert not ledger.astype(str).apply(lambda c: c.str.contains(secret)).any().any()
        for entry in instance.all_logs(result.run_id):
            assert secret not in str(entry)


def test_channels_come_from_the_environment_only_through_envvar(monkeypatch, tmp_path):
    from salesintel_assets.resources.factory import environment_resources, notifier_resources

    for name in ("SLACK_BOT_TOKEN", "SALESINTEL_SMTP_HOST", "SALESINTEL_SMTP_PORT", "SALESINTEL_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SALESINTEL_HOME", str(tmp_path))
    assert notifier_resources() == {}
    defaults = environment_resources()
    assert not defaults["slack"].configured() and not defaults["email"].configured()  # -> the local outbox
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SALESINTEL_SMTP_HOST", "mail.example.com")
    monkeypatch.setenv("SALESINTEL_SMTP_PORT", "2525")
    monkeypatch.setenv("SALESINTEL_SMTP_PASSWORD", SMTP_PASSWORD)
    found = notifier_resources()
    assert isinstance(found["slack"].token, dg.EnvVar) and found["slack"].token.env_var_name == "SLACK_BOT_TOKEN"
    assert isinstance(found["email"].password, dg.EnvVar) and found["email"].port.env_var_name == "SALESINTEL_SMTP_PORT"
    assert TOKEN not in repr(environment_resources()) and SMTP_PASSWORD not in repr(found)


def test_when_every_channel_fails_the_run_fails_and_the_summary_counts_only_delivered(alert_home, tmp_path):
    from salesintel_assets.resources.warehouse import Warehouse
    from salesintel_assets.summary import run_summary

    with SlackStandIn(token=TOKEN) as slack, SMTPStandIn() as smtp:
        slack.script, smtp.fail = ["500"] * 50, True   # checked in the history, not there, email refused
        resources = _resources(alert_home, _throttle_rules(tmp_path),
                               slack=SlackNotifier(token=TOKEN, base_url=slack.base_url),
                               email=EmailNotifier(host="127.0.0.1", port=smtp.port, security="none"))
        result = run_selection(resources, "key:alerts or key:alert_deliveries", raise_on_error=False)
        assert not result.success
        [failure] = [e for e in result.all_events if e.is_step_failure]
        assert "could not be delivered on any channel" in failure.event_specific_data.error.message
        ledger = read_table(alert_home, "alert_deliveries")      # stored before the step failed
        assert not ledger["status"].eq("sent").any() and slack.posted == [] and smtp.received == []
        messages = ledger[["message_id", "recipient_id"]].drop_duplicates()
        summary = run_summary(Warehouse(home=SalesintelHome(path=str(alert_home))))
        assert f"0 of {len(messages)} messages delivered; {len(messages)} failed on every channel" in summary
