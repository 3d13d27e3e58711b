"""Keeping a DuckDB database open between the uses of one run.

DuckDB takes some 35 ms to open any database, even an empty one (it builds
its catalogue of functions each time), and a run of the main job connects
over a hundred times: four seconds a run. While this process holds a
database (from the start of a run to its end), the first connection also
opens an idle one that keeps the database open, so the next connections
reuse it (about 1 ms). The idle connection lets go after ``IDLE_SECONDS``
without a connection in use, so another process waiting for the file (a
reader, the step of a parallel run) still gets in between uses, as with
short-lived connections alone.

Only the holding process's own connections share the open database; they
must all open it alike (DuckDB refuses a read-only connection beside a
writing one in the same process), so while held every connection writes.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Callable

IDLE_SECONDS = 0.5

_lock = threading.Lock()
_holders = 0
_open: dict[str, "_Anchor"] = {}


@dataclass
class _Anchor:
    keeper: AbstractContextManager
    in_use: int = 0
    last_used: float = field(default_factory=time.monotonic)


def hold() -> None:
    """This process is running a run: keep databases open between uses."""
    global _holders
    with _lock:
        _holders += 1


def release() -> None:
    """The run ended: close what is kept open once no run holds anything."""
    global _holders
    with _lock:
        _holders = max(_holders - 1, 0)
        if _holders:
            return
        anchors = list(_open.values())
        _open.clear()
    for anchor in anchors:
        anchor.keeper.__exit__(None, None, None)


def held() -> bool:
    with _lock:
        return _holders > 0


def using(path: str, open_keeper: Callable[[], AbstractContextManager]) -> None:
    """A connection to ``path`` was just opened: keep the database open with
    ``open_keeper()`` (entered here, a connection opened alike) while held."""
    with _lock:
        if _holders == 0:
            return
        anchor = _open.get(path)
        if anchor is not None:
            anchor.in_use += 1
            anchor.last_used = time.monotonic()
            return
    keeper = open_keeper()
    keeper.__enter__()
    with _lock:
        if _holders == 0 or path in _open:   # released, or another thread kept it meanwhile
            duplicate = True
        else:
            duplicate = False
            _open[path] = _Anchor(keeper, in_use=1)
    if duplicate:
        keeper.__exit__(None, None, None)
        return using(path, open_keeper)
    threading.Thread(target=_let_go_when_idle, args=(path,), daemon=True, name=f"hold {path}").start()


def done(path: str) -> None:
    """A connection to ``path`` was closed."""
    with _lock:
        anchor = _open.get(path)
        if anchor is not None:
            anchor.in_use = max(anchor.in_use - 1, 0)
            anchor.last_used = time.monotonic()


def _let_go_when_idle(path: str) -> None:
    while True:
        with _lock:
            anchor = _open.get(path)
            if anchor is None:
                return
            wait = anchor.last_used + IDLE_SECONDS - time.monotonic()
            idle = anchor.in_use == 0 and wait <= 0
            if idle:
                del _open[path]
        if idle:
            anchor.keeper.__exit__(None, None, None)
            return
        time.sleep(max(wait, IDLE_SECONDS / 5))
