"""The delivery channels behind the notifier resources: Slack (slack_sdk),
email (smtplib) and the local outbox file. Plain Python (no Dagster), so a
delivery can run in a small process of its own.

Each channel tells a definite failure (``DeliveryError``: the service said
no, or was never reached) from an ambiguous one (``AmbiguousDelivery``: the
request may have been taken - a timeout, a reset connection, an HTTP 5xx),
and answers ``find_sent`` so an ambiguous attempt can be reconciled.
Errors are described by the service's error code, never by the request, so
no secret reaches a stored error text.
"""

from __future__ import annotations

import json
import os
import smtplib
import socket
import ssl
import time
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from typing import Optional
from http.client import HTTPException
from urllib.error import HTTPError, URLError

import pandas as pd
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError, SlackRequestError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from salesintel_assets.domain.alerts.delivery import AmbiguousDelivery, CannotConfirm, DeliveryError

METADATA_EVENT = "salesintel_message"
SLACK_API = "https://slack.com/api/"
SMTP_SECURITY = ("starttls", "ssl", "none")
HISTORY_PAGES = 10           # 10 x 200 messages after the attempt: enough for a bot's channel
HISTORY_LEEWAY_SECONDS = 300  # clock skew between us and Slack


def _redact(text: str, *secrets: Optional[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _never_sent(exc: BaseException) -> bool:
    """True when the request certainly did not reach the service."""
    if isinstance(exc, SlackRequestError):  # refused by the client before sending
        return True
    if isinstance(exc, URLError) and not isinstance(exc, HTTPError):
        return isinstance(exc.reason, (ConnectionRefusedError, socket.gaierror, ssl.SSLCertVerificationError))
    return isinstance(exc, (ConnectionRefusedError, socket.gaierror))


def _retry_after(headers: dict) -> float:
    """Seconds from a Retry-After header (1 when absent, an hour when unreadable)."""
    wait = next((v for k, v in (headers or {}).items() if k.lower() == "retry-after"), "1")
    try:
        return float(wait[0] if isinstance(wait, list) else wait)
    except (TypeError, ValueError):
        return 3600.0


def _timed_out(exc: BaseException) -> bool:
    reason = exc.reason if isinstance(exc, URLError) else exc
    return isinstance(reason, (TimeoutError, socket.timeout))


class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """Honours 429 + Retry-After (Slack did not process the call, so a retry
    is safe) but gives up when Slack asks for a longer wait than we allow,
    so a 429 storm falls back to email instead of stalling the run."""

    def __init__(self, max_retry_count: int, max_wait_seconds: float):
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_seconds = max_wait_seconds

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        return _retry_after(response.headers) <= self.max_wait_seconds


def slack_clients(token: Optional[str], base_url: Optional[str], timeout_seconds: float, rate_limit_retries: int,
                  max_retry_after_seconds: float) -> tuple[WebClient, WebClient]:
    """(poster, reader). The poster retries only HTTP 429: after a reset, a
    timeout or a 5xx Slack may have posted the message, and a blind re-send
    could post it twice, so the delivery reconciles with the history
    instead. The reader also retries connection and server errors: reads are
    safe to repeat."""
    base = (base_url or "").strip() or SLACK_API
    base = base if base.endswith("/") else base + "/"  # slack_sdk appends the method name

    def client(handlers: list) -> WebClient:
        return WebClient(token=token, base_url=base, timeout=timeout_seconds, retry_handlers=handlers)

    rate_limit = BoundedRateLimitRetryHandler(rate_limit_retries, max_retry_after_seconds)
    return client([rate_limit]), client([ConnectionErrorRetryHandler(max_retry_count=1), rate_limit,
                                         ServerErrorRetryHandler(max_retry_count=1)])


class SlackChannel:
    """Posts with ``poster`` (retries only HTTP 429, which Slack did not
    process) and reads with ``reader`` (retries connection and server errors:
    reads are safe to repeat)."""

    name = "slack"
    resend_when_unconfirmed = False

    def __init__(self, poster: WebClient, reader: WebClient, token: Optional[str]):
        self.poster, self.reader = poster, reader
        self._token = token
        self._dm: dict[str, str] = {}
        self._rate_limited_until = 0.0

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, SlackApiError):
            status = getattr(exc.response, "status_code", None)
            try:
                code = exc.response.get("error")
            except Exception:  # a non-JSON body (an outage page)
                code = None
            return _redact(f"slack error {code or 'unknown'} (HTTP {status})", self._token)
        reason = getattr(exc, "reason", None)
        kind = type(reason).__name__ if isinstance(reason, BaseException) else type(exc).__name__
        return _redact(f"slack unreachable: {kind}", self._token)

    def prepare(self, row: dict) -> str:
        """A team channel ID as given, or the person's direct-message channel
        found by email (users.lookupByEmail + conversations.open)."""
        if row.get("recipient_slack"):
            return row["recipient_slack"]
        email = row.get("recipient_email")
        if not email:
            raise DeliveryError("no Slack channel and no email to find the person by")
        if email not in self._dm:
            try:
                user = self.reader.users_lookupByEmail(email=email)["user"]["id"]
                self._dm[email] = self.reader.conversations_open(users=user)["channel"]["id"]
            except (SlackClientError, OSError, ValueError, KeyError, HTTPException) as exc:
                raise DeliveryError(self._describe(exc)) from None
        return self._dm[email]

    def send(self, row: dict) -> str:
        if time.monotonic() < self._rate_limited_until:  # a 429 storm: don't queue every message behind it
            raise DeliveryError("slack error ratelimited (HTTP 429; waiting out Retry-After)")
        try:
            response = self.poster.chat_postMessage(
                channel=row["target"], text=row["body_text"], blocks=json.loads(row["blocks_json"]),
                unfurl_links=False, unfurl_media=False,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"delivery_id": row["delivery_id"]}},
            )
            return str(response["ts"])
        except SlackApiError as exc:
            status = getattr(exc.response, "status_code", None) or 0
            if status == 429:  # still limited after the allowed retries
                self._rate_limited_until = time.monotonic() + _retry_after(exc.response.headers)
            answered_no = status < 500 and bool(exc.response.data) and exc.response.get("error")
            raise (DeliveryError if answered_no else AmbiguousDelivery)(self._describe(exc)) from None
        except Exception as exc:  # noqa: BLE001 - anything after the request may have left is ambiguous
            if _never_sent(exc):
                raise DeliveryError(self._describe(exc)) from None
            raise AmbiguousDelivery(self._describe(exc), in_progress=_timed_out(exc)) from None

    def find_sent(self, row: dict) -> Optional[str]:
        """Look for the message in the channel's history after the attempt:
        every message carries its delivery id in Slack message metadata."""
        attempted = row.get("last_attempt_at")
        oldest = (pd.Timestamp(attempted).tz_localize("UTC").timestamp() - HISTORY_LEEWAY_SECONDS
                  if pd.notna(attempted) else 0)
        cursor = None
        for _ in range(HISTORY_PAGES):
            try:
                page = self.reader.conversations_history(channel=row["target"], oldest=f"{oldest:.6f}",
                                                         include_all_metadata=True, limit=200, cursor=cursor)
            except SlackApiError as exc:
                # Slack (or a stand-in, a proxy) answered "you may not read this" (missing_scope, 403,
                # 404): asking again will not help. A 5xx or a 429 passes.
                status = getattr(exc.response, "status_code", None) or 0
                answered = (400 <= status < 500 and status != 429) or (status == 200 and bool(exc.response.data))
                raise CannotConfirm(f"conversations.history: {self._describe(exc)}", permanent=answered) from None
            except (SlackClientError, OSError, ValueError, HTTPException) as exc:
                raise CannotConfirm(f"conversations.history: {self._describe(exc)}", permanent=False) from None
            for message in page.get("messages", []):
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                if payload.get("delivery_id") == row["delivery_id"]:
                    return str(message.get("ts"))
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not page.get("has_more") or not cursor:
                return None
        raise CannotConfirm("conversations.history: more messages since the attempt than we page through",
                            permanent=False)


def smtp_security(security: Optional[str], port: Optional[int]) -> tuple[str, int]:
    """The connection's security and port: ``starttls`` (default, port 587),
    ``ssl`` (implicit TLS, port 465) or ``none`` (plain, port 25: a local
    relay). Port 465 without a stated security means ``ssl``."""
    chosen = (security or "").strip().lower() or ("ssl" if port == 465 else "starttls")
    if chosen not in SMTP_SECURITY:
        raise ValueError(f"SALESINTEL_SMTP_SECURITY={security!r} is not one of {', '.join(SMTP_SECURITY)}")
    return chosen, int(port) if port else {"starttls": 587, "ssl": 465, "none": 25}[chosen]


class _DataTracking:
    """Notes when the message body starts going out: from then on the server
    may queue the message even if we never see its answer."""

    body_sent = False

    def data(self, msg):
        self.body_sent = True
        return super().data(msg)


class _SMTP(_DataTracking, smtplib.SMTP):
    pass


class _SMTPSSL(_DataTracking, smtplib.SMTP_SSL):
    pass


class EmailChannel:
    """SMTP. It cannot be asked whether a message was queued: an attempt cut
    off after the body went out is sent again on the next run with the same
    Message-ID (mail clients that de-duplicate on it show one copy; others
    may show two - the one duplicate SMTP leaves possible)."""

    name = "email"
    resend_when_unconfirmed = True

    def __init__(self, host: str, port: Optional[int], security: Optional[str], user: Optional[str],
                 password: Optional[str], sender: str, timeout_seconds: float):
        self.security, self.port = smtp_security(security, port)
        self.host, self.user, self.password = host, user, password
        self.sender, self.timeout_seconds = sender, timeout_seconds

    def prepare(self, row: dict) -> str:
        if not row.get("recipient_email"):
            raise DeliveryError("no email address")
        return row["recipient_email"]

    def _message(self, row: dict) -> EmailMessage:
        # Long lines allowed (RFC 5322's 998): the default 78 folds subjects oddly.
        message = EmailMessage(policy=policy.SMTP.clone(max_line_length=998))
        message["Subject"] = row["subject"]
        message["From"] = self.sender
        message["To"] = row["target"]
        # Deterministic, so a re-send after an interrupted attempt is recognisable as the same message.
        message["Message-ID"] = f"<{row['delivery_id']}@salesintel>"
        message["X-Salesintel-Message"] = row["message_id"]
        message.set_content(row["body_text"])
        return message

    def _connect(self):
        if self.security == "ssl":
            return _SMTPSSL(self.host, self.port, timeout=self.timeout_seconds, context=ssl.create_default_context())
        server = _SMTP(self.host, self.port, timeout=self.timeout_seconds)
        if self.security == "starttls":
            server.starttls(context=ssl.create_default_context())
        return server

    def send(self, row: dict) -> str:
        message = self._message(row)
        server = None
        try:
            server = self._connect()
            if self.user:
                server.login(self.user, self.password or "")
            refused = server.send_message(message)
        except Exception as exc:  # noqa: BLE001 - described by its type only, never by the request
            code = getattr(exc, "smtp_code", None)
            text = _redact(f"smtp error {type(exc).__name__}" + (f" {code}" if code else ""), self.password)
            answered_no = isinstance(exc, smtplib.SMTPResponseException) or not getattr(server, "body_sent", False)
            if server is not None:
                server.close()
            raise (DeliveryError if answered_no else AmbiguousDelivery)(text) from None
        try:  # accepted: a failing QUIT changes nothing
            server.quit()
        except (smtplib.SMTPException, OSError):
            server.close()
        if refused:
            raise DeliveryError("smtp refused the recipient")
        return message["Message-ID"]

    def find_sent(self, row: dict) -> Optional[str]:
        raise CannotConfirm("SMTP cannot be asked whether a message was queued", permanent=True)


class OutboxChannel:
    """A JSON-lines file: one line per message, fsynced before it counts."""

    name = "outbox"
    resend_when_unconfirmed = False

    def __init__(self, path: str):
        self.path = path

    def prepare(self, row: dict) -> str:
        return self.path

    def send(self, row: dict) -> str:
        record = {
            "delivery_id": row["delivery_id"], "message_id": row["message_id"], "kind": row["message_kind"],
            "alert_ids": row["alert_ids"], "recipient_id": row["recipient_id"],
            "recipient_name": row["recipient_name"], "recipient_role": row["recipient_role"],
            "recipient_email": row["recipient_email"], "subject": row["subject"], "text": row["body_text"],
            "blocks": json.loads(row["blocks_json"]),
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise DeliveryError(f"outbox not writable: {type(exc).__name__}") from None
        return row["delivery_id"]

    def find_sent(self, row: dict) -> Optional[str]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                lines = [line for line in handle if row["delivery_id"] in line]
        except FileNotFoundError:
            return None
        for line in lines:
            try:
                if json.loads(line).get("delivery_id") == row["delivery_id"]:
                    return row["delivery_id"]
            except ValueError:
                continue  # a line torn by a crash: that message was not written
        return None
