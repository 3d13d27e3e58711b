"""Freeing the reference cycles large frames leave, and only then."""

import gc

LARGE_FRAME_ROWS = 50_000


def free_cycles_after(rows: int) -> None:
    """A full collection after work on ``rows`` rows, when there were enough
    of them for their cycles to matter (at 1M deals a pull's frames held
    gigabytes until collected). A collection walks every live object of the
    process, a fifth of a second in a long-lived one: after a small pull the
    interpreter's own collector is left to it."""
    if rows >= LARGE_FRAME_ROWS:
        gc.collect()
