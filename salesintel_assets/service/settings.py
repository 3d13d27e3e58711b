"""What the service needs to know, read from the run-time contract once, when
``salesintel serve`` starts (never at import)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from salesintel_assets.domain.common.storage import DEFAULT_HOME, FEEDBACK_DIR, FEEDBACK_INBOX_FILE


def inbox_file(home: Path) -> Path:
    """The feedback inbox the alerts layer reads (``alert_feedback``)."""
    return Path(home) / FEEDBACK_DIR / FEEDBACK_INBOX_FILE


class ServiceConfigError(ValueError):
    """The service cannot start as configured (one sentence saying what to do)."""


@dataclass(frozen=True)
class ServiceSettings:
    home: Path
    signing_secret: str | None = None   # None: Slack interactivity off (the endpoint accepts nothing)
    bot_token: str | None = None        # for chat.update when a click carries no response_url
    slack_api_url: str | None = None    # Slack Web API base URL (a local stand-in in tests)
    secure_cookies: bool = False        # set behind HTTPS so the session cookie never travels in clear

    def __post_init__(self):
        if self.signing_secret is not None and not self.signing_secret.strip():
            raise ServiceConfigError("SLACK_SIGNING_SECRET is set but empty: set it to the app's signing secret "
                                     "(Slack app > Basic Information) or unset it to run without Slack")

    @property
    def service_dir(self) -> Path:
        return self.home / "service"

    @property
    def inbox_path(self) -> Path:
        return inbox_file(self.home)

    @property
    def tokens_path(self) -> Path:
        return self.service_dir / "tokens.sqlite3"

    @property
    def audit_path(self) -> Path:
        return self.service_dir / "audit.sqlite3"

    @classmethod
    def from_environment(cls, home: str | Path | None = None) -> "ServiceSettings":
        root = Path(home or os.environ.get("SALESINTEL_HOME") or DEFAULT_HOME).expanduser().resolve()
        return cls(home=root, signing_secret=os.environ.get("SLACK_SIGNING_SECRET"),
                   bot_token=os.environ.get("SLACK_BOT_TOKEN") or None,
                   slack_api_url=os.environ.get("SALESINTEL_SLACK_API_URL") or None,
                   secure_cookies=os.environ.get("SALESINTEL_SECURE_COOKIES", "").lower() in ("1", "true", "yes"))
