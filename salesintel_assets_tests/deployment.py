"""The unattended deployment of ``deploy/`` run on this machine, for the
daemon test and the event-latency benchmark: the instance file
``deploy/dagster.yaml`` on a loopback PostgreSQL, the code location as its
own gRPC process (``dagster code-server start``, as in the compose file and
the systemd units) and a real ``dagster-daemon``. A CRM export written from
the sample CRM plays the CRM; ``stall_a_deal`` changes one deal in it.

Processes are started in their own session and stopped by their process
group id (SIGINT, the signal Dagster's processes shut down cleanly on).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
INSTANCE_FILE = REPO / "deploy" / "dagster.yaml"
AS_OF = pd.Timestamp("2026-06-30")
SLACK_TOKEN = "xoxb-deployment-test"
LOCATION = "salesintel"


def wait_for(condition, what: str, timeout: float, every: float = 0.5):
    """Poll ``condition`` until it returns something truthy; fail with one
    sentence naming what did not happen within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


def write_crm_export(folder: Path, n_deals: int = 1500, seed: int = 7) -> tuple[Path, Path]:
    """A CRM export and its sales org (reps with e-mail addresses, so Slack
    finds them) from a generated sample world, as of ``AS_OF``."""
    from salesintel_assets.domain.ingestion.pulls import as_export_text
    from salesintel_assets.sources import sample_crm

    world = sample_crm.snapshot(sample_crm.generate_world(n_deals=n_deals, seed=seed, end_date=AS_OF.date()))
    folder.mkdir(parents=True, exist_ok=True)
    deals, org = folder / "deals.csv", folder / "org.csv"
    as_export_text(world.deals).to_csv(deals, index=False)
    world.reps.to_csv(org, index=False)
    return deals, org


def reps_with_p1(posted: list[dict]) -> set[str]:
    """Reps named by the P1 messages Slack received (for the P1 throttle)."""
    return {rep for m in posted for rep in re.findall(r"\((rep_\d+)\)", m.get("text") or "")}


def stall_a_deal(export: Path, avoid_reps: set[str]) -> str:
    """Change one recently moved open deal in the export so it has sat 200
    days in its stage with $480,000 at stake: a Deal Velocity Crisis (P1,
    sent at once). A rep whose P1s the throttle may already hold is avoided."""
    deals = pd.read_csv(export, dtype=str, keep_default_na=False)
    entered = pd.to_datetime(deals["stage_entered_date"], errors="coerce")
    fresh = deals["outcome"].isin(["", "Open"]) & (entered > AS_OF - pd.Timedelta(days=20)) \
        & ~deals["sales_rep_id"].isin(avoid_reps) & ~deals["deal_id"].duplicated(keep=False)
    row = deals.index[fresh][0]
    deals.loc[row, ["created_date", "stage_entered_date", "deal_amount", "last_modified"]] = [
        str((AS_OF - pd.Timedelta(days=300)).date()), str((AS_OF - pd.Timedelta(days=200)).date()),
        "480000", f"{AS_OF.date()}T12:00:00"]
    partial = export.with_suffix(".partial")
    deals.to_csv(partial, index=False)
    partial.replace(export)  # the CRM changes at once, never half-written
    return deals.loc[row, "deal_id"]


class Deployment:
    """``deploy/``'s Dagster processes on loopback: the instance folder holds
    ``deploy/dagster.yaml`` verbatim and a workspace naming the gRPC port."""

    def __init__(self, folder: Path, environment: dict[str, str],
                 location_module: str = "salesintel_assets.definitions"):
        from salesintel_assets_tests.postgres_loopback import free_port

        self.folder = Path(folder)
        self.dagster_home = self.folder / "dagster_home"
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(INSTANCE_FILE, self.dagster_home / "dagster.yaml")
        self.port = free_port()
        self.workspace = self.dagster_home / "workspace.yaml"
        self.workspace.write_text(f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {self.port}\n"
                                  f"      location_name: {LOCATION}\n")
        self.environment = {**os.environ, **environment, "DAGSTER_HOME": str(self.dagster_home),
                            "PYTHONPATH": str(REPO)}
        self.module = location_module
        self.code_server: subprocess.Popen | None = None
        self.daemon: subprocess.Popen | None = None

    def _bin(self, name: str) -> str:
        return str(Path(sys.executable).parent / name)

    def _start(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "ab")
        return subprocess.Popen(command, env=self.environment, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def start_code_server(self, timeout: float = 120) -> None:
        self.launch_code_server()
        self.wait_for_code_server(timeout)

    def launch_code_server(self) -> None:
        """Start it without waiting (it loads the definitions meanwhile)."""
        self.code_server = self._start("code_server", [
            self._bin("dagster"), "code-server", "start", "--host", "127.0.0.1", "--port", str(self.port),
            "--module-name", self.module, "--location-name", LOCATION])

    def wait_for_code_server(self, timeout: float = 120) -> None:
        wait_for(self._code_server_serves, f"the code server on port {self.port} serving its definitions "
                 f"(log: {self.folder / 'code_server.log'})", timeout, every=2)

    def _code_server_serves(self) -> bool:
        if self.code_server.poll() is not None:
            raise AssertionError(f"the code server exited with {self.code_server.returncode}:\n"
                                 f"{self.log('code_server')}")
        check = subprocess.run([self._bin("dagster"), "api", "grpc-health-check", "--host", "127.0.0.1",
                                "--port", str(self.port)], env=self.environment, capture_output=True)
        return check.returncode == 0

    def start_daemon(self) -> None:
        self.daemon = self._start("daemon", [self._bin("dagster-daemon"), "run", "--workspace", str(self.workspace)])

    def stop_daemon(self) -> None:
        self._stop(self.daemon)
        self.daemon = None

    def stop(self) -> None:
        self._stop(self.daemon)
        # The code server keeps no state of its own (runs are over by now): a short grace, then it is killed.
        self._stop(self.code_server, signal.SIGTERM, grace=5)

    @staticmethod
    def _stop(process: subprocess.Popen | None, how: int = signal.SIGINT, grace: float = 30) -> None:
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, how)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def instance(self):
        """The deployment's instance as the webserver sees it (PostgreSQL;
        the caller's environment carries the DAGSTER_POSTGRES_* variables)."""
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.dagster_home))


def deployment_environment(home: Path, export: Path, org: Path, slack_base_url: str) -> dict[str, str]:
    """The run-time contract of the code location for the CRM export, with
    Slack at the stand-in."""
    return {"SALESINTEL_HOME": str(home), "SALESINTEL_SOURCE": "csv", "SALESINTEL_CSV": str(export),
            "SALESINTEL_ORG": str(org), "SALESINTEL_AS_OF": str(AS_OF.date()),
            "SLACK_BOT_TOKEN": SLACK_TOKEN, "SLACK_BASE_URL": slack_base_url, "MPLBACKEND": "Agg"}
