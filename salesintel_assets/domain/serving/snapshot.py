"""The serving snapshot: read-only Parquet files, pre-aggregated for the web
service's views, published atomically under ``$SALESINTEL_HOME/serving``.

A snapshot is written into a new folder, then the ``CURRENT`` pointer file
is replaced (``os.replace`` is atomic), so a reader sees either the old or the
new snapshot, never half of one, and never opens the DuckDB file (one writer
at a time). Aggregates are kept per rep so a view for any set of reps (a rep,
a manager's team, everyone) is a sum over a few thousand rows, not a scan of
every deal.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from salesintel_assets.domain.common.storage import TABLE_SCHEMA
from salesintel_assets.domain.common.tables import table_columns as _columns, table_exists
from salesintel_assets.domain.warehouse.clean_ups import clean_ups_in

POINTER = "CURRENT"
KEEP_SNAPSHOTS = 3  # older folders are removed; a reader mid-request keeps its own
TOP_RISKS_PER_REP = 10  # the overall top 10 is always within the union of per-rep top 10s
OPEN_ALERT_STATES = ("open", "updated")
MANIFEST_COLUMNS = ["snapshot", "file", "rows", "published_at", "as_of_date"]
CLEAN_UP_COLUMNS = ["day", "closes", "lost"]


def serving_root(home: str | Path) -> Path:
    return Path(home) / "serving"


def current_snapshot(home: str | Path) -> Path | None:
    """The folder the pointer names, or None before the first publication."""
    root = serving_root(home)
    try:
        name = (root / POINTER).read_text().strip()
    except FileNotFoundError:
        return None
    folder = root / "snapshots" / name
    return folder if folder.is_dir() else None


def _optional(cols: set[str], name: str, alias: str | None = None, cast: str = "VARCHAR") -> str:
    alias = alias or name
    return f"s.{name} AS {alias}" if name in cols else f"CAST(NULL AS {cast}) AS {alias}"


def _deals_sql(con: duckdb.DuckDBPyConnection) -> str:
    """Every deal with its rep's manager and, for open deals, its risk."""
    risk = _columns(con, "deal_risk_scores")
    risk_join = f"LEFT JOIN {TABLE_SCHEMA}.deal_risk_scores s USING (deal_id)" if risk else \
        "LEFT JOIN (SELECT CAST(NULL AS VARCHAR) AS deal_id) s USING (deal_id)"
    reps = f"{TABLE_SCHEMA}.dim_sales_reps" if table_exists(con, "dim_sales_reps") else \
        "(SELECT CAST(NULL AS VARCHAR) AS sales_rep_id, NULL AS rep_name, NULL AS manager_id)"
    risk_cols = ", ".join([
        _optional(risk, "win_probability", cast="DOUBLE"), _optional(risk, "win_probability_90d", cast="DOUBLE"),
        _optional(risk, "risk_band"), _optional(risk, "revenue_at_risk", cast="DOUBLE"),
        _optional(risk, "reason_1"), _optional(risk, "reason_2"), _optional(risk, "reason_3"),
        _optional(risk, "model_verdict"), _optional(risk, "expected_close_month"),
    ])
    return f"""
        SELECT f.deal_id, f.sales_rep_id, r.rep_name, r.manager_id, f.industry, f.region, f.product_type,
               f.lead_source, f.deal_stage, f.deal_amount, f.outcome, f.is_open, f.created_date, f.closed_date,
               f.age_days, f.days_in_stage, {risk_cols}
        FROM {TABLE_SCHEMA}.fact_deals f
        LEFT JOIN {reps} r USING (sales_rep_id)
        {risk_join}
        ORDER BY f.deal_id"""


def clean_up_table(con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp) -> pd.DataFrame:
    """The days the CRM was tidied (``warehouse.clean_ups``: stale deals
    closed lost at once) among the closes of the ``deals`` view. The monthly
    win rate leaves them out, as the anomaly tests do: a January sweep is
    not a January in which deals were lost."""
    found = clean_ups_in(con, "deals", as_of, won="outcome = 'Won'")
    return pd.DataFrame({"day": pd.to_datetime([c.day for c in found]).astype("datetime64[ns]"),
                         "closes": pd.array([c.closes for c in found], dtype="int64"),
                         "lost": pd.array([c.lost for c in found], dtype="int64")}, columns=CLEAN_UP_COLUMNS)


