"""A threaded server on 127.0.0.1 with an ephemeral port, started and
stopped as a context manager: the base of the Slack and SMTP stand-ins."""

from __future__ import annotations

import socketserver
import threading


class LoopbackServer:
    """Subclasses implement ``_make_server(address)`` returning a socketserver."""

    _server: socketserver.BaseServer | None = None

    def _make_server(self, address: tuple[str, int]) -> socketserver.BaseServer:
        raise NotImplementedError

    def __enter__(self):
        self._server = self._make_server(("127.0.0.1", 0))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]
