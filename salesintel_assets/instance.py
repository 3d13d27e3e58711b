"""The project's Dagster instance: where `salesintel run` records its runs,
materialisations, check results and freshness, so the Dagster UI opened on
the same folder (`salesintel ui`) shows them.

``DAGSTER_HOME`` when it is set (a deployment's instance, e.g. on PostgreSQL),
else ``<SALESINTEL_HOME>/dagster_home``, created on first use with the
embedded settings (local SQLite files, one run at a time).
"""

from __future__ import annotations

import os
from pathlib import Path

from salesintel_assets.domain.common.storage import DAGSTER_HOME_DIR

INSTANCE_FILE = "dagster.yaml"
EMBEDDED_SETTINGS = """\
# The embedded Dagster instance of this SALESINTEL_HOME (written by salesintel).
# Run history, schedules, sensors and freshness state live in this folder (SQLite).
# DuckDB allows one writing process per file: runs are queued and start one at a time.
run_queue:
  max_concurrent_runs: 1
schedules:
  use_threads: false
sensors:
  use_threads: false
telemetry:
  enabled: false
"""


def instance_folder(home: str | Path) -> Path:
    """DAGSTER_HOME when set, else the embedded instance beside the warehouse."""
    explicit = os.environ.get("DAGSTER_HOME", "").strip()
    return Path(explicit).resolve() if explicit else Path(home).resolve() / DAGSTER_HOME_DIR


def ensure_instance_folder(home: str | Path) -> Path:
    """The instance folder, with the embedded settings written when it has none."""
    folder = instance_folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    settings = folder / INSTANCE_FILE
    if not settings.exists() and not os.environ.get("DAGSTER_HOME", "").strip():
        settings.write_text(EMBEDDED_SETTINGS)
    return folder


def project_instance(home: str | Path):
    """The persistent Dagster instance for this home (see the module's doc)."""
    import dagster as dg

    folder = ensure_instance_folder(home)
    return dg.DagsterInstance.from_config(str(folder))
