"""The code location of the daemon test: the real definitions plus one
test-only schedule that ticks every minute (the finest cron), so a bounded
test sees the daemon's scheduler launch a run. Nothing else differs."""

import dagster as dg

from salesintel_assets.definitions import build_definitions
from salesintel_assets.jobs import ingestion_job
from salesintel_assets.resources.factory import environment_resources
from salesintel_assets.schedules import per_tenant_schedule

TEST_SCHEDULE = "test_ingestion_every_minute"


@dg.definitions
def defs() -> dg.Definitions:
    every_minute = per_tenant_schedule(TEST_SCHEDULE, ingestion_job, "* * * * *")  # a run per tenant, as every schedule
    return dg.Definitions.merge(build_definitions(environment_resources()), dg.Definitions(schedules=[every_minute]))
