"""The append-only audit log of every access to deal-level data: who (token,
role, rep), what (the view or endpoint and the deal or list), the answer and
how many deals it showed. SQLite triggers refuse updates and deletes."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from salesintel_assets.service.tokens import Principal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, token_id TEXT NOT NULL, role TEXT NOT NULL,
    rep_id TEXT, action TEXT NOT NULL, resource TEXT, status INTEGER NOT NULL, deals INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class AuditLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(str(self.path), timeout=10)) as con:
            con.executescript(_SCHEMA)

    def record(self, who: Principal, action: str, resource: str | None, status: int, deals: int) -> None:
        with closing(sqlite3.connect(str(self.path), timeout=10)) as con, con:
            con.execute("INSERT INTO audit (at, token_id, role, rep_id, action, resource, status, deals) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [datetime.now(timezone.utc).isoformat(), who.token_id, who.role, who.rep_id, action,
                         resource, int(status), int(deals)])

    def read(self) -> pd.DataFrame:
        with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as con:
            return pd.read_sql_query("SELECT * FROM audit ORDER BY seq", con)
