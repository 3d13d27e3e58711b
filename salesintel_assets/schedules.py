"""Schedules at the design's cadence."""

import dagster as dg

from salesintel_assets.jobs import ingestion_job

ingestion_schedule = dg.ScheduleDefinition(
    name="ingestion_every_4_hours",
    job=ingestion_job,
    cron_schedule="0 */4 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

schedules = [ingestion_schedule]
