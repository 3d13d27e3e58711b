"""Delivery channels as resources: Slack (dagster-slack's ``SlackResource``
with a ``base_url`` and rate-limit handling), email over SMTP (the backup when
Slack fails) and a local outbox file (the embedded default when no channel is
configured).

Secrets arrive only through ``EnvVar`` and never reach an error text, a log
line or metadata: errors are described by the service's error code, not by
the request.
"""

import json
import os
import smtplib
import ssl
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from typing import Literal, Optional

import dagster as dg
import pandas as pd
from dagster_slack import SlackResource
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from salesintel_assets.domain.alerts.delivery import DeliveryError
from salesintel_assets.domain.common.storage import OUTBOX_DIR, OUTBOX_FILE
from salesintel_assets.resources.warehouse import SalesintelHome

METADATA_EVENT = "salesintel_message"


class SlackNotifier(SlackResource):
    """Slack Web API. Without a token Slack is not configured. ``base_url``
    points at Slack (or a stand-in in tests)."""

    token: Optional[str] = None
    base_url: str = "https://slack.com/api/"
    rate_limit_retries: int = 2
    timeout_seconds: int = 15

    def configured(self) -> bool:
        return bool(self.token)

    def get_client(self) -> WebClient:
        return WebClient(
            token=self.token, base_url=self.base_url, timeout=self.timeout_seconds,
            retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1),
                            RateLimitErrorRetryHandler(max_retry_count=self.rate_limit_retries),
                            ServerErrorRetryHandler(max_retry_count=1)],
        )

    def channel(self) -> "SlackChannel":
        return SlackChannel(self.get_client(), self.token)


class EmailNotifier(dg.ConfigurableResource):
    """SMTP. Without a host email is not configured."""

    host: Optional[str] = None
    port: int = 587
    user: Optional[str] = None
    password: Optional[str] = None
    sender: str = "salesintel@localhost"
    security: Literal["starttls", "ssl", "none"] = "starttls"
    timeout_seconds: float = 15.0

    def configured(self) -> bool:
        return bool(self.host)

    def channel(self) -> "EmailChannel":
        return EmailChannel(self)


class OutboxNotifier(dg.ConfigurableResource):
    """A JSON-lines file under SALESINTEL_HOME/outbox: one line per message."""

    home: SalesintelHome
    filename: str = OUTBOX_FILE

    def path(self):
        return self.home.subdir(OUTBOX_DIR) / self.filename

    def channel(self) -> "OutboxChannel":
        return OutboxChannel(str(self.path()))

    def read(self) -> list[dict]:
        path = self.path()
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_channels(slack: SlackNotifier, email: EmailNotifier, outbox: OutboxNotifier) -> tuple[dict, list[str]]:
    """The channel objects and the configured order (Slack first, email as
    backup). The outbox is always there for what nothing else can carry."""
    configured = [name for name, res in (("slack", slack), ("email", email)) if res.configured()]
    channels = {"outbox": outbox.channel()}
    if slack.configured():
        channels["slack"] = slack.channel()
    if email.configured():
        channels["email"] = email.channel()
    return channels, configured


def _redact(text: str, *secrets: Optional[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class SlackChannel:
    name = "slack"

    def __init__(self, client: WebClient, token: Optional[str]):
        self.client = client
        self._token = token
        self._dm: dict[str, str] = {}

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, SlackApiError):
            status = getattr(exc.response, "status_code", None)
            try:
                code = exc.response.get("error")
            except Exception:  # a non-JSON body (an outage page)
                code = None
            return _redact(f"slack error {code or 'unknown'} (HTTP {status})", self._token)
        return _redact(f"slack unreachable: {type(exc).__name__}", self._token)

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
                user = self.client.users_lookupByEmail(email=email)["user"]["id"]
                self._dm[email] = self.client.conversations_open(users=user)["channel"]["id"]
            except (SlackApiError, SlackClientError, OSError, ValueError) as exc:
                raise DeliveryError(self._describe(exc)) from None
        return self._dm[email]

    def send(self, row: dict) -> str:
        try:
            response = self.client.chat_postMessage(
                channel=row["target"], text=row["body_text"], blocks=json.loads(row["blocks_json"]),
                unfurl_links=False, unfurl_media=False,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"delivery_id": row["delivery_id"]}},
            )
            return str(response["ts"])
        except (SlackApiError, SlackClientError, OSError, ValueError) as exc:
            raise DeliveryError(self._describe(exc)) from None

    def find_sent(self, row: dict) -> Optional[str]:
        """Whether an interrupted attempt reached the channel: our messages
        carry their delivery id in Slack message metadata."""
        attempted = row.get("last_attempt_at")
        oldest = pd.Timestamp(attempted).tz_localize("UTC").timestamp() - 300 if pd.notna(attempted) else 0
        try:
            history = self.client.conversations_history(channel=row["target"], oldest=f"{oldest:.6f}",
                                                        include_all_metadata=True, limit=200)
        except (SlackApiError, SlackClientError, OSError, ValueError):
            return None
        for message in history.get("messages", []):
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("delivery_id") == row["delivery_id"]:
                return str(message.get("ts"))
        return None


class EmailChannel:
    name = "email"

    def __init__(self, settings: EmailNotifier):
        self.settings = settings

    def prepare(self, row: dict) -> str:
        if not row.get("recipient_email"):
            raise DeliveryError("no email address")
        return row["recipient_email"]

    def _message(self, row: dict) -> EmailMessage:
        # Long lines allowed (RFC 5322's 998): the default 78 folds subjects oddly.
        message = EmailMessage(policy=policy.SMTP.clone(max_line_length=998))
        message["Subject"] = row["subject"]
        message["From"] = self.settings.sender
        message["To"] = row["target"]
        # Deterministic, so a re-send after an interrupted attempt is recognisable as the same message.
        message["Message-ID"] = f"<{row['delivery_id']}@salesintel>"
        message["X-Salesintel-Message"] = row["message_id"]
        message.set_content(row["body_text"])
        return message

    def send(self, row: dict) -> str:
        s = self.settings
        message = self._message(row)
        try:
            if s.security == "ssl":
                server = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_seconds,
                                          context=ssl.create_default_context())
            else:
                server = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
            with server:
                if s.security == "starttls":
                    server.starttls(context=ssl.create_default_context())
                if s.user:
                    server.login(s.user, s.password or "")
                refused = server.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            code = getattr(exc, "smtp_code", None)
            raise DeliveryError(_redact(f"smtp error {type(exc).__name__}" + (f" {code}" if code else ""),
                                        s.password)) from None
        if refused:
            raise DeliveryError("smtp refused the recipient")
        return message["Message-ID"]

    def find_sent(self, row: dict) -> Optional[str]:
        return None  # SMTP cannot be asked; the re-send keeps the same Message-ID


class OutboxChannel:
    name = "outbox"

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
                for line in handle:
                    if row["delivery_id"] in line and json.loads(line).get("delivery_id") == row["delivery_id"]:
                        return row["delivery_id"]
        except (OSError, ValueError):
            return None
        return None
