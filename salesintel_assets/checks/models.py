"""Checks of the models layer."""
