"""A short, plain-text summary of what a run found and where to look next."""

from __future__ import annotations

from salesintel_assets.domain.common.storage import DATABASE_FILE, MLFLOW_DB_FILE, OUTBOX_DIR, OUTBOX_FILE
from salesintel_assets.domain.common.tables import table_exists
from salesintel_assets.resources.warehouse import Warehouse


def _count(con, table: str, where: str = "") -> int | None:
    if not table_exists(con, table):
        return None
    return con.execute(f'SELECT count(*) FROM main."{table}" {where}').fetchall()[0][0]


def run_summary(warehouse: Warehouse) -> str:
    """Headline figures from the warehouse of a finished run."""
    home = warehouse.home.location()
    database = home / DATABASE_FILE
    if not warehouse.exists():
        return f"No warehouse at {database}: the run did not get as far as storing data."
    with warehouse.connect(read_only=True) as con:
        lines = ["", "salesintel run summary", "======================"]
        deals = _count(con, "fact_deals")
        if deals is not None:
            row = con.execute(
                "SELECT count(*) FILTER (WHERE is_open), count(*) FILTER (WHERE NOT is_open), "
                "avg(CASE WHEN is_won THEN 1.0 ELSE 0.0 END) FILTER (WHERE NOT is_open), "
                "sum(deal_amount) FILTER (WHERE is_open), max(as_of_date) FROM fact_deals").fetchall()[0]
            open_deals, closed, win_rate, pipeline, as_of = row
            lines.append(f"analysis date        {as_of:%Y-%m-%d}" if as_of else "analysis date        -")
            lines.append(f"deals                {deals:,} ({closed:,} closed, {open_deals:,} open)")
            if win_rate is not None:
                lines.append(f"win rate             {win_rate:.1%} of closed deals")
            if pipeline:
                lines.append(f"open pipeline        ${pipeline:,.0f}")
        quarantined = _count(con, "quarantined_deals")
        flagged = _count(con, "fact_deals", "WHERE needs_review")
        if quarantined is not None:
            lines.append(f"data quality         {quarantined:,} rows quarantined, {flagged or 0:,} flagged for review")
        for table, label in [("driver_scores", "significant drivers"), ("deal_risk_scores", "high-risk open deals"),
                             ("anomalies", "anomalies"), ("alerts", "alerts"), ("alert_deliveries", "deliveries")]:
            where = {"driver_scores": "WHERE significant", "deal_risk_scores": "WHERE risk_band = 'high'"}.get(table, "")
            n = _count(con, table, where)
            if n is not None:
                lines.append(f"{label:<21}{n:,}")
        if _count(con, "alerts"):
            lines += ["", "Top alerts:"]
            top = con.execute("SELECT priority, title FROM main.alerts WHERE status <> 'resolved' "
                              "ORDER BY priority, amount_at_stake DESC NULLS LAST LIMIT 5").fetchall()
            lines += [f"  [{priority}] {title}" for priority, title in top]
        lines += [
            "",
            "Where to look next:",
            f"  warehouse            duckdb {database}",
            "  quality report       SELECT * FROM data_quality_report   (quarantine: quarantined_deals)",
            f"  alert outbox         {home / OUTBOX_DIR / OUTBOX_FILE}",
            "  lineage and checks   DAGSTER_HOME=$PWD/dagster_home dagster dev   (http://127.0.0.1:3000)",
            f"  model runs           mlflow ui --backend-store-uri sqlite:///{home / MLFLOW_DB_FILE} --workers 1",
        ]
        return "\n".join(lines)
