"""Pandera models of the metrics layer."""
