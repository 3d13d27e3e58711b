"""Jobs. Each run is for one tenant (its partition key) and runs with the
code location's executor (``executors.py``): in process by default, since
DuckDB allows one writing process per file and a process per step would
re-import the code location for every asset."""

import dagster as dg

from salesintel_assets.constants import ALERTS, ANOMALIES, DRIVERS, INGESTION, METRICS, MODELS, SERVING, WAREHOUSE


def _job(name: str, selection: dg.AssetSelection, description: str):
    return dg.define_asset_job(name, selection=selection, description=description)


salesintel_job = _job("salesintel_job", dg.AssetSelection.all(),
                      "Materialise every asset: pull, check, warehouse, analyse, alert.")
ingestion_job = _job("ingestion_job", dg.AssetSelection.groups(INGESTION, WAREHOUSE),
                     "Incremental CRM pull through the quality gates into the warehouse.")
metrics_job = _job("metrics_job", dg.AssetSelection.groups(METRICS),
                   "Deal metrics (PVS, SMI, DQS), segment win rates and stage conversion from the warehouse.")
drivers_job = _job("drivers_job", dg.AssetSelection.groups(DRIVERS),
                   "Driver scores, win-rate attribution and driver importance from the latest metrics.")
models_job = _job("models_job", dg.AssetSelection.groups(MODELS),
                  "Drift check of the champion, train/register a challenger (MLflow), score open deals, "
                  "backtest and forecast the pipeline.")
anomalies_job = _job("anomalies_job", dg.AssetSelection.groups(ANOMALIES),
                     "Segment win-rate dips and spikes, slower cycles, quality drops, metric shifts and stalled "
                     "deals from the warehouse and the latest deal metrics.")
# The alerts layer: the rule engine and the delivery, each started by its sensor.
# Both end by publishing the serving snapshot, so the web service shows the new alerts and their delivery.
alerts_job = _job("alerts_job", dg.AssetSelection.assets("alert_feedback", "alert_precision", "alert_threshold_changes",
                                                        "alerts", "serving_snapshot"),
                  "Take in the recipients' feedback (precision, severity floors), then turn the latest anomalies "
                  "into alerts (dedup, throttle, routing).")
alert_delivery_job = _job("alert_delivery_job", dg.AssetSelection.assets("alert_deliveries", "serving_snapshot"),
                          "Deliver due alerts, notices and digests exactly once (Slack, email backup, outbox).")
# After a main run whose pull brought nothing new but whose feedback moved a severity floor.
alert_refresh_job = _job("alert_refresh_job", dg.AssetSelection.assets("alerts", "alert_deliveries", "serving_snapshot"),
                         "Derive the alerts again from the stored anomalies (new severity floors), deliver, publish.")

# The event-driven path: a CRM change pulled, checked, analysed, alerted and delivered in one run,
# so the change reaches Slack without waiting for three sensor hops and three process starts.
# The models and drivers keep their daily schedules (the alerts read the latest risk scores).
crm_change_job = _job("crm_change_job",
                      dg.AssetSelection.groups(INGESTION, WAREHOUSE, METRICS, ANOMALIES, ALERTS, SERVING),
                      "A CRM change end to end: incremental pull, warehouse, metrics, anomalies, alerts and "
                      "their immediate delivery.")

jobs = [salesintel_job, ingestion_job, metrics_job, drivers_job, models_job, anomalies_job, alerts_job,
        alert_delivery_job, alert_refresh_job, crm_change_job]
