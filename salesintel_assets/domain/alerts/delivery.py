"""Exactly-once delivery through an outbox ledger (one row per message x
recipient x channel).

Every state change of a row is committed at once through ``commit``:
1. before a call the attempt is recorded (``attempts`` + 1, still pending);
2. right after the service accepted the message the row becomes ``sent``.
A crash between messages therefore loses nothing and re-sends nothing. A
crash between 1 and 2 leaves a pending row with ``attempts > 0``: the next run
asks the channel whether the message arrived (Slack: the channel history,
where every message carries its delivery key in its metadata; the outbox: the
file) before sending again. Email cannot be asked; it is sent again with the
same Message-ID so the receiving side can drop the copy.

A failed channel falls back to the next in the recipient's chain (Slack ->
email). A message that every channel failed stays ``failed`` and is retried
on the next run: never lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import pandas as pd

from salesintel_assets.domain.alerts.delivery_plan import channel_chain, delivery_id_for, normalise_ledger


class DeliveryError(Exception):
    """A channel could not deliver a message. The text is safe to store and
    show: it never contains a secret."""


class Channel(Protocol):
    name: str

    def prepare(self, row: dict) -> str:
        """Where the message goes on this channel (a Slack channel ID, an address)."""

    def send(self, row: dict) -> str:
        """Deliver the message; return the service's id for it once accepted."""

    def find_sent(self, row: dict) -> str | None:
        """The id of this row's message if an earlier, interrupted attempt
        did reach the service; None when it did not or cannot be known."""


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0          # channel attempts that failed (a fallback may still have delivered)
    undelivered: int = 0     # messages no channel could deliver this run (retried next run)
    reconciled: int = 0
    fallbacks: int = 0
    by_channel: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"sent": self.sent, "failed": self.failed, "undelivered": self.undelivered,
                "reconciled": self.reconciled,
                "fallbacks": self.fallbacks, **{f"sent_{k}": v for k, v in sorted(self.by_channel.items())}}


def deliver(ledger: pd.DataFrame, channels: dict[str, Channel], configured: list[str],
            commit: Callable[[dict], None], now: Callable[[], pd.Timestamp],
            after_accept: Callable[[dict], None] | None = None) -> tuple[pd.DataFrame, DeliveryReport]:
    """Send every message of the ledger that no channel has delivered yet."""
    rows = normalise_ledger(ledger).to_dict("records")
    report = DeliveryReport()
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["message_id"], row["recipient_id"]), []).append(row)
    for group in groups.values():
        if any(r["status"] == "sent" for r in group):
            continue
        if _reconcile(group, channels, commit, report):
            continue
        _send_message(group, rows, channels, configured, commit, now, after_accept, report)
    return normalise_ledger(pd.DataFrame(rows)), report


def _reconcile(group: list[dict], channels: dict[str, Channel], commit, report: DeliveryReport) -> bool:
    for row in group:
        channel = channels.get(row["channel"])
        if row["status"] != "pending" or row["attempts"] == 0 or channel is None or not row["target"]:
            continue
        found = channel.find_sent(row)
        if found:
            row.update(status="sent", sent_at=row["last_attempt_at"], response_id=found, error=None)
            commit(row)
            report.reconciled += 1
            return True
    return False


def _send_message(group, rows, channels, configured, commit, now, after_accept, report) -> None:
    first = group[0]
    contact = {"email": first["recipient_email"], "slack_channel": first["recipient_slack"]}
    by_channel = {r["channel"]: r for r in group}
    chain = [c for c in channel_chain(contact, configured) if c in channels]
    for position, name in enumerate(chain):
        channel = channels[name]
        row = by_channel.get(name)
        if row is None:
            row = dict(first, channel=name, delivery_id=delivery_id_for(first["message_id"], first["recipient_id"], name),
                       target=None, status="pending", attempts=0, error=None, last_attempt_at=pd.NaT,
                       sent_at=pd.NaT, response_id=None, created_at=now())
            rows.append(row)
            by_channel[name] = row
            commit(row)
        if position > 0:
            report.fallbacks += 1
        try:
            row["target"] = channel.prepare(row)
        except DeliveryError as exc:
            _fail(row, exc, commit, report)
            continue
        row.update(attempts=row["attempts"] + 1, last_attempt_at=now(), status="pending", error=None)
        commit(row)
        try:
            response = channel.send(row)
        except DeliveryError as exc:
            _fail(row, exc, commit, report)
            continue
        if after_accept is not None:
            after_accept(row)
        row.update(status="sent", sent_at=now(), response_id=response)
        commit(row)
        report.sent += 1
        report.by_channel[name] = report.by_channel.get(name, 0) + 1
        return
    report.undelivered += 1


def _fail(row: dict, exc: DeliveryError, commit, report: DeliveryReport) -> None:
    row.update(status="failed", error=str(exc)[:500])
    commit(row)
    report.failed += 1


def send_now(row: dict, channels: dict[str, Channel], configured: list[str]) -> tuple[str | None, list[str]]:
    """Send one message outside the ledger (run-failure notices): the first
    channel of the chain that accepts it, and the errors of those that did not."""
    contact = {"email": row.get("recipient_email"), "slack_channel": row.get("recipient_slack")}
    errors = []
    for name in [c for c in channel_chain(contact, configured) if c in channels]:
        try:
            target = channels[name].prepare(row)
            channels[name].send(dict(row, target=target))
            return name, errors
        except DeliveryError as exc:
            errors.append(f"{name}: {exc}")
    return None, errors
