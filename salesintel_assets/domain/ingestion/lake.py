"""The raw lake: every pull kept as an immutable Parquet file beside a JSON
note of when and from where it came."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd


def write_pull(folder: Path, pull_id: str, frame: pd.DataFrame, note: dict) -> Path:
    """Write a pull once. An existing file is never overwritten: the lake is
    append-only, so a re-run that reuses an id is an error, not a rewrite."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{pull_id}.parquet"
    if target.exists():
        raise FileExistsError(f"raw pull {target} already exists; pulls are immutable")
    partial = folder / f".{pull_id}.parquet.partial"
    frame.to_parquet(partial, index=False)
    return keep_pull_file(folder, pull_id, partial, len(frame), note)


def keep_pull_file(folder: Path, pull_id: str, partial: Path, rows: int, note: dict) -> Path:
    """Move a pull's Parquet file, written aside as ``partial``, into the lake with its note."""
    target = folder / f"{pull_id}.parquet"
    if target.exists():
        raise FileExistsError(f"raw pull {target} already exists; pulls are immutable")
    os.replace(partial, target)
    meta = {**note, "pull_id": pull_id, "rows": int(rows), "file": target.name}
    (folder / f"{pull_id}.json").write_text(json.dumps(meta, indent=2, default=str))
    return target



def latest_note(folder: Path) -> dict | None:
    """The JSON note of the newest pull in the lake (ids start with the pull
    time, so names sort by time), or None for an empty lake."""
    notes = sorted(folder.glob("*.json")) if folder.exists() else []
    return json.loads(notes[-1].read_text()) if notes else None
