"""Checks of the anomalies layer."""
