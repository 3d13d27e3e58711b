"""Checks of the drivers layer."""
