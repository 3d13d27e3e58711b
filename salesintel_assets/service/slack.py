"""Slack interactivity through Bolt: signature and replay-window checks are
Bolt's (``SLACK_SIGNING_SECRET``); each click becomes one event in the
feedback inbox and the message is updated to say who did what.

Idempotency: an event's id is derived from the signed payload (user, action,
the click's own ``action_ts``), so a retried or replayed request is a no-op,
and its ``occurred_at`` is the click's time, not the arrival time, so an older
click replayed later never overrides a newer one.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, timedelta, timezone

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from salesintel_assets.domain.alerts.feedback_inbox import record_event
from salesintel_assets.domain.alerts.messages import SLACK_ACTIONS, SNOOZE_ACTION, STATUS_BLOCK_ID
from salesintel_assets.service.settings import ServiceSettings

ACTION_PATTERN = re.compile("^salesintel_(feedback_helpful|feedback_noise|acknowledge|snooze)$")
DONE = {"helpful": "👍 rated it helpful", "noise": "👎 rated it noise",
        "acknowledge": "✅ acknowledged it (escalation stopped)", "snooze": "💤 snoozed it"}
log = logging.getLogger("salesintel.slack")


def _click(action: dict, now: datetime) -> tuple[str, str, datetime | None]:
    """(alert_id, action name, snooze end) of one Block Kit action."""
    name = SLACK_ACTIONS[action["action_id"]]
    if action["action_id"] == SNOOZE_ACTION:
        alert_id, hours = action["selected_option"]["value"].rsplit("|", 1)
        return alert_id, name, now + timedelta(hours=float(hours))
    return action["value"], name, None


def _updated_blocks(blocks: list[dict], line: str) -> list[dict]:
    """The original message with a status line added (earlier lines kept)."""
    kept, lines = [], []
    for block in blocks or []:
        if block.get("block_id") == STATUS_BLOCK_ID:
            lines = [e.get("text", "") for e in block.get("elements", [])]
        else:
            kept.append(block)
    lines = (lines + [line])[-10:]  # a context block holds at most 10 elements
    return kept + [{"type": "context", "block_id": STATUS_BLOCK_ID,
                    "elements": [{"type": "mrkdwn", "text": t} for t in lines]}]


def build_slack_app(settings: ServiceSettings, alert_types=lambda alert_id: None) -> App:
    """The Bolt app; ``alert_types`` maps an alert id to its type (from the snapshot)."""
    client = WebClient(token=settings.bot_token, base_url=settings.slack_api_url) if settings.slack_api_url \
        else WebClient(token=settings.bot_token)
    options = {"token": settings.bot_token} if settings.bot_token else {
        # No bot token: clicks still work (replies go to the payload's response_url).
        "authorize": lambda enterprise_id, team_id, **_: AuthorizeResult(enterprise_id=enterprise_id,
                                                                         team_id=team_id)}
    app = App(signing_secret=settings.signing_secret, client=client, token_verification_enabled=False,
              logger=log, **options)
    inbox = settings.inbox_path

    @app.action(ACTION_PATTERN)
    def on_click(ack, body, action, respond, client):
        user = body.get("user") or {}
        actor = f"slack:{user.get('id') or user.get('username') or 'unknown'}"
        clicked_at = datetime.fromtimestamp(float(action.get("action_ts") or body.get("action_ts") or 0),
                                            tz=timezone.utc)
        try:
            alert_id, name, until = _click(action, clicked_at)
        except (KeyError, ValueError):
            ack()
            respond(response_type="ephemeral", replace_original=False, text="That button is not a salesintel action.")
            return
        alert_type = alert_types(alert_id)
        if alert_type is None:
            ack()
            respond(response_type="ephemeral", replace_original=False,
                    text=f"Not recorded: alert {alert_id} is unknown here (was the pipeline run on this home?).")
            return
        event_id = hashlib.sha256("|".join([str(body.get("team", {}).get("id")), actor, action["action_id"],
                                            alert_id, str(action.get("action_ts")), str(until)]).encode()).hexdigest()
        new = record_event(inbox, alert_id=alert_id, alert_type=alert_type, action=name, actor=actor,
                           source="slack", occurred_at=clicked_at, event_id=event_id[:32], until=until)
        ack()
        if not new:
            return  # the same click again (a retry or a replay): already recorded and shown
        who = f"<@{user['id']}>" if user.get("id") else user.get("username", "someone")
        line = f"{who} {DONE[name]}" + (f" until {until:%Y-%m-%d %H:%M} UTC" if until else "") + \
            f" · {clicked_at:%Y-%m-%d %H:%M} UTC"
        message = body.get("message") or {}
        blocks = _updated_blocks(message.get("blocks"), line)
        text = message.get("text") or f"Alert {alert_id}"
        if body.get("response_url"):
            respond(replace_original=True, blocks=blocks, text=text)
        elif settings.bot_token and body.get("channel") and message.get("ts"):
            client.chat_update(channel=body["channel"]["id"], ts=message["ts"], blocks=blocks, text=text)

    return app
