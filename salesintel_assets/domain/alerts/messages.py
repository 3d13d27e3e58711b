"""Rendering: every message as a subject, a plain text (email, outbox, Slack's
notification fallback) and Slack Block Kit blocks (built with slack_sdk's
Block Kit models, which check Slack's limits, and stored as dicts).

Alerts read like the design's examples: the title, the facts, why it matters,
the root cause, numbered actions, the money at stake, and buttons to rate
the alert (the feedback loop), acknowledge it (stops escalation) or snooze
it for a chosen time (``salesintel serve`` receives the clicks). The
anomaly's own long explanation stays in the alert's content (``content_json``) but is not repeated in the message:
"why this matters" and the root cause already carry it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from slack_sdk.models.blocks import (
    ActionsBlock, ButtonElement, ContextBlock, DividerBlock, HeaderBlock, MarkdownTextObject, Option,
    PlainTextObject, SectionBlock, StaticSelectElement,
)

PRIORITY_MARK = {"P1": "🔴", "P2": "🟠", "P3": "🔵"}
FEEDBACK_ACTIONS = {"helpful": "salesintel_feedback_helpful", "noise": "salesintel_feedback_noise"}
ACKNOWLEDGE_ACTION, SNOOZE_ACTION = "salesintel_acknowledge", "salesintel_snooze"
# Slack action_id -> the feedback inbox's action name
SLACK_ACTIONS = {**{v: k for k, v in FEEDBACK_ACTIONS.items()}, ACKNOWLEDGE_ACTION: "acknowledge",
                 SNOOZE_ACTION: "snooze"}
SNOOZE_CHOICES = {"4 hours": 4, "1 day": 24, "1 week": 168, "30 days": 720}
STATUS_BLOCK_ID = "salesintel_status"  # the "who did what" line the service adds after a click
# Block Kit limits: header text 150, section text 3000, 10 fields of 2000, 50 blocks.
HEADER_MAX, SECTION_MAX, FIELD_MAX = 150, 3000, 2000


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    blocks: list[dict]

    @property
    def blocks_json(self) -> str:
        return json.dumps(self.blocks, ensure_ascii=False, sort_keys=True)


def escape(text: str) -> str:
    """Slack mrkdwn control characters (&, <, >) in our own data."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _header(text: str) -> dict:
    return HeaderBlock(text=PlainTextObject(text=_cut(text, HEADER_MAX), emoji=True)).to_dict()


def _section(markdown: str) -> dict:
    return SectionBlock(text=MarkdownTextObject(text=_cut(markdown, SECTION_MAX))).to_dict()


def _context(markdown: str) -> dict:
    return ContextBlock(elements=[MarkdownTextObject(text=_cut(markdown, SECTION_MAX))]).to_dict()


def _fields(pairs) -> dict:
    return SectionBlock(fields=[MarkdownTextObject(text=_cut(f"*{escape(label)}*\n{escape(value)}", FIELD_MAX))
                                for label, value in pairs]).to_dict()


def _divider() -> dict:
    return DividerBlock().to_dict()


def headline(content: dict) -> str:
    return f"[{content['priority']}] {content['type_name']}: {content['title']}"


def feedback_hint(alert_id: str) -> str:
    return f"Alert {alert_id} · rate it: salesintel feedback {alert_id} helpful|noise"


def _text_sections(content: dict) -> list[str]:
    parts = ["\n".join(f"{label}: {value}" for label, value in content["facts"])]
    parts.append("Why this matters:\n" + "\n".join(content["why"]))
    if content.get("root_cause"):
        parts.append("Root cause:\n" + "\n".join(content["root_cause"]))
    parts.append("Recommended actions:\n" + "\n".join(f"{i}. {a}" for i, a in enumerate(content["actions"], 1)))
    parts.append(f"Money at stake: {content['money']}")
    if content.get("also"):
        parts.append("Also seen on this subject:\n" + "\n".join(f"- {x}" for x in content["also"]))
    return parts


def _body_blocks(content: dict) -> list[dict]:
    blocks = [_section(f"*{escape(content['title'])}*"), _fields(content["facts"][:10])]
    blocks.append(_section("*Why this matters*\n" + "\n".join(escape(w) for w in content["why"])))
    if content.get("root_cause"):
        blocks.append(_section("*Root cause*\n" + "\n".join(escape(c) for c in content["root_cause"])))
    blocks.append(_section("*Recommended actions*\n" + "\n".join(
        f"{i}. {escape(a)}" for i, a in enumerate(content["actions"], 1))))
    blocks.append(_section(f"*Money at stake*\n{escape(content['money'])}"))
    if content.get("also"):
        blocks.append(_context("Also seen: " + "; ".join(escape(x) for x in content["also"])))
    return blocks


