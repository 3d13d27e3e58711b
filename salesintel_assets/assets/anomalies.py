"""anomalies layer assets."""
