"""Read models for the API and the dashboard, from the current serving
snapshot (Parquet files queried with an in-memory DuckDB, never the
warehouse). Every function takes the caller's scope; aggregates are summed
over the visible reps, so a rep's numbers are built from their deals only."""

from __future__ import annotations

import math
import threading
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from salesintel_assets.domain.alerts.feedback_inbox import read_events
from salesintel_assets.domain.common import stats
from salesintel_assets.domain.serving.snapshot import current_snapshot
from salesintel_assets.domain.warehouse.clean_ups import CleanUp
from salesintel_assets.service.access import Scope, sees_alert
from salesintel_assets.service.settings import inbox_file
from salesintel_assets.service.tokens import Principal

Z80 = 1.2815515655446004  # two-sided 80 % normal interval, as the pipeline forecast uses
DEAL_FIELDS = ["deal_id", "sales_rep_id", "rep_name", "manager_id", "industry", "region", "product_type",
               "lead_source", "deal_stage", "deal_amount", "outcome", "is_open", "created_date", "closed_date",
               "age_days", "days_in_stage", "win_probability", "win_probability_90d", "risk_band",
               "revenue_at_risk", "reason_1", "reason_2", "reason_3", "model_verdict", "expected_close_month"]


class NoSnapshot(RuntimeError):
    """No serving snapshot has been published under this home yet."""


def _clean(value):
    """JSON-friendly scalars (NaN/NaT -> None, numpy -> Python, timestamps -> ISO dates)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (pd.Timestamp, date)):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
        return None if isinstance(value, float) and math.isnan(value) else value
    return value


def records(frame: pd.DataFrame) -> list[dict]:
    return [{k: _clean(v) for k, v in row.items()} for row in frame.to_dict("records")]


class ServingData:
    """The current snapshot. Small files are cached per snapshot; the pointer
    is re-read on each request, so a new publication shows up at once."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self._cache: dict[tuple[str, str], pd.DataFrame] = {}
        self._lock = threading.Lock()

    def folder(self) -> Path:
        folder = current_snapshot(self.home)
        if folder is None:
            raise NoSnapshot(f"no serving snapshot under {self.home / 'serving'}: run the pipeline "
                             "(salesintel run) to publish one")
        return folder

    def snapshot_name(self) -> str:
        return self.folder().name

    def table(self, stem: str) -> pd.DataFrame | None:
        """A small pre-aggregated file as a DataFrame (None when not published)."""
        folder = self.folder()
        key = (folder.name, stem)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        path = folder / f"{stem}.parquet"
        frame = pd.read_parquet(path) if path.exists() else None
        with self._lock:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = frame
        return frame

    def sql(self, query: str, params: list | None = None) -> pd.DataFrame:
        """Run a query over ``deals`` (the big file) without loading it."""
        deals = self.folder() / "deals.parquet"
        with duckdb.connect() as con:
            con.execute(f"CREATE VIEW deals AS SELECT * FROM read_parquet('{deals}')")
            return con.execute(query, params or []).df()


def _scope_filter(scope: Scope, column: str = "sales_rep_id") -> tuple[str, list]:
    if scope is None:
        return "TRUE", []
    if not scope:
        return "FALSE", []
    return f"{column} IN ({', '.join('?' for _ in scope)})", sorted(scope)


def _in_scope(frame: pd.DataFrame | None, scope: Scope, column: str = "sales_rep_id") -> pd.DataFrame | None:
    if frame is None or scope is None:
        return frame
    return frame[frame[column].astype(str).isin(scope)]


# --- deals ---------------------------------------------------------------------------------
def deal(data: ServingData, deal_id: str, scope: Scope) -> dict | None:
    """One deal, or None when it does not exist or is outside the scope (the
    caller cannot tell which)."""
    found = data.sql("SELECT * FROM deals WHERE deal_id = ?", [deal_id])
    if found.empty or (scope is not None and str(found.iloc[0]["sales_rep_id"]) not in scope):
        return None
    row = records(found.reindex(columns=DEAL_FIELDS))[0]
    row["reasons"] = [r for r in (row.pop("reason_1"), row.pop("reason_2"), row.pop("reason_3")) if r]
    return row


