"""Asset modules: thin wiring around the domain logic, one module per layer."""
