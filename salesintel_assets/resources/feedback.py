"""Where the feedback inbox lives (an append-only SQLite file under
SALESINTEL_HOME, written by the CLI and the web service, read by the
``alert_feedback`` asset)."""

from pathlib import Path

import dagster as dg

from salesintel_assets.domain.common.storage import FEEDBACK_DIR, FEEDBACK_INBOX_FILE
from salesintel_assets.resources.warehouse import SalesintelHome


class FeedbackInbox(dg.ConfigurableResource):
    """The feedback inbox file of a home."""

    home: SalesintelHome

    def path(self) -> Path:
        return self.home.subdir(FEEDBACK_DIR) / FEEDBACK_INBOX_FILE
