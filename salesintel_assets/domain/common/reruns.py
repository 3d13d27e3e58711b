"""What a re-run must redo: the stamp of everything the analytics depend on.

A run's *stamp* digests the stored raw data's version (the id of the last
pull that changed it), the analysis date, the rules, the sales org and the
code. The pull records the stamp it handed downstream (``pending``); a run
that finished every step and check records it as ``completed``. When a pull
brings nothing new and the stamp equals the completed one, every table
downstream of the pull already is what a full recompute would give, so the
pull yields nothing and Dagster skips those steps.

The state lives in the warehouse (table ``pipeline_state``), so it travels
with the data it describes (a restored backup, another tenant's file).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pandas as pd
from pydantic import BaseModel

from salesintel_assets.domain.common.rules import Rules
from salesintel_assets.domain.common.tables import TABLE_SCHEMA, table_exists

STATE_TABLE = "pipeline_state"
RAW_VERSION = "raw_version"
PENDING = "pending_stamp"
PENDING_RUN = "pending_run_id"
COMPLETED = "completed_stamp"
COMPLETED_WARNINGS = "completed_failed_warnings"
SERVING = "serving_stamp"
SOURCE = "source_fingerprint"
CODE_SUFFIXES = (".py", ".yaml", ".yml", ".sql", ".json")
PACKAGE_DIR = Path(__file__).resolve().parents[2]   # salesintel_assets


def digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:20]


def code_fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """Changes when any source or packaged rules file of the package changes."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(package_dir).rglob("*") if p.suffix in CODE_SUFFIXES and p.is_file()
                       and "__pycache__" not in p.parts):
        h.update(str(path.relative_to(package_dir)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:20]


def rules_digest(rules: BaseModel) -> str:
    """The digest of a rules model (the whole file or one section, such as ``risk``)."""
    return digest(json.dumps(rules.model_dump(mode="json"), sort_keys=True))


def frame_digest(frame: pd.DataFrame | None) -> str:
    """Order-independent digest of a frame's content (None and empty alike)."""
    if frame is None or frame.empty:
        return "empty"
    rows = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
    return digest(",".join(map(str, frame.columns)), len(frame), int(rows.sum()), int((rows * 31).sum()))


def file_digest(path: str | Path | None) -> str:
    """Digest of a file's bytes ("none" without a file)."""
    if not path:
        return "none"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()[:20]


def run_stamp(raw_version: str | None, as_of: pd.Timestamp, rules: Rules, org: pd.DataFrame | None,
              code: str) -> str:
    return digest(raw_version, pd.Timestamp(as_of).date(), rules_digest(rules), frame_digest(org), code)


def read_state(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    if not table_exists(con, STATE_TABLE):
        return {}
    return dict(con.execute(f"SELECT key, value FROM {TABLE_SCHEMA}.{STATE_TABLE}").fetchall())


def write_state(con: duckdb.DuckDBPyConnection, **values: str) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS {TABLE_SCHEMA}.{STATE_TABLE} "
                "(key VARCHAR PRIMARY KEY, value VARCHAR, updated_at TIMESTAMP)")
    for key, value in values.items():
        con.execute(f"INSERT OR REPLACE INTO {TABLE_SCHEMA}.{STATE_TABLE} VALUES (?, ?, now()::TIMESTAMP)",
                    [key, value])


def mark_completed(con: duckdb.DuckDBPyConnection, run_id: str, failed_warnings: list | None = None) -> bool:
    """Record that the run which received the pending stamp finished every
    step (its failed warning checks kept, to be reported again by runs that
    skip); False when another run has taken the stamp over since."""
    state = read_state(con)
    if state.get(PENDING_RUN) != run_id or not state.get(PENDING):
        return False
    write_state(con, **{COMPLETED: state[PENDING], COMPLETED_WARNINGS: json.dumps(failed_warnings or [])})
    return True


def completed_warnings(con: duckdb.DuckDBPyConnection) -> list:
    return [tuple(w) for w in json.loads(read_state(con).get(COMPLETED_WARNINGS) or "[]")]


def rows_change(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, key: str,
                columns: list[str] | None = None) -> bool:
    """Whether upserting ``frame`` by ``key`` would change the stored rows
    (compared on ``columns``, default all of the frame's)."""
    if frame.empty:
        return False
    if not table_exists(con, table):
        return True
    columns = columns or list(frame.columns)
    quoted = ", ".join(f'"{c}"' for c in columns)
    con.register("_incoming", frame[columns])
    try:
        differ = con.execute(
            f"""SELECT EXISTS (SELECT {quoted} FROM _incoming EXCEPT ALL
                               SELECT {quoted} FROM {TABLE_SCHEMA}."{table}"
                               WHERE "{key}" IN (SELECT "{key}" FROM _incoming))
                    OR EXISTS (SELECT {quoted} FROM {TABLE_SCHEMA}."{table}"
                               WHERE "{key}" IN (SELECT "{key}" FROM _incoming)
                               EXCEPT ALL SELECT {quoted} FROM _incoming)""").fetchall()[0][0]
    finally:
        con.unregister("_incoming")
    return bool(differ)
