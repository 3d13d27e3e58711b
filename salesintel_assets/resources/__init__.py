"""Dagster resources: configurable, injected by type annotation."""
