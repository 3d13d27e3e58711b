"""Pandera models of the anomalies layer."""
