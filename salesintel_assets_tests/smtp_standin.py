"""A minimal SMTP server on 127.0.0.1 (ephemeral port) for tests: enough of
RFC 5321 for ``smtplib`` (EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET,
NOOP, QUIT). Accepted messages are parsed and kept; ``fail`` makes it refuse
every message with a temporary error (451); ``drop_after_accept`` (a count)
makes it keep the next messages and then close the connection instead of
answering 250 - the ambiguous end of an SMTP send."""

from __future__ import annotations

import base64
import socketserver
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from salesintel_assets_tests.loopback import LoopbackServer


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class SMTPStandIn(LoopbackServer):
    def __init__(self, user: str | None = None, password: str | None = None):
        self.user, self.password = user, password
        self.received: list[Received] = []
        self.fail = False
        self.drop_after_accept = 0
        self.auth_attempts: list[str] = []
        self.verbs: list[str] = []  # every command received, in order

    def message_ids(self) -> list[str]:
        """The Message-ID of every received message (a re-send shows twice)."""
        return [r.message["Message-ID"] for r in self.received]

    def _make_server(self, address):
        standin = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    _Session(standin, self.rfile, self.wfile).run()
                except ConnectionAbortedError:
                    pass  # the connection closes without an answer

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        return socketserver.ThreadingTCPServer(address, Handler)


class _Session:
    def __init__(self, standin: SMTPStandIn, rfile, wfile):
        self.s, self.rfile, self.wfile = standin, rfile, wfile
        self.mail_from: str | None = None
        self.rcpt: list[str] = []
        self.authed = standin.user is None

    def reply(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())
        self.wfile.flush()

    def run(self) -> None:
        self.reply("220 standin ESMTP ready")
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            self.s.verbs.append(verb)
            if verb == "EHLO":
                self.reply("250-standin")
                if self.s.user is not None:
                    self.reply("250-AUTH PLAIN")
                self.reply("250 8BITMIME")
            elif verb == "HELO":
                self.reply("250 standin")
            elif verb == "AUTH":
                self.auth(arg)
            elif verb == "MAIL":
                if not self.authed:
                    self.reply("530 authentication required")
                elif self.s.fail:
                    self.reply("451 temporary failure, try later")
                else:
                    self.mail_from, self.rcpt = arg.split(":", 1)[1].strip().strip("<>"), []
                    self.reply("250 OK")
            elif verb == "RCPT":
                if self.mail_from is None:
                    self.reply("503 need MAIL first")
                else:
                    self.rcpt.append(arg.split(":", 1)[1].strip().strip("<>"))
                    self.reply("250 OK")
            elif verb == "DATA":
                if not self.rcpt:
                    self.reply("503 need RCPT first")
                    continue
                self.reply("354 end data with <CR><LF>.<CR><LF>")
                self.data()
            elif verb == "RSET":
                self.mail_from, self.rcpt = None, []
                self.reply("250 OK")
            elif verb == "NOOP":
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 command not implemented")

    def auth(self, arg: str) -> None:
        mechanism, _, initial = arg.partition(" ")
        if mechanism.upper() != "PLAIN":
            self.reply("504 unrecognised authentication type")
            return
        if not initial:
            self.reply("334 ")
            initial = self.rfile.readline().decode().strip()
        try:
            _, user, password = base64.b64decode(initial).decode().split("\0")
        except ValueError:
            self.reply("501 malformed auth")
            return
        self.s.auth_attempts.append(user)
        if (user, password) == (self.s.user, self.s.password):
            self.authed = True
            self.reply("235 authentication succeeded")
        else:
            self.reply("535 authentication failed")

    def data(self) -> None:
        lines = []
        while True:
            raw = self.rfile.readline(1 << 20)
            if not raw or raw in (b".\r\n", b".\n"):
                break
            raw = raw[1:] if raw.startswith(b"..") else raw  # undo dot-stuffing
            lines.append(raw.replace(b"\r\n", b"\n"))          # local line endings, as an MTA stores it
        message = message_from_bytes(b"".join(lines), policy=policy.default)
        self.s.received.append(Received(self.mail_from, list(self.rcpt), message))
        self.mail_from, self.rcpt = None, []
        if self.s.drop_after_accept > 0:
            self.s.drop_after_accept -= 1
            raise ConnectionAbortedError("stand-in drops the connection after accepting")
        self.reply("250 OK queued")
