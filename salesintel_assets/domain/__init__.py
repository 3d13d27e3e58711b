"""Domain logic: plain pandas/numpy modules that never import Dagster."""
