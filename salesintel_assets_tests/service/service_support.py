"""Helpers for the service tests: signed Slack requests, a stand-in for
Slack's response_url, a live server for the browser."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

import duckdb
import pandas as pd
import uvicorn

from salesintel_assets.domain.serving.snapshot import publish_snapshot
from salesintel_assets_tests.loopback import LoopbackServer

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def block_actions(alert_id: str, action_id: str, user: str, action_ts: float, response_url: str | None,
                  snooze_hours: int | None = None) -> dict:
    action = {"type": "button", "action_id": action_id, "block_id": f"salesintel_feedback:{alert_id}",
              "value": alert_id, "action_ts": f"{action_ts:.6f}"}
    if snooze_hours is not None:
        action = {"type": "static_select", "action_id": action_id, "block_id": f"salesintel_feedback:{alert_id}",
                  "selected_option": {"text": {"type": "plain_text", "text": "1 day"},
                                      "value": f"{alert_id}|{snooze_hours}"}, "action_ts": f"{action_ts:.6f}"}
    payload = {"type": "block_actions", "team": {"id": "T1", "domain": "acme"},
               "user": {"id": user, "username": user.lower(), "team_id": "T1"},
               "api_app_id": "A1", "token": "legacy", "trigger_id": "1.2.3",
               "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C1"},
               "channel": {"id": "C1", "name": "alerts"},
               "message": {"type": "message", "ts": "1700000000.000100", "text": f"Alert {alert_id}",
                           "blocks": [{"type": "section", "block_id": "s1",
                                       "text": {"type": "mrkdwn", "text": "*Deal stalled*"}}]},
               "actions": [action]}
    if response_url:
        payload["response_url"] = response_url
    return payload


def signed(payload: dict, secret: str = SECRET, timestamp: int | None = None) -> tuple[bytes, dict]:
    """Form body and headers exactly as Slack signs them (v0 HMAC-SHA256)."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return body, {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature,
                  "Content-Type": "application/x-www-form-urlencoded"}


class ResponseUrlStandIn(LoopbackServer):
    """Records what the service posts to Slack's response_url (a message update)."""

    def __init__(self):
        self.received: list[dict] = []
        self.arrived = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/actions/T1/1/abc"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[dict]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
        return list(self.received)

    def _make_server(self, address):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with standin.arrived:
                    standin.received.append(json.loads(body))
                    standin.arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

        return ThreadingHTTPServer(address, Handler)


class LiveServer:
    """The real ASGI app on an ephemeral port in a thread (for the browser)."""

    def __init__(self, app):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def with_clean_up_day(home, day, deals: int = 300) -> int:
    """Add to the warehouse under ``home`` ``deals`` stale deals closed lost
    on ``day`` (copies of closed deals created before it: a CRM's sweep of
    deals nobody worked), publish a snapshot as of 2026-06-30 and return how
    many deals closed that day."""
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        con.execute("INSERT INTO main.fact_deals SELECT * REPLACE ('CU-' || deal_id AS deal_id, 'Lost' AS outcome, "
                    "FALSE AS is_won, CAST(? AS TIMESTAMP_NS) AS closed_date) FROM main.fact_deals "
                    "WHERE NOT is_open AND created_date < ? ORDER BY deal_id LIMIT ?", [day, day, deals])
        publish_snapshot(con, home, pd.Timestamp("2026-06-30"))
        return con.execute("SELECT count(*) FROM main.fact_deals WHERE closed_date = ?", [day]).fetchone()[0]
    finally:
        con.close()