def deals(data: ServingData, scope: Scope, open_only: bool = True, risk_band: str | None = None,
          limit: int = 100, offset: int = 0) -> tuple[int, list[dict]]:
    where, params = _scope_filter(scope)
    if open_only:
        where += " AND is_open"
    if risk_band:
        where += " AND risk_band = ?"
        params.append(risk_band)
    total = int(data.sql(f"SELECT count(*) AS n FROM deals WHERE {where}", params)["n"].iloc[0])
    page = data.sql(f"SELECT * FROM deals WHERE {where} ORDER BY revenue_at_risk DESC NULLS LAST, deal_id "
                    f"LIMIT {int(limit)} OFFSET {int(offset)}", params)
    rows = records(page.reindex(columns=DEAL_FIELDS))
    for row in rows:
        row["reasons"] = [r for r in (row.pop("reason_1"), row.pop("reason_2"), row.pop("reason_3")) if r]
    return total, rows


def top_risks(data: ServingData, scope: Scope, n: int = 10) -> pd.DataFrame:
    risks = _in_scope(data.table("top_risks"), scope)
    if risks is None:
        return pd.DataFrame()
    return risks.sort_values(["revenue_at_risk", "deal_id"], ascending=[False, True]).head(n)


# --- win rate, pipeline, forecast ---------------------------------------------------------------
def win_rate_series(data: ServingData, scope: Scope, months: int = 18) -> pd.DataFrame:
    """Monthly win rate of closed deals with its 95 % Wilson interval."""
    monthly = _in_scope(data.table("win_rate_by_rep_month"), scope)
    if monthly is None or monthly.empty:
        return pd.DataFrame(columns=["month", "closed", "won", "win_rate", "ci_low", "ci_high"])
    series = monthly.groupby("month", as_index=False)[["closed", "won"]].sum().sort_values("month").tail(months)
    low, high = stats.wilson_interval(series["won"].to_numpy(), series["closed"].to_numpy())
    return series.assign(win_rate=series["won"] / series["closed"], ci_low=low, ci_high=high,
                         month=pd.to_datetime(series["month"]).dt.strftime("%Y-%m")).reset_index(drop=True)


def clean_ups(data: ServingData, first: str | None, last: str | None = None) -> list[str]:
    """The clean-up days the monthly win rate and the rate-vs-mix split leave
    out, in words, from the period ``first`` (a month ``YYYY-MM`` or a
    quarter ``YYYYQn``) on, to the end of ``last`` (on to the end when None);
    none for a snapshot published before they were kept."""
    days = data.table("clean_ups")
    if days is None or days.empty or first is None:
        return []
    day = pd.to_datetime(days["day"])
    shown = days[(day >= pd.Period(first).start_time) & (day <= (pd.Period(last).end_time if last else day.max()))]
    return [CleanUp(pd.Timestamp(r.day), int(r.closes), int(r.lost)).sentence() for r in shown.itertuples()]