def _copy_table(con, table: str, where: str = "") -> str | None:
    return f"SELECT * FROM {TABLE_SCHEMA}.{table} {where}" if table_exists(con, table) else None


def _queries(con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp) -> dict[str, str | None]:
    """file stem -> SELECT (None when the source table does not exist yet)."""
    day = pd.Timestamp(as_of).date().isoformat()
    alert_cols = _columns(con, "alerts")
    wanted = ["alert_id", "dedup_key", "alert_type", "alert_name", "priority", "status", "title", "segment",
              "deal_id", "sales_rep_id", "recipients", "recipient_roles", "amount_at_stake", "first_seen",
              "last_seen", "delivery"]
    return {
        "reps": _copy_table(con, "dim_sales_reps"),
        "win_rate_by_rep_month": f"""
            SELECT sales_rep_id, CAST(date_trunc('month', closed_date) AS DATE) AS month,
                   count(*) AS closed, count(*) FILTER (WHERE outcome = 'Won') AS won
            FROM deals WHERE NOT is_open AND closed_date IS NOT NULL AND closed_date <= DATE '{day}'
                AND CAST(closed_date AS DATE) NOT IN (SELECT day FROM clean_up_days)
            GROUP BY ALL ORDER BY sales_rep_id, month""",
        "pipeline_by_rep": """
            SELECT sales_rep_id, count(*) AS open_deals, sum(deal_amount) AS pipeline_amount,
                   count(deal_amount) AS priced_deals, count(win_probability) AS scored_deals,
                   sum(win_probability) AS expected_won, sum(win_probability * (1 - win_probability)) AS var_won,
                   sum(deal_amount * win_probability) AS expected_revenue,
                   sum(deal_amount * deal_amount * win_probability * (1 - win_probability)) AS var_revenue,
                   sum(revenue_at_risk) AS revenue_at_risk
            FROM deals WHERE is_open GROUP BY ALL ORDER BY sales_rep_id""",
        "top_risks": f"""
            SELECT * EXCLUDE (rank_in_rep) FROM (
                SELECT deal_id, sales_rep_id, rep_name, manager_id, industry, region, product_type, deal_stage,
                       deal_amount, age_days, win_probability, risk_band, revenue_at_risk, reason_1, reason_2,
                       reason_3, model_verdict, row_number() OVER (PARTITION BY sales_rep_id
                                                    ORDER BY revenue_at_risk DESC, deal_id) AS rank_in_rep
                FROM deals WHERE is_open AND revenue_at_risk IS NOT NULL)
            WHERE rank_in_rep <= {TOP_RISKS_PER_REP} ORDER BY revenue_at_risk DESC, deal_id""",
        "forecast": _copy_table(con, "pipeline_forecast"),
        "attribution": _copy_table(con, "win_rate_attribution"),
        "segments": _copy_table(con, "segment_metrics"),
        "alerts": (f"SELECT {', '.join(c if c in alert_cols else f'NULL AS {c}' for c in wanted)} "
                   f"FROM {TABLE_SCHEMA}.alerts WHERE status IN {OPEN_ALERT_STATES} "
                   "ORDER BY priority, amount_at_stake DESC NULLS LAST, alert_id") if alert_cols else None,
        # every alert ever raised, so a click on an old message still finds its type
        "alert_index": (f"SELECT alert_id, alert_type, dedup_key, status FROM {TABLE_SCHEMA}.alerts ORDER BY alert_id"
                        if alert_cols else None),
        "quality": _copy_table(con, "data_quality_report"),
        "quarantine": (f"SELECT rule, count(*) AS rows FROM {TABLE_SCHEMA}.quarantined_deals GROUP BY ALL "
                       "ORDER BY rows DESC") if table_exists(con, "quarantined_deals") else None,
        "model": _copy_table(con, "deal_risk_model"),
        "drift": _copy_table(con, "deal_risk_drift"),
        "backtest": _copy_table(con, "forecast_backtest"),
        "precision": _copy_table(con, "alert_precision"),
    }


