"""Pandera models of the models layer."""
