"""Back up and restore one tenant's folder: the DuckDB warehouse, the raw
lake, the SQLite files (delivery ledger, feedback inbox, MLflow store and
registry) and the MLflow artifacts, with a manifest of checksums.

Consistency: the warehouse is copied while this process holds DuckDB's
write lock (after a CHECKPOINT, so the file is whole without its WAL): no
run can write during the copy, and a running one makes the backup stop with
a clear sentence instead of copying a half-written file. SQLite files go
through SQLite's online backup API. Lake files are immutable once written.

A restore checks every checksum first, then replaces the tenant's data. A
backup restored under another folder (a new machine, another
SALESINTEL_HOME) has its MLflow artifact locations rewritten to the new
folder, so the champion model loads there.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import duckdb

from salesintel_assets.domain.common.storage import DAGSTER_HOME_DIR, DATABASE_FILE, DELIVERY_LOCK_FILE, MLFLOW_DB_FILE
from salesintel_assets.domain.common.tenants import TENANTS_DIR, TENANTS_FILE

MANIFEST = "salesintel-backup.json"
_SQLITE_SUFFIXES = (".sqlite3", ".sqlite", ".db")
# Not tenant data: other tenants' folders, the tenants file and the embedded Dagster instance
# (under the default tenant's folder), locks, and DuckDB's write-ahead log (merged by the CHECKPOINT).
_SKIPPED_NAMES = {TENANTS_DIR, TENANTS_FILE, DAGSTER_HOME_DIR, DELIVERY_LOCK_FILE, MANIFEST, f"{DATABASE_FILE}.wal"}


class BackupError(RuntimeError):
    """A backup or restore cannot go ahead; the message says what to do."""


@contextmanager
def _warehouse_lock(database: Path) -> Iterator[None]:
    """Hold DuckDB's write lock on the file (no run writes meanwhile)."""
    try:
        con = duckdb.connect(str(database))
    except duckdb.IOException as exc:
        raise BackupError(f"{database} is in use by a run ({str(exc).splitlines()[0]}): wait for the run to "
                          "finish, then try again") from None
    try:
        con.execute("CHECKPOINT")
        yield
    finally:
        con.close()


def _data_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not (set(relative.parts) & _SKIPPED_NAMES) and not path.name.endswith(".tmp"):
            files.append(path)
    return files


def _checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy even while another process writes (SQLite's backup API)."""
    src, dst = sqlite3.connect(str(source)), sqlite3.connect(str(target))
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def backup_tenant(root: Path, target: Path, tenant: str) -> dict:
    """Copy the tenant's folder ``root`` into the new or empty folder ``target``."""
    root, target = Path(root).resolve(), Path(target).resolve()
    database = root / DATABASE_FILE
    if not database.exists():
        raise BackupError(f"nothing to back up for tenant {tenant!r}: no {DATABASE_FILE} in {root} (run it first)")
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: back up into a new folder")
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    files = {}
    with _warehouse_lock(database):
        for path in _data_files(root):
            relative = path.relative_to(root)
            copy = staging / relative
            copy.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix in _SQLITE_SUFFIXES:
                _copy_sqlite(path, copy)
            else:
                shutil.copy2(path, copy)
            files[relative.as_posix()] = _checksum(copy)
    manifest = {"tenant": tenant, "root": str(root), "files": files,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    if target.exists():
        target.rmdir()
    staging.rename(target)  # a backup folder exists only once it is complete
    return manifest


def read_manifest(source: Path) -> dict:
    path = Path(source) / MANIFEST
    if not path.exists():
        raise BackupError(f"{source} is not a salesintel backup (no {MANIFEST})")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for relative, expected in manifest["files"].items():
        copy = Path(source) / relative
        if not copy.exists() or _checksum(copy) != expected:
            raise BackupError(f"backup {source} is damaged: {relative} is missing or changed; use another backup")
    return manifest


def restore_tenant(source: Path, root: Path, replace: bool = False) -> dict:
    """Put the backup in ``source`` back as the tenant's folder ``root``."""
    source, root = Path(source).resolve(), Path(root).resolve()
    manifest = read_manifest(source)
    database = root / DATABASE_FILE
    if database.exists() and not replace:
        raise BackupError(f"{root} already holds a warehouse: pass --replace to overwrite it with the backup")
    root.mkdir(parents=True, exist_ok=True)
    with _warehouse_lock(database) if database.exists() else _no_lock():
        for path in _data_files(root):  # the current data goes; other tenants and the tenants file stay
            path.unlink()
    for relative in manifest["files"]:
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / relative, target)
    if manifest["root"] != str(root):
        relocate_mlflow(root / MLFLOW_DB_FILE, manifest["root"], str(root))
    return manifest


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


def relocate_mlflow(store: Path, old_root: str, new_root: str) -> int:
    """Point every artifact location of an MLflow SQLite store from the old
    folder to the new one (experiments, runs, model versions, logged
    models); returns the number of values changed."""
    if not store.exists():
        return 0
    changed = 0
    con = sqlite3.connect(str(store))
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [r[1] for r in con.execute(f'PRAGMA table_info("{table}")') if "CHAR" in r[2].upper()
                       or "TEXT" in r[2].upper()]
            for column in columns:
                changed += con.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                                       f'WHERE instr("{column}", ?) > 0', [old_root, new_root, old_root]).rowcount
        con.commit()
    finally:
        con.close()
    return changed
