"""A local stand-in for Slack's Web API on 127.0.0.1 (ephemeral port), for
tests that drive the real ``slack_sdk`` client.

It speaks the methods the notifier uses: ``chat.postMessage``,
``users.lookupByEmail``, ``conversations.open`` and ``conversations.history``
(with message metadata, paged by ``limit``/``cursor``). Every request is
recorded. Faults:

- ``script``: responses for the next ``chat.postMessage`` calls: ``"ok"``,
  ``("429", retry_after)``, ``"500"`` and ``"reset"`` (nothing posted), and
  the ambiguous ones that post the message first: ``"accept-500"``,
  ``"accept-reset"`` (the connection is reset instead of an answer) and
  ``("accept-delay", seconds)`` (the answer comes after the client gave up);
- ``history``: ``"ok"``, ``"missing_scope"`` (a bot without the history
  scopes) or ``"500"``;
- ``outage``: every call answers HTTP 500.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from salesintel_assets_tests.loopback import LoopbackServer

RESET, DELAY = "x-standin-reset", "x-standin-delay"  # private markers from handle() to the HTTP handler


@dataclass
class Request:
    method: str
    api: str
    headers: dict
    params: dict
    at: float = field(default_factory=time.monotonic)


class SlackStandIn(LoopbackServer):
    def __init__(self, token: str = "xoxb-test-token", unknown_emails: tuple[str, ...] = ()):
        self.token = token
        self.unknown_emails = set(unknown_emails)
        self.requests: list[Request] = []
        self.posted: list[dict] = []     # accepted chat.postMessage calls, in order
        self.script: list = []           # responses for the next chat.postMessage calls
        self.outage = False              # every call answers HTTP 500
        self.history = "ok"              # "ok" | "missing_scope" | "500"
        self.latency = 0.0               # seconds before and after each chat.postMessage is accepted
        self._lock = threading.Lock()
        self._count = 0

    def _make_server(self, address):
        return ThreadingHTTPServer(address, _handler(self))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # --- helpers for tests ----------------------------------------------------------
    @staticmethod
    def user_id(email: str) -> str:
        return "U" + hashlib.sha1(email.encode()).hexdigest()[:8].upper()

    @classmethod
    def dm_channel(cls, email: str) -> str:
        return "D" + cls.user_id(email)[1:]

    def calls(self, api: str) -> list[Request]:
        return [r for r in self.requests if r.api == api]

    def messages_to(self, channel: str) -> list[dict]:
        return [m for m in self.posted if m["channel"] == channel]

    # --- the API ----------------------------------------------------------------------
    def handle(self, method: str, api: str, headers: dict, params: dict) -> tuple[int, dict, dict]:
        with self._lock:
            self.requests.append(Request(method, api, headers, params))
            if self.outage:
                return 500, {}, {"ok": False, "error": "internal_error"}
            if headers.get("authorization") != f"Bearer {self.token}":
                return 200, {}, {"ok": False, "error": "invalid_auth"}
            if api == "chat.postMessage":
                return self._post(params)
            if api == "users.lookupByEmail":
                email = params.get("email", "")
                if email in self.unknown_emails:
                    return 200, {}, {"ok": False, "error": "users_not_found"}
                return 200, {}, {"ok": True, "user": {"id": self.user_id(email), "profile": {"email": email}}}
            if api == "conversations.open":
                user = params.get("users", "")
                return 200, {}, {"ok": True, "channel": {"id": "D" + user[1:]}}
            if api == "conversations.history":
                return self._history(params)
            return 200, {}, {"ok": False, "error": "unknown_method"}

    def delivered_ids(self) -> list[str]:
        """The delivery id of every posted message (a duplicate shows twice)."""
        return [((m.get("metadata") or {}).get("event_payload") or {}).get("delivery_id") for m in self.posted]

    def _history(self, params: dict) -> tuple[int, dict, dict]:
        if self.history == "missing_scope":
            return 200, {}, {"ok": False, "error": "missing_scope", "needed": "channels:history"}
        if self.history == "500":
            return 500, {}, {"ok": False, "error": "internal_error"}
        channel = params.get("channel")
        oldest = float(params.get("oldest") or 0)
        found = [m for m in reversed(self.posted) if m["channel"] == channel and float(m["ts"]) >= oldest]
        start, limit = int(params.get("cursor") or 0), int(params.get("limit") or 100)
        keep_metadata = str(params.get("include_all_metadata")).lower() in ("1", "true")
        messages = [{"type": "message", "ts": m["ts"], "text": m["text"],
                     **({"metadata": m["metadata"]} if keep_metadata and m.get("metadata") else {})}
                    for m in found[start:start + limit]]
        more = start + limit < len(found)
        return 200, {}, {"ok": True, "messages": messages, "has_more": more,
                         "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _post(self, params: dict) -> tuple[int, dict, dict]:
        action = self.script.pop(0) if self.script else "ok"
        if isinstance(action, tuple) and action[0] == "429":
            return 429, {"Retry-After": str(action[1])}, {"ok": False, "error": "ratelimited"}
        if action == "500":
            return 500, {}, {"ok": False, "error": "internal_error"}
        if action == "reset":
            return 0, {RESET: True}, {}
        status, extra, payload = self._accept(params)
        if action == "accept-500":
            return 500, {}, {"ok": False, "error": "internal_error"}
        if action == "accept-reset":
            return 0, {RESET: True}, {}
        if isinstance(action, tuple) and action[0] == "accept-delay":
            return status, {DELAY: action[1]}, payload
        return status, extra, payload

    def _accept(self, params: dict) -> tuple[int, dict, dict]:
        if not params.get("channel"):
            return 200, {}, {"ok": False, "error": "channel_not_found"}
        self._count += 1
        ts = f"{int(time.time())}.{self._count:06d}"
        blocks = params.get("blocks")
        message = {"channel": params["channel"], "ts": ts, "text": params.get("text"),
                   "blocks": json.loads(blocks) if isinstance(blocks, str) else blocks,
                   "metadata": params.get("metadata")}
        self.posted.append(message)
        return 200, {}, {"ok": True, "channel": params["channel"], "ts": ts,
                         "message": {"text": params.get("text"), "ts": ts}}


def _handler(standin: SlackStandIn):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _params(self) -> dict:
            url = urlparse(self.path)
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            kind = self.headers.get("Content-Type", "")
            if body and "json" in kind:
                params.update(json.loads(body))
            elif body:
                params.update({k: v[0] for k, v in parse_qs(body.decode()).items()})
            if isinstance(params.get("metadata"), str):
                params["metadata"] = json.loads(params["metadata"])
            return params

        def _serve(self, method: str) -> None:
            api = urlparse(self.path).path.rsplit("/", 1)[-1]
            headers = {k.lower(): v for k, v in self.headers.items()}
            params = self._params()
            pause = standin.latency if api == "chat.postMessage" else 0
            time.sleep(pause)
            status, extra, payload = standin.handle(method, api, headers, params)
            time.sleep(pause)
            if extra.pop(RESET, False):  # an RST instead of an answer
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                return
            time.sleep(extra.pop(DELAY, 0))
            body = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                self.close_connection = True  # the client gave up waiting

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler
