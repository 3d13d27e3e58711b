"""Pandera models: each table described once. Asset checks and the column
schemas shown in the Dagster UI are derived from these."""