def pipeline(data: ServingData, scope: Scope) -> dict:
    """Open pipeline and expected wins with an 80 % interval (sum of
    independent Bernoulli wins, normal approximation)."""
    frame = _in_scope(data.table("pipeline_by_rep"), scope)
    if frame is None or frame.empty:
        return {"open_deals": 0, "pipeline_amount": 0.0, "expected_won_deals": 0.0, "won_deals_p10": 0.0,
                "won_deals_p90": 0.0, "expected_won_revenue": 0.0, "revenue_p10": 0.0, "revenue_p90": 0.0,
                "revenue_at_risk": 0.0, "scored_deals": 0, "priced_deals": 0}
    if "priced_deals" not in frame:   # a snapshot published before the column: every deal counted as priced
        frame = frame.assign(priced_deals=frame["open_deals"])
    total = frame[["open_deals", "pipeline_amount", "priced_deals", "scored_deals", "expected_won", "var_won",
                   "expected_revenue", "var_revenue", "revenue_at_risk"]].sum()
    sd_won, sd_rev = math.sqrt(total["var_won"]), math.sqrt(total["var_revenue"])
    # priced_deals: open deals with an amount (many CRMs have none until a price is agreed); the money
    # figures count only those, and with none of them they are unknown, not $0
    return {"open_deals": int(total["open_deals"]), "pipeline_amount": float(total["pipeline_amount"]),
            "priced_deals": int(total["priced_deals"]),
            "scored_deals": int(total["scored_deals"]), "expected_won_deals": float(total["expected_won"]),
            "won_deals_p10": max(0.0, float(total["expected_won"] - Z80 * sd_won)),
            "won_deals_p90": float(total["expected_won"] + Z80 * sd_won),
            "expected_won_revenue": float(total["expected_revenue"]),
            "revenue_p10": max(0.0, float(total["expected_revenue"] - Z80 * sd_rev)),
            "revenue_p90": float(total["expected_revenue"] + Z80 * sd_rev),
            "revenue_at_risk": float(total["revenue_at_risk"])}


HORIZON_ORDER = {"30d": 0, "90d": 1, "quarter_end": 2}


def forecast(data: ServingData, scope: Scope) -> dict:
    """The pipeline forecast by horizon (the models layer's, for everyone-scope
    roles; ``months``: by close month, each month's share of every deal's
    chance) or, for a rep or a team, their open pipeline's expectation."""
    table = data.table("forecast")
    if scope is None and table is not None and len(table):
        horizon = table[table["grouping"].eq("horizon")]
        months = records(table[table["grouping"].eq("close_month")].sort_values("key"))
        if len(horizon):
            rows = horizon.assign(_o=horizon["key"].map(HORIZON_ORDER).fillna(9)).sort_values("_o").drop(columns="_o")
            return {"basis": "horizon", "rows": records(rows), "months": months}
        return {"basis": "close_month", "rows": months, "months": []}
    mine = pipeline(data, scope)
    return {"basis": "scope", "rows": [{"grouping": "scope", "key": "open pipeline", **mine}]}


