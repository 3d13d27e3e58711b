"""The live delivery ledger: a small SQLite file of its own, and the lock
that lets one delivery run at a time per home.

Why not commit each row straight into ``warehouse.duckdb``: DuckDB allows
one process per file when one of them writes, so any other program that has
the warehouse open (the ``duckdb`` shell, a notebook, a second run) makes a
commit fail - right after Slack accepted a message, the worst moment. SQLite
in WAL mode lets readers and one writer share the file, and each commit is
durable on its own (``synchronous=FULL``). The warehouse table
``alert_deliveries`` is a mirror written at the end of each delivery run
(and waits for a busy warehouse); when the mirror is behind, the next run
brings it up to date. The SQLite ledger is the truth for sending.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd
from filelock import FileLock, Timeout

from salesintel_assets.domain.alerts.delivery_plan import LEDGER_COLUMNS, LEDGER_TIMES, normalise_ledger
from salesintel_assets.domain.common.storage import DELIVERY_LEDGER_FILE, DELIVERY_LOCK_FILE

LEDGER_FILE = DELIVERY_LEDGER_FILE
LOCK_FILE = DELIVERY_LOCK_FILE
OWNER_FILE = f"{DELIVERY_LOCK_FILE}.owner"


class DeliveryBusy(RuntimeError):
    """Another delivery run holds the home's delivery lock."""


def _plain(value):
    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


class LedgerStore:
    """One row per delivery id, stored as JSON; upserted one row per commit."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / LEDGER_FILE
        self._con: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._con is None:
            con = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("CREATE TABLE IF NOT EXISTS deliveries (delivery_id TEXT PRIMARY KEY, row TEXT NOT NULL, "
                        "status TEXT NOT NULL, updated_at TEXT NOT NULL)")
            self._con = con
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def is_empty(self) -> bool:
        return self._connection().execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0

    def read(self) -> pd.DataFrame:
        rows = [json.loads(r) for (r,) in self._connection().execute("SELECT row FROM deliveries ORDER BY rowid")]
        if not rows:
            return normalise_ledger(None)
        frame = pd.DataFrame(rows, columns=LEDGER_COLUMNS)
        for c in LEDGER_TIMES:
            frame[c] = pd.to_datetime(frame[c], format="ISO8601")
        return normalise_ledger(frame)

    def _values(self, row: dict) -> tuple:
        record = {c: _plain(row.get(c)) for c in LEDGER_COLUMNS}
        for c in LEDGER_TIMES:
            record[c] = record[c] if record[c] is None else str(record[c])
        return (record["delivery_id"], json.dumps(record), record["status"],
                datetime.now(timezone.utc).isoformat(timespec="microseconds"))

    def commit(self, row: dict) -> None:
        """Store one row's current state durably (replacing its earlier state)."""
        self._connection().execute("INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?)", self._values(row))

    def commit_many(self, frame: pd.DataFrame) -> None:
        """Store many rows in one transaction (the planned, pending rows)."""
        if frame is None or frame.empty:
            return
        con = self._connection()
        con.execute("BEGIN IMMEDIATE")
        try:
            con.executemany("INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?)",
                            [self._values(r) for r in frame.to_dict("records")])
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")


def _holder(owner: Path) -> str:
    try:
        return owner.read_text(encoding="utf-8").strip() or "another process"
    except OSError:
        return "another process"


@contextmanager
def exclusive_delivery(folder: Path | str, wait_seconds: float,
                       on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the home's delivery lock (an OS file lock: a killed run releases
    it at once). Waits up to ``wait_seconds`` for another run to finish,
    telling ``on_wait`` who it waits for."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_FILE))
    owner = folder / OWNER_FILE
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            on_wait(f"another delivery run ({_holder(owner)}) holds {folder / LOCK_FILE}: "
                    f"waiting up to {wait_seconds:g} s for it to finish")
        try:
            lock.acquire(timeout=wait_seconds)
        except Timeout:
            holder = _holder(owner)
            raise DeliveryBusy(
                f"another delivery run ({holder}) holds {folder / LOCK_FILE}; this run waited {wait_seconds:g} s "
                "and sent nothing: its messages go out with the next run once that one has finished") from None
    try:
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        owner.write_text(f"pid {os.getpid()}, started {started}", encoding="utf-8")
        yield
    finally:
        lock.release()

