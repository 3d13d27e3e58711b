"""salesintel: a sales intelligence and alert platform as Dagster assets."""