# --- alerts ----------------------------------------------------------------------------------
def alert_states(home: Path, alert_ids: list[str], now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Live state from the feedback inbox: who acknowledged, snoozed until when,
    the latest rating per person (a replayed older click never wins)."""
    columns = ["alert_id", "acknowledged_by", "acknowledged_at", "snoozed_until", "snoozed_by", "helpful", "noise"]
    events = read_events(inbox_file(home))
    events = events[events["alert_id"].isin(alert_ids)] if len(events) else events
    if events.empty:
        return pd.DataFrame(columns=columns)
    now = now if now is not None else pd.Timestamp.now(tz="UTC").tz_localize(None)
    rows = []
    for alert_id, mine in events.sort_values("occurred_at", kind="stable").groupby("alert_id"):
        acks = mine[mine["action"].eq("acknowledge")]
        snoozes = mine[mine["action"].eq("snooze")]
        last_snooze = snoozes.iloc[-1] if len(snoozes) else None
        ratings = mine[mine["action"].isin(["helpful", "noise"])].drop_duplicates("actor", keep="last")
        rows.append({
            "alert_id": alert_id,
            "acknowledged_by": acks.iloc[0]["actor"] if len(acks) else None,
            "acknowledged_at": acks.iloc[0]["occurred_at"] if len(acks) else None,
            "snoozed_until": (last_snooze["until"] if last_snooze is not None and last_snooze["until"] > now
                              else None),
            "snoozed_by": last_snooze["actor"] if last_snooze is not None and last_snooze["until"] > now else None,
            "helpful": int(ratings["action"].eq("helpful").sum()), "noise": int(ratings["action"].eq("noise").sum()),
        })
    return pd.DataFrame(rows, columns=columns)


def open_alerts(data: ServingData, who: Principal, scope: Scope) -> pd.DataFrame:
    alerts = data.table("alerts")
    if alerts is None or alerts.empty:
        return pd.DataFrame(columns=["alert_id", "state"])
    mask = [sees_alert(who, scope, r, c) for r, c in zip(alerts["sales_rep_id"], alerts["recipients"])]
    mine = alerts[mask]
    reps = data.table("reps")
    if reps is not None and len(mine):
        mine = mine.merge(reps[["sales_rep_id", "rep_name"]].rename(columns={"rep_name": "owner"}),
                          on="sales_rep_id", how="left")
    else:
        mine = mine.assign(owner=None)
    state = alert_states(data.home, list(mine["alert_id"]))
    mine = mine.merge(state, on="alert_id", how="left")
    mine["state"] = np.where(mine["snoozed_until"].notna(), "snoozed",
                             np.where(mine["acknowledged_by"].notna(), "acknowledged", mine["status"]))
    mine["owner"] = mine["owner"].where(mine["owner"].notna(), mine["recipients"].str.split(",").str[0])
    return mine.reset_index(drop=True)


# --- drivers, segments, data -------------------------------------------------------------------
def attribution(data: ServingData, dimension: str | None = None, per_rep: bool = True) -> dict:
    """Company-wide rate vs mix split; the by-rep split only for roles that see every rep."""
    table = data.table("attribution")
    if table is not None and not per_rep:
        table = table[~table["dimension"].eq("sales_rep_id")]
    if table is None or table.empty:
        return {"dimension": None, "dimensions": [], "rows": []}
    dims = list(dict.fromkeys(table["dimension"]))
    dimension = dimension if dimension in dims else dims[0]
    rows = table[table["dimension"].eq(dimension)]
    first = rows.iloc[0]
    return {"dimension": dimension, "dimensions": dims, "period_a": first["period_a"], "period_b": first["period_b"],
            "rate_a": float(first["overall_rate_a"]), "rate_b": float(first["overall_rate_b"]),
            "rate_effect": float(rows["rate_effect"].sum()), "mix_effect": float(rows["mix_effect"].sum()),
            "rows": records(rows.sort_values("total_effect", key=abs, ascending=False))}


def segments(data: ServingData, scope: Scope, dimension: str | None = None, period_type: str = "all") -> pd.DataFrame:
    """Segment win rates. Other reps' own rates are per-rep data: a rep or a
    team sees the ``sales_rep_id`` rows of its scope only."""
    table = data.table("segments")
    if table is None:
        return pd.DataFrame()
    rows = table[table["period_type"].eq(period_type)]
    if dimension:
        rows = rows[rows["dimension"].eq(dimension)]
    if scope is not None:
        rows = rows[~rows["dimension"].eq("sales_rep_id") | rows["segment"].astype(str).isin(scope)]
    return rows.reset_index(drop=True)


def freshness(data: ServingData) -> dict:
    import json

    folder = data.folder()
    manifest = json.loads((folder / "manifest.json").read_text())
    table = data.table("freshness")
    return {"snapshot": manifest["snapshot"], "published_at": manifest["published_at"],
            "as_of_date": manifest["as_of_date"],
            "last_pull_at": _clean(table["last_pull_at"].iloc[0]) if table is not None and len(table) else None,
            "tables": records(table.drop(columns=["last_pull_at"])) if table is not None else []}


def quality(data: ServingData) -> dict:
    report = data.table("quality")
    latest = pd.DataFrame()
    if report is not None and len(report):
        latest = report[report["pull_id"].eq(report.sort_values("pull_id")["pull_id"].iloc[-1])] \
            if "pull_id" in report else report
    quarantine = data.table("quarantine")
    return {"latest_pull": records(latest), "quarantined_by_rule": records(quarantine) if quarantine is not None else []}


def model(data: ServingData) -> dict:
    out = {}
    for stem in ("model", "drift", "backtest", "precision"):
        table = data.table(stem)
        out[stem] = records(table) if table is not None else []
    return out
