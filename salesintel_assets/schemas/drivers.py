"""Pandera models of the drivers layer."""
