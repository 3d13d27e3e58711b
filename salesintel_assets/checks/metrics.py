"""Checks of the metrics layer."""
