"""Delivery channels as resources: Slack (dagster-slack's ``SlackResource``
with a ``base_url`` and deliberate retry handlers), email over SMTP (the
backup when Slack fails) and a local outbox file (the embedded default when
no channel is configured). The channels themselves are in ``channels``.

Secrets arrive only through ``EnvVar`` and never reach an error text, a log
line or metadata: errors are described by the service's error code, not by
the request.
"""

import json
import os
from typing import Optional

import dagster as dg
from dagster_slack import SlackResource
from pydantic import PrivateAttr
from slack_sdk import WebClient

from salesintel_assets.resources.channels import (  # noqa: F401 (re-exported)
    METADATA_EVENT,
    SLACK_API,
    EmailChannel,
    OutboxChannel,
    SlackChannel,
    slack_clients,
    smtp_security,
)
from salesintel_assets.domain.common.storage import OUTBOX_DIR, OUTBOX_FILE
from salesintel_assets.resources.warehouse import SalesintelHome

class SlackNotifier(SlackResource):
    """Slack Web API. Without a token Slack is not configured. ``base_url``
    points at Slack, a proxy or a Slack-compatible server (``SLACK_BASE_URL``).
    ``tenants_home`` (SALESINTEL_HOME) finds the tenants file: in a run for a
    named tenant only that tenant's own token is used (read from the variable
    its entry names), never the default workspace's."""

    token: Optional[str] = None
    base_url: str = SLACK_API
    rate_limit_retries: int = 2
    max_retry_after_seconds: float = 30.0
    timeout_seconds: float = 15.0
    tenants_home: Optional[str] = None

    _tenant_token: Optional[tuple] = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if not self.tenants_home:
            return
        from salesintel_assets.resources.tenancy import run_tenant

        tenant = run_tenant(context, self.tenants_home)
        if tenant.is_default:
            return
        variable = tenant.config.slack_token_env
        if variable and not os.environ.get(variable):
            raise dg.Failure(f"tenant {tenant.name!r}: its Slack token variable {variable} is not set: export it "
                             "(or remove slack_token_env from its entry to deliver by email or the outbox)")
        self._tenant_token = (os.environ.get(variable) if variable else None,)

    def active_token(self) -> Optional[str]:
        return self._tenant_token[0] if self._tenant_token else self.token

    def configured(self) -> bool:
        return bool(self.active_token())

    def _clients(self) -> tuple[WebClient, WebClient]:
        return slack_clients(self.active_token(), self.base_url, self.timeout_seconds, self.rate_limit_retries,
                             self.max_retry_after_seconds)

    def get_client(self) -> WebClient:
        """For reads: connection and server errors are retried (a read is safe to repeat)."""
        return self._clients()[1]

    def posting_client(self) -> WebClient:
        """For chat.postMessage: only 429 is retried (see ``slack_clients``)."""
        return self._clients()[0]

    def channel(self) -> SlackChannel:
        poster, reader = self._clients()
        return SlackChannel(poster, reader, self.active_token())


class EmailNotifier(dg.ConfigurableResource):
    """SMTP. Without a host email is not configured. ``security``:
    ``starttls`` (default; port 587), ``ssl`` (implicit TLS; port 465, also
    chosen when only the port 465 is given) or ``none`` (plain; port 25, a
    local relay)."""

    host: Optional[str] = None
    port: Optional[int] = None
    user: Optional[str] = None
    password: Optional[str] = None
    sender: str = "salesintel@localhost"
    security: Optional[str] = None
    timeout_seconds: float = 15.0

    def configured(self) -> bool:
        return bool(self.host)

    def channel(self) -> EmailChannel:
        try:
            return EmailChannel(self.host, self.port, self.security, self.user, self.password, self.sender,
                                self.timeout_seconds)
        except ValueError as exc:
            raise dg.Failure(str(exc)) from None


class OutboxNotifier(dg.ConfigurableResource):
    """A JSON-lines file under SALESINTEL_HOME/outbox: one line per message."""

    home: SalesintelHome
    filename: str = OUTBOX_FILE

    def path(self):
        return self.home.subdir(OUTBOX_DIR) / self.filename

    def channel(self) -> OutboxChannel:
        return OutboxChannel(str(self.path()))

    def read(self) -> list[dict]:
        path = self.path()
        if not path.exists():
            return []
        records = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a line torn by a crash (the ledger re-sends that message)
        return records


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