FRESHNESS_TABLES = ("raw_deals", "fact_deals", "deal_metrics", "segment_metrics", "win_rate_attribution",
                    "deal_risk_scores", "pipeline_forecast", "anomalies", "alerts", "alert_deliveries")


def _freshness(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    rows = []
    for table in FRESHNESS_TABLES:
        exists = table_exists(con, table)
        count = con.execute(f"SELECT count(*) FROM {TABLE_SCHEMA}.{table}").fetchone()[0] if exists else None
        rows.append({"table_name": table, "exists": exists, "rows": count})
    frame = pd.DataFrame(rows)
    last_pull = None
    if "_pulled_at" in _columns(con, "raw_deals"):
        last_pull = con.execute(f"SELECT max(_pulled_at) FROM {TABLE_SCHEMA}.raw_deals").fetchone()[0]
    frame["last_pull_at"] = pd.Timestamp(last_pull) if last_pull is not None else pd.NaT
    return frame


def build_snapshot(con: duckdb.DuckDBPyConnection, folder: Path, name: str, as_of: pd.Timestamp,
                   published_at: pd.Timestamp) -> pd.DataFrame:
    """Write every file of one snapshot into ``folder``; returns the manifest."""
    folder.mkdir(parents=True)
    deals = folder / "deals.parquet"
    # Sorted by deal_id in small row groups: a lookup by id reads one group.
    con.execute(f"COPY ({_deals_sql(con)}) TO '{deals}' (FORMAT parquet, ROW_GROUP_SIZE 16384)")
    con.execute(f"CREATE OR REPLACE TEMP VIEW deals AS SELECT * FROM read_parquet('{deals}')")
    cleaned = clean_up_table(con, as_of)
    cleaned.to_parquet(folder / "clean_ups.parquet", index=False)
    con.register("clean_up_days", cleaned)
    written = {"deals": deals, "clean_ups": folder / "clean_ups.parquet"}
    for stem, sql in _queries(con, as_of).items():
        if sql is None:
            continue
        target = folder / f"{stem}.parquet"
        con.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet)")
        written[stem] = target
    con.execute("DROP VIEW deals")
    con.unregister("clean_up_days")
    _freshness(con).to_parquet(folder / "freshness.parquet", index=False)
    written["freshness"] = folder / "freshness.parquet"
    rows = []
    for stem, path in sorted(written.items()):
        count = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()[0]
        rows.append({"snapshot": name, "file": path.name, "rows": int(count),
                     "published_at": published_at, "as_of_date": pd.Timestamp(as_of).normalize()})
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    (folder / "manifest.json").write_text(json.dumps({
        "snapshot": name, "published_at": published_at.isoformat(),
        "as_of_date": pd.Timestamp(as_of).date().isoformat(),
        "files": {r["file"]: r["rows"] for r in rows}}, indent=2))
    return manifest


def publish_snapshot(con: duckdb.DuckDBPyConnection, home: str | Path, as_of: pd.Timestamp,
                     now: datetime | None = None) -> pd.DataFrame:
    """Build a new snapshot beside the current one, switch the pointer to it,
    remove old ones; returns the manifest."""
    now = now or datetime.now(timezone.utc)
    published_at = pd.Timestamp(now).tz_localize(None) if pd.Timestamp(now).tzinfo is None else \
        pd.Timestamp(now).tz_convert("UTC").tz_localize(None)
    root = serving_root(home)
    snapshots = root / "snapshots"
    snapshots.mkdir(parents=True, exist_ok=True)
    name = published_at.strftime("%Y%m%dT%H%M%S%f")
    building = snapshots / f".{name}.building"
    if building.exists():
        shutil.rmtree(building)
    manifest = build_snapshot(con, building, name, as_of, published_at)
    building.rename(snapshots / name)
    pointer_tmp = root / f".{POINTER}.{os.getpid()}"
    pointer_tmp.write_text(name + "\n")
    os.replace(pointer_tmp, root / POINTER)
    _prune(snapshots, keep=name)
    return manifest


def _prune(snapshots: Path, keep: str) -> None:
    done = sorted(p for p in snapshots.iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in done[:-KEEP_SNAPSHOTS]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
