"""Exactly-once delivery through an outbox ledger (one row per message x
recipient x channel).

Every state change of a row is committed at once through ``commit``:
1. before a call the attempt is recorded (``attempts`` + 1, still pending);
2. right after the service accepted the message the row becomes ``sent``.

A crash between messages loses nothing and re-sends nothing. Between 1 and 2
the outcome is ambiguous, and so is a call that failed after the request went
out (a timeout, a reset connection, an HTTP 5xx): the service may have taken
the message. An ambiguous attempt is reconciled before anything is retried or
sent on another channel: the channel is asked whether the message arrived
(Slack: the channel history, where every message carries its delivery id in
its metadata; the outbox: the file).

- found: the row is ``sent`` (nothing is sent again);
- not found: the attempt failed; the next channel of the chain is tried;
- the channel cannot be asked (Slack without a history scope): the row is
  ``unknown``; it is neither re-sent nor sent by email, it is reported and
  checked again on every later run (granting the scope settles it);
- the channel cannot be asked by design (SMTP): email is sent again with
  the same Message-ID, so mail clients that de-duplicate on it show one copy.

A definite failure (the service answered "no", or a 429 after the allowed
retries) falls back to the next channel (Slack -> email). A message that every
channel failed stays ``failed`` and is retried on the next run: never lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import pandas as pd

from salesintel_assets.domain.alerts.delivery_plan import channel_chain, delivery_id_for, normalise_ledger

STATUSES = ("pending", "sent", "failed", "unknown")


class DeliveryError(Exception):
    """A channel did not take a message (definitely). The text is safe to
    store and show: it never contains a secret."""


class AmbiguousDelivery(DeliveryError):
    """The call failed after the request may have reached the service: the
    message may or may not have been accepted. ``in_progress``: we stopped
    waiting (a timeout), so the service may still be working on it."""

    def __init__(self, text: str, in_progress: bool = False):
        super().__init__(text)
        self.in_progress = in_progress


# After a timeout the service may still be posting: look again before
# calling the attempt failed (a fallback then could be a second copy).
RECHECK_DELAYS_SECONDS = (1.0, 3.0)


class CannotConfirm(Exception):
    """A channel cannot tell whether a message arrived. ``permanent``: asking
    again will not help (a missing scope), as opposed to a passing outage."""

    def __init__(self, reason: str, permanent: bool):
        super().__init__(reason)
        self.permanent = permanent


class Channel(Protocol):
    name: str
    # True when the channel cannot be asked by design and a re-send is
    # harmless enough (SMTP with a stable Message-ID).
    resend_when_unconfirmed: bool

    def prepare(self, row: dict) -> str:
        """Where the message goes on this channel (a Slack channel ID, an address)."""

    def send(self, row: dict) -> str:
        """Deliver the message; return the service's id for it once accepted.
        Raises ``DeliveryError`` (not taken) or ``AmbiguousDelivery``."""

    def find_sent(self, row: dict) -> str | None:
        """The id of this row's message if an earlier attempt reached the
        service, None if it did not; ``CannotConfirm`` when it cannot be known."""


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0          # channel attempts that failed (a fallback may still have delivered)
    undelivered: int = 0     # messages no channel could deliver this run (retried next run)
    unknown: int = 0         # messages that may have arrived but cannot be confirmed (not re-sent)
    new_unknown: int = 0     # ... of which became unknown in this run
    reconciled: int = 0      # ambiguous attempts found delivered
    fallbacks: int = 0
    by_channel: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)  # "channel: error" of undelivered and unknown messages

    def as_dict(self) -> dict:
        return {"sent": self.sent, "failed": self.failed, "undelivered": self.undelivered,
                "unknown": self.unknown, "reconciled": self.reconciled, "fallbacks": self.fallbacks,
                **{f"sent_{k}": v for k, v in sorted(self.by_channel.items())}}

    def problem(self) -> str | None:
        """One sentence when this run leaves messages undelivered or newly
        unconfirmable, else None."""
        parts = []
        if self.undelivered:
            parts.append(f"{self.undelivered} message(s) could not be delivered on any channel "
                         "(they stay 'failed' in alert_deliveries and are retried on the next run)")
        if self.new_unknown:
            parts.append(f"{self.new_unknown} message(s) may have reached Slack but cannot be confirmed "
                         "(status 'unknown', not re-sent to avoid a duplicate; give the Slack app the "
                         "channels:history, groups:history, im:history and mpim:history scopes "
                         "so the next run can check)")
        if not parts:
            return None
        seen = sorted(set(self.errors))[:3]
        return "delivery: " + "; ".join(parts) + (f"; last errors: {'; '.join(seen)}" if seen else "") + "."

    def _count_sent(self, channel: str) -> None:
        self.sent += 1
        self.by_channel[channel] = self.by_channel.get(channel, 0) + 1


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
        state, resend_on = _reconcile(group, channels, commit, report)
        if state == "unknown":
            report.unknown += 1
            continue
        if state == "sent":
            continue
        _send_message(group, rows, channels, configured, commit, now, after_accept, report, resend_on)
    return normalise_ledger(pd.DataFrame(rows)), report


def _confirm(row: dict, channel: Channel) -> tuple[str, str | None]:
    """("found", id) | ("absent", None) | ("unknown", reason) for an attempt
    whose outcome is not known. A passing failure to ask (Slack itself
    failing) counts as absent: in an outage the message most likely did not
    arrive, and the backup channel must carry it."""
    try:
        found = channel.find_sent(row)
    except CannotConfirm as exc:
        if exc.permanent and not channel.resend_when_unconfirmed:
            return "unknown", str(exc)
        return "absent", str(exc)
    return ("found", found) if found else ("absent", None)


def _reconcile(group: list[dict], channels: dict[str, Channel], commit,
               report: DeliveryReport) -> tuple[str, str | None]:
    """("sent" | "unknown" | "clear", channel): "clear" means nothing is in
    flight and the message may be sent; the channel, when set, is one that
    cannot be asked by design and must carry the re-send itself (email with
    the same Message-ID), so a second copy never comes by another channel."""
    for row in group:
        channel = channels.get(row["channel"])
        in_flight = row["status"] == "unknown" or (row["status"] == "pending" and row["attempts"] > 0)
        if not in_flight or channel is None or not row["target"]:
            continue
        state, detail = _confirm(row, channel)
        if state == "found":
            row.update(status="sent", sent_at=row["last_attempt_at"], response_id=detail, error=None)
            commit(row)
            report.reconciled += 1
            return "sent", None
        if state == "unknown":
            if row["status"] != "unknown":
                row.update(status="unknown", error=f"outcome of the attempt not known: {detail}"[:500])
                commit(row)
                report.new_unknown += 1
            report.errors.append(f"{row['channel']}: {row['error']}")
            return "unknown", None
        if channel.resend_when_unconfirmed and row["status"] == "pending":
            return "clear", row["channel"]
        row.update(status="failed", error=f"not delivered (checked: {detail or 'not in the channel'})"[:500])
        commit(row)
    return "clear", None


def _new_row(first: dict, name: str, now) -> dict:
    return dict(first, channel=name, delivery_id=delivery_id_for(first["message_id"], first["recipient_id"], name),
                target=None, status="pending", attempts=0, error=None, last_attempt_at=pd.NaT,
                sent_at=pd.NaT, response_id=None, created_at=now())


def _send_message(group, rows, channels, configured, commit, now, after_accept, report, start_at=None) -> None:
    first = group[0]
    contact = {"email": first["recipient_email"], "slack_channel": first["recipient_slack"]}
    by_channel = {r["channel"]: r for r in group}
    chain = [c for c in channel_chain(contact, configured) if c in channels]
    if start_at in chain:
        chain = chain[chain.index(start_at):]
    errors = []
    for position, name in enumerate(chain):
        channel = channels[name]
        row = by_channel.get(name)
        if row is None:
            row = _new_row(first, name, now)
            rows.append(row)
            by_channel[name] = row
            commit(row)
        if position > 0:
            report.fallbacks += 1
        try:
            row["target"] = channel.prepare(row)
        except DeliveryError as exc:
            _fail(row, str(exc), commit, report, errors)
            continue
        row.update(attempts=row["attempts"] + 1, last_attempt_at=now(), status="pending", error=None)
        commit(row)
        try:
            response = channel.send(row)
        except AmbiguousDelivery as exc:
            if channel.resend_when_unconfirmed:  # SMTP: the next run re-sends it here, same Message-ID
                row.update(error=f"{exc}; may have been accepted, re-sent on the next run"[:500])
                commit(row)
                report.undelivered += 1
                report.errors.append(f"{name}: {row['error']}")
                return
            state, detail = _confirm(row, channel)
            for delay in RECHECK_DELAYS_SECONDS if exc.in_progress else ():
                if state != "absent":
                    break
                time.sleep(delay)
                state, detail = _confirm(row, channel)
            if state == "found":
                row.update(status="sent", sent_at=now(), response_id=detail, error=None)
                commit(row)
                report.reconciled += 1
                report._count_sent(name)
                return
            if state == "unknown":  # never re-send or fall back: that could be a duplicate
                row.update(status="unknown", error=f"{exc}; outcome not known: {detail}"[:500])
                commit(row)
                report.unknown += 1
                report.new_unknown += 1
                report.errors.append(f"{name}: {row['error']}")
                return
            _fail(row, f"{exc}; not delivered ({detail or 'checked: not in the channel'})", commit, report, errors)
            continue
        except DeliveryError as exc:
            _fail(row, str(exc), commit, report, errors)
            continue
        if after_accept is not None:
            after_accept(row)
        row.update(status="sent", sent_at=now(), response_id=response)
        commit(row)
        report._count_sent(name)
        return
    report.undelivered += 1
    report.errors.extend(errors)


def _fail(row: dict, error: str, commit, report: DeliveryReport, errors: list) -> None:
    row.update(status="failed", error=error[:500])
    commit(row)
    report.failed += 1
    errors.append(f"{row['channel']}: {row['error']}")


def send_now(row: dict, channels: dict[str, Channel], configured: list[str]) -> tuple[str | None, list[str]]:
    """Send one message outside the ledger (run-failure notices): the first
    channel of the chain that accepts it, and the errors of those that did not.
    An ambiguous send stops the chain (no second copy by another channel)."""
    contact = {"email": row.get("recipient_email"), "slack_channel": row.get("recipient_slack")}
    errors = []
    for name in [c for c in channel_chain(contact, configured) if c in channels]:
        try:
            target = channels[name].prepare(row)
            channels[name].send(dict(row, target=target))
            return name, errors
        except AmbiguousDelivery as exc:
            return name, errors + [f"{name}: {exc} (may have been delivered)"]
        except DeliveryError as exc:
            errors.append(f"{name}: {exc}")
    return None, errors


class LedgerLike(Protocol):
    def is_empty(self) -> bool: ...
    def read(self) -> pd.DataFrame: ...
    def commit(self, row: dict) -> None: ...
    def commit_many(self, frame: pd.DataFrame) -> None: ...


def run_delivery(store: LedgerLike, plan: Callable[[pd.DataFrame], pd.DataFrame], channels: dict[str, Channel],
                 configured: list[str], now: Callable[[], pd.Timestamp],
                 seed: Callable[[], pd.DataFrame | None] | None = None,
                 after_accept: Callable[[dict], None] | None = None) -> tuple[pd.DataFrame, DeliveryReport, int]:
    """One delivery run on a ledger the caller holds exclusively: plan what is
    due against the ledger, commit it as pending, send, and return the whole
    ledger, the report and the number of rows planned. ``seed`` gives the
    rows of an older ledger to start from when the store is new."""
    if seed is not None and store.is_empty():
        store.commit_many(normalise_ledger(seed()))
    planned = plan(store.read())
    store.commit_many(planned)
    _, report = deliver(store.read(), channels, configured, store.commit, now, after_accept)
    return store.read(), report, len(planned)
