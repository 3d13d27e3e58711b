"""Pandera models of the alerts layer."""
