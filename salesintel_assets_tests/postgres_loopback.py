"""A real PostgreSQL on 127.0.0.1 (free port) for tests and benchmarks of
the deployment's Dagster instance (``deploy/dagster.yaml``), started from the
server binaries that the ``pgserver`` package ships (no root, no apt).

pgserver initialises the data folder (as its own system user when run as
root, since PostgreSQL refuses to run as root) and starts the server on a
unix socket; it is then restarted listening on loopback TCP, as a real
deployment's database server would be reached.
"""

from __future__ import annotations

import socket
from pathlib import Path

USER = "postgres"
DATABASE = "postgres"
PASSWORD = "unused-trust-auth"  # the local server trusts loopback; a deployment sets a real one
STOP_WAIT_SECONDS = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LoopbackPostgres:
    """``with LoopbackPostgres(folder) as pg:`` then ``pg.environment()``
    gives the ``DAGSTER_POSTGRES_*`` variables that ``deploy/dagster.yaml``
    reads. ``stop()``/``start()`` restart the server on the same data."""

    def __init__(self, folder: Path):
        self.data = Path(folder) / "pgdata"
        self.port = free_port()
        self._user = None

    def __enter__(self) -> "LoopbackPostgres":
        import pgserver

        self.data.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(self.data, cleanup_mode=None)
        self._user = server.system_user
        self._ctl(["-w", "-m", "fast", "stop"])
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        except RuntimeError:
            # A loaded machine can outlast the fast stop's wait (its shutdown checkpoint);
            # the test is over, so the data need not survive: stop at once if still up.
            if self.running():
                self._ctl(["-w", "-m", "immediate", "stop"])

    def running(self) -> bool:
        try:
            self._ctl(["status"])
        except RuntimeError:  # pg_ctl status exits non-zero when no server runs
            return False
        return True

    def _ctl(self, args: list[str], timeout: int = 60) -> None:
        import subprocess

        import pgserver

        try:
            pgserver.pg_ctl(args, pgdata=self.data, user=self._user, timeout=timeout)
        except subprocess.CalledProcessError as failed:
            # pgserver sends pg_ctl's output to its logger, not the error: the server log says why
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed for {self.data} (exit {failed.returncode}); "
                               f"server log ends: {self.log_tail()}") from None

    def log_tail(self, lines: int = 15) -> str:
        log = self.data / "log"
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data}"
        try:
            self._ctl(["-w", "-o", options, "-l", str(self.data / "log"), "start"])
        except RuntimeError:
            # pg_ctl's wait has given up on a loaded machine (exit 1) while the server log said it was ready
            # to accept connections: starting is done when a server runs on the data
            if not self.running():
                raise

    def stop(self) -> None:
        # pg_ctl waits 60 s by default; on a loaded machine the shutdown checkpoint has outlasted it (a CI run)
        try:
            self._ctl(["-w", "-t", str(STOP_WAIT_SECONDS), "-m", "fast", "stop"], timeout=STOP_WAIT_SECONDS + 30)
        except RuntimeError:
            # pg_ctl's wait can give up on a loaded machine while the server still goes down:
            # stopping is done when no server runs on the data
            if self.running():
                raise

    def environment(self) -> dict[str, str]:
        return {"DAGSTER_POSTGRES_HOST": "127.0.0.1", "DAGSTER_POSTGRES_PORT": str(self.port),
                "DAGSTER_POSTGRES_USER": USER, "DAGSTER_POSTGRES_PASSWORD": PASSWORD,
                "DAGSTER_POSTGRES_DB": DATABASE}
