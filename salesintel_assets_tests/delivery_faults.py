"""Delivery fault study: many cases of each kind of delivery fault, each run
by real delivery processes against the Slack and SMTP stand-ins, then a
recovery run (what the next scheduled run does). Prints a table: kind,
messages expected, delivered, duplicates, lost, unknown, exit codes and
whether the warehouse is usable after.

    python -m salesintel_assets_tests.delivery_faults [--cases 5] [--messages 6] [--seed 1]

A delivery process here is the production sequence without Dagster around
it: the home's delivery lock, the SQLite ledger, ``run_delivery`` with the
real Slack (slack_sdk), email (smtplib) and outbox channels, then the
mirror into ``warehouse.duckdb`` - so a process starts in about a second and
can be killed at any point of it.

Columns: ``delivered`` messages that reached someone on some channel;
``duplicates`` extra copies beyond one per message (Slack posts + emails
with distinct Message-IDs); ``email_same_id`` emails sent again with the
same Message-ID after an SMTP connection was cut after queueing (the one
re-send SMTP leaves possible; de-duplicating clients show one copy);
``lost`` messages neither delivered nor flagged; ``unknown`` messages
flagged 'unknown' (may have reached Slack, not re-sent) and, of those, how
many did not arrive.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pandas as pd

from salesintel_assets.domain.alerts.delivery_plan import LEDGER_COLUMNS, channel_chain, delivery_id_for
from salesintel_assets.domain.common.storage import DATABASE_FILE, DELIVERIES_DIR

TOKEN = "xoxb-fault-study-token"
TEAM_CHANNEL = "C0SALES"


def planned_ledger(n: int, configured: list[str]) -> pd.DataFrame:
    """``n`` pending messages to a team channel (with an email for the fallback)."""
    rows = []
    for i in range(n):
        message_id, recipient = f"alert-{i:03d}/alert", f"rep_{i % 3}"
        contact = {"email": f"{recipient}@example.com", "slack_channel": TEAM_CHANNEL}
        channel = channel_chain(contact, configured)[0]
        rows.append({
            "delivery_id": delivery_id_for(message_id, recipient, channel), "message_id": message_id,
            "message_kind": "alert", "alert_id": f"alert-{i:03d}", "alert_ids": f"alert-{i:03d}",
            "recipient_id": recipient, "recipient_name": recipient.replace("_", " ").title(), "recipient_role": "rep",
            "recipient_email": contact["email"], "recipient_slack": TEAM_CHANNEL, "channel": channel,
            "target": None, "status": "pending", "attempts": 0, "error": None,
            "subject": f"[P1] message {i}", "body_text": f"Deal {i} stalled", "blocks_json": "[]",
            "created_at": pd.Timestamp("2026-06-30 09:00"), "last_attempt_at": pd.NaT, "sent_at": pd.NaT,
            "response_id": None, "as_of_date": pd.Timestamp("2026-06-30"),
        })
    return pd.DataFrame(rows, columns=LEDGER_COLUMNS)


# --- one delivery process ------------------------------------------------------------------------
def drive(argv: list[str]) -> int:
    from salesintel_assets.domain.alerts.delivery import run_delivery
    from salesintel_assets.domain.alerts.ledger_store import DeliveryBusy, LedgerStore, exclusive_delivery
    from salesintel_assets.domain.common.tables import WarehouseBusy, open_waiting
    from salesintel_assets.resources.channels import EmailChannel, OutboxChannel, SlackChannel, slack_clients

    parser = argparse.ArgumentParser()
    for name, kind in [("--home", str), ("--slack", str), ("--smtp", int), ("--messages", int),
                       ("--timeout", float), ("--lock-wait", float), ("--warehouse-wait", float)]:
        parser.add_argument(name, type=kind)
    args = parser.parse_args(argv)
    home = Path(args.home)
    channels, configured = {"outbox": OutboxChannel(str(home / "outbox.jsonl"))}, []
    if args.slack:
        channels["slack"] = SlackChannel(*slack_clients(TOKEN, args.slack, args.timeout, 2, 5), TOKEN)
        configured.append("slack")
    if args.smtp:
        channels["email"] = EmailChannel("127.0.0.1", args.smtp, "none", None, None, "alerts@example.com",
                                         args.timeout)
        configured.append("email")
    wanted = planned_ledger(args.messages, configured)
    now = lambda: pd.Timestamp.now(tz="UTC").tz_localize(None)  # noqa: E731
    try:
        with exclusive_delivery(home / DELIVERIES_DIR, args.lock_wait, lambda text: print(text, file=sys.stderr)):
            store = LedgerStore(home / DELIVERIES_DIR)
            print("ready", flush=True)
            final, report, _ = run_delivery(
                store, lambda known: wanted[~wanted["message_id"].isin(known["message_id"])], channels,
                configured, now)
            mirror = final.astype({c: "string" for c in final.columns if final[c].dtype == object})
            con = open_waiting(home / DATABASE_FILE, False, args.warehouse_wait)
            try:
                con.register("_ledger", mirror)
                con.execute("CREATE OR REPLACE TABLE main.alert_deliveries AS SELECT * FROM _ledger")
            finally:
                con.close()
    except (DeliveryBusy, WarehouseBusy) as exc:
        print(f"delivery: {exc}", file=sys.stderr)
        return 3
    problem = report.problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


def hold_warehouse(path: Path, seconds: float) -> subprocess.Popen:
    """Another process with the warehouse open read-only (as the duckdb
    shell or a notebook would have it) for ``seconds``; returns once it holds it."""
    code = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print('holding', flush=True); time.sleep(float(sys.argv[2]))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()
    return proc


# --- the study -----------------------------------------------------------------------------------
KINDS = {
    # an ambiguous answer to one random chat.postMessage
    "accept-then-timeout": {"fault": ("accept-delay", 1.5), "timeout": 0.5},
    "slack posts after the client gave up": {"latency": 0.8, "timeout": 0.5},
    "accept-then-reset": {"fault": "accept-reset"},
    "accept-then-500": {"fault": "accept-500"},
    "accept-then-reset, no history scope": {"fault": "accept-reset", "history": "missing_scope"},
    "429 storm": {"script": [("429", 0)] * 6},
    "slack outage": {"outage": True},
    "every channel fails": {"outage": True, "smtp_fail": True},
    "smtp drop after queueing": {"outage": True, "smtp_drop": 1},
    # real processes
    "kill at a random point": {"kill": True},
    "kill, no history scope": {"kill": True, "history": "missing_scope"},
    "kill during email fallback": {"kill": True, "outage": True},
    "two runs at once": {"concurrent": True},
    "reader holds the warehouse": {"reader": 2.0},
}
FAST_KINDS = ("kill at a random point", "kill, no history scope", "two runs at once", "reader holds the warehouse")


def _command(home: Path, slack, smtp, messages: int, timeout: float) -> list[str]:
    return [sys.executable, "-m", "salesintel_assets_tests.delivery_faults", "drive", "--home", str(home),
            "--slack", slack.base_url, "--smtp", str(smtp.port), "--messages", str(messages),
            "--timeout", str(timeout), "--lock-wait", "60", "--warehouse-wait", "60"]


def _run_case(kind: str, spec: dict, messages: int, rng: random.Random) -> dict:
    from salesintel_assets.domain.alerts.ledger_store import LedgerStore
    from salesintel_assets_tests.slack_standin import SlackStandIn
    from salesintel_assets_tests.smtp_standin import SMTPStandIn

    home = Path(tempfile.mkdtemp(prefix="salesintel-faults-"))
    _new_warehouse(home / DATABASE_FILE)
    with SlackStandIn(token=TOKEN) as slack, SMTPStandIn() as smtp:
        slack.latency = spec.get("latency", 0.005)
        slack.history = spec.get("history", "ok")
        slack.outage = spec.get("outage", False)
        smtp.fail = spec.get("smtp_fail", False)
        smtp.drop_after_accept = spec.get("smtp_drop", 0)
        slack.script = list(spec.get("script", []))
        if "fault" in spec:
            slack.script = ["ok"] * rng.randrange(messages) + [spec["fault"]]
        command = _command(home, slack, smtp, messages, spec.get("timeout", 2.0))
        first = []
        if spec.get("kill"):
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            proc.stdout.readline()                       # holds the lock, about to deliver
            time.sleep(rng.uniform(0, 0.06 * messages))  # a random point of the delivery
            proc.send_signal(signal.SIGKILL)
            first.append(proc.wait())
        elif spec.get("concurrent"):
            procs = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
            first += [p.wait() for p in procs]
        else:
            reader = hold_warehouse(home / DATABASE_FILE, spec["reader"]) if spec.get("reader") else None
            first.append(subprocess.run(command, capture_output=True).returncode)
            if reader is not None:
                reader.wait()
        # the next scheduled run, after the passing faults are gone (a missing scope stays)
        slack.outage, slack.script, smtp.fail, smtp.drop_after_accept = False, [], False, 0
        recovery = subprocess.run(command, capture_output=True).returncode
        store = LedgerStore(home / DELIVERIES_DIR)
        ledger = store.read()
        store.close()
        key = dict(zip(ledger["delivery_id"], ledger["message_id"]))
        email_ids = [m.strip("<>").split("@")[0] for m in smtp.message_ids()]
        copies = Counter(key.get(d) for d in slack.delivered_ids() + sorted(set(email_ids)))
        unknown = set(ledger.loc[ledger["status"].eq("unknown"), "message_id"])
        delivered = {m for m in copies if m}
        missing = set(ledger["message_id"]) - delivered
        return {
            "kind": kind, "expected": messages, "delivered": len(delivered),
            "duplicates": sum(n - 1 for n in copies.values()),
            "email_same_id": len(email_ids) - len(set(email_ids)),
            "lost": len(missing - unknown), "unknown": len(unknown), "unknown_not_arrived": len(unknown & missing),
            "exit_first": ",".join(map(str, first)), "exit_recovery": recovery,
            "warehouse_usable": _warehouse_usable(home, ledger),
        }


def _new_warehouse(path: Path) -> None:
    import duckdb

    duckdb.connect(str(path)).execute("CREATE TABLE main.alerts AS SELECT 'alert-000' AS alert_id").close()


def _warehouse_usable(home: Path, ledger: pd.DataFrame) -> bool:
    import duckdb

    try:
        con = duckdb.connect(str(home / DATABASE_FILE), read_only=True)
        try:
            mirror = con.sql("SELECT delivery_id, status FROM main.alert_deliveries").df()
        finally:
            con.close()
    except duckdb.Error:
        return False
    return sorted(zip(mirror["delivery_id"], mirror["status"])) == sorted(zip(ledger["delivery_id"], ledger["status"]))


def run_study(cases_per_kind: int, messages: int, seed: int, kinds=None) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for kind in kinds or KINDS:
        for _ in range(cases_per_kind):
            rows.append(_run_case(kind, KINDS[kind], messages, rng))
    return rows


def summarise(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    return frame.groupby("kind", sort=False).agg(
        cases=("kind", "size"), expected=("expected", "sum"), delivered=("delivered", "sum"),
        duplicates=("duplicates", "sum"), email_same_id=("email_same_id", "sum"), lost=("lost", "sum"),
        unknown=("unknown", "sum"), unknown_not_arrived=("unknown_not_arrived", "sum"),
        exit_first=("exit_first", lambda s: " ".join(sorted(set(",".join(s).split(","))))),
        exit_recovery=("exit_recovery", lambda s: " ".join(map(str, sorted(set(s))))),
        warehouse_usable=("warehouse_usable", "all"),
    ).reset_index()


def format_table(rows: list[dict]) -> str:
    return summarise(rows).to_markdown(index=False)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["drive"]:
        return drive(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=5, help="cases per kind")
    parser.add_argument("--messages", type=int, default=6, help="messages per case")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kinds", nargs="*", choices=list(KINDS), help="only these kinds")
    parser.add_argument("--json", action="store_true", help="print every case as JSON lines too")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = run_study(args.cases, args.messages, args.seed, args.kinds)
    if args.json:
        for row in rows:
            print(json.dumps(row))
    print(format_table(rows))
    print(f"\n{len(rows)} cases, {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
