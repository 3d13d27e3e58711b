"""Asset checks, one module per layer, derived from the pandera models."""