def _feedback_blocks(alert_id: str) -> list[dict]:
    buttons = [ButtonElement(text=PlainTextObject(text=label), action_id=FEEDBACK_ACTIONS[verdict], value=alert_id,
                             style=style)
               for verdict, label, style in (("helpful", "Helpful", "primary"), ("noise", "Noise", "danger"))]
    buttons.append(ButtonElement(text=PlainTextObject(text="Acknowledge"), action_id=ACKNOWLEDGE_ACTION,
                                 value=alert_id))
    snooze = StaticSelectElement(placeholder=PlainTextObject(text="Snooze"), action_id=SNOOZE_ACTION,
                                 options=[Option(text=PlainTextObject(text=label), value=f"{alert_id}|{hours}")
                                          for label, hours in SNOOZE_CHOICES.items()])
    return [ActionsBlock(block_id=f"salesintel_feedback:{alert_id}", elements=[*buttons, snooze]).to_dict(),
            _context(escape(feedback_hint(alert_id)))]


def render_alert(content: dict, alert_id: str) -> Message:
    mark = PRIORITY_MARK.get(content["priority"], "")
    text = "\n\n".join([f"{mark} {headline(content)}".strip()] + _text_sections(content) + [feedback_hint(alert_id)])
    blocks = ([_header(f"{mark} {content['priority']} · {content['type_name']}".strip())]
              + _body_blocks(content) + _feedback_blocks(alert_id))
    return Message(subject=headline(content), text=text, blocks=blocks)


def render_resolved(content: dict, alert_id: str, first_seen: str, resolved_at: str) -> Message:
    line = f"Resolved: {headline(content)}"
    detail = f"The condition cleared as of {resolved_at} (open since {first_seen}). No action needed."
    text = f"✅ {line}\n\n{detail}\n\nAlert {alert_id}"
    blocks = [_header(f"✅ Resolved · {content['priority']} · {content['type_name']}"),
              _section(f"*{escape(content['title'])}*\n{escape(detail)}"),
              _context(f"Alert {alert_id}")]
    return Message(subject=line, text=text, blocks=blocks)


def render_escalation(content: dict, alert_id: str, level: int, hours: float, first_recipients: str) -> Message:
    note = (f"Escalated (level {level}): nobody acknowledged this {content['priority']} alert within "
            f"{hours:g} h of sending it to {first_recipients}.")
    text = "\n\n".join([f"⏫ {headline(content)}", note] + _text_sections(content) + [feedback_hint(alert_id)])
    blocks = ([_header(f"⏫ Escalated · {content['priority']} · {content['type_name']}"), _section(escape(note))]
              + _body_blocks(content) + _feedback_blocks(alert_id))
    return Message(subject=f"Escalated: {headline(content)}", text=text, blocks=blocks)


def render_digest(items: list[dict], cadence: str, period: str, recipient_name: str, max_items: int) -> Message:
    """``items``: dicts with alert_id, content, delivery_reason."""
    title = f"{cadence.capitalize()} alert digest for {recipient_name} · {period}"
    shown, hidden = items[:max_items], len(items) - min(len(items), max_items)
    lines, blocks = [], [_header(f"{cadence.capitalize()} alert digest · {period}"),
                         _section(f"{len(items)} alert{'s' if len(items) != 1 else ''} for {escape(recipient_name)}")]
    for i, item in enumerate(shown, 1):
        c = item["content"]
        why = c["why"][0] if c["why"] else ""
        first_action = c["actions"][0] if c["actions"] else ""
        lines.append(f"{i}. {headline(c)}\n   Why: {why}\n   Do first: {first_action}\n"
                     f"   Money at stake: {c['money']}\n   {feedback_hint(item['alert_id'])}")
        blocks.append(_divider())
        blocks.append(_section(f"*{i}. [{c['priority']}] {escape(c['type_name'])}: {escape(c['title'])}*\n"
                               f"{escape(why)}\n*Do first:* {escape(first_action)}\n"
                               f"*Money at stake:* {escape(c['money'])}"))
        blocks.append(_context(escape(feedback_hint(item["alert_id"]))))
    if hidden:
        lines.append(f"... and {hidden} more (see the alerts table).")
        blocks.append(_context(f"… and {hidden} more (see the alerts table)."))
    text = title + "\n\n" + "\n\n".join(lines)
    return Message(subject=title, text=text, blocks=blocks)


def render_run_failure(job_name: str, run_id: str, error: str) -> Message:
    line = f"Run failed: {job_name} ({run_id})"
    detail = _cut(error.strip() or "no error message", 1500)
    text = f"🚨 {line}\n\n{detail}\n\nOpen the run in the Dagster UI to re-execute it."
    blocks = [_header(f"🚨 {line}"), _section(f"```{escape(detail)}```"),
              _context("Open the run in the Dagster UI to re-execute it.")]
    return Message(subject=line, text=text, blocks=blocks)
