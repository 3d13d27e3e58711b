"""Helpers shared by the benchmark scripts."""

from __future__ import annotations


def asset_step_seconds(instance, run_id: str) -> dict[str, float]:
    """Wall seconds of each step that materialised an asset (checks excluded)."""
    started, took, materialised = {}, {}, set()
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = record.timestamp
        elif event.event_type_value == "ASSET_MATERIALIZATION":
            materialised.add(event.step_key)
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            took[event.step_key] = record.timestamp - started[event.step_key]
    return {step: seconds for step, seconds in took.items() if step in materialised}
