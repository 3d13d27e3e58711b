"""Checks of the alerts layer."""
