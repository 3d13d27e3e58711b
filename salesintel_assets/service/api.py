"""The REST API (``/api/v1``) for CRM integrations: token authentication,
per-role scope, and an audit row for every access to deal-level data."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from salesintel_assets.service import queries
from salesintel_assets.service.access import sees_quality, visible_reps
from salesintel_assets.service.tokens import Principal

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer TOKEN` from `salesintel token create`")


class Deal(BaseModel):
    deal_id: str
    sales_rep_id: Optional[str] = None
    rep_name: Optional[str] = None
    manager_id: Optional[str] = None
    industry: Optional[str] = None
    region: Optional[str] = None
    product_type: Optional[str] = None
    lead_source: Optional[str] = None
    deal_stage: Optional[str] = None
    deal_amount: Optional[float] = None
    outcome: Optional[str] = None
    is_open: Optional[bool] = None
    created_date: Optional[str] = None
    closed_date: Optional[str] = None
    age_days: Optional[float] = None
    days_in_stage: Optional[float] = None
    win_probability: Optional[float] = None
    win_probability_90d: Optional[float] = None
    risk_band: Optional[str] = None
    revenue_at_risk: Optional[float] = None
    reasons: list[str] = []
    model_verdict: Optional[str] = None
    expected_close_month: Optional[str] = None


class DealPage(BaseModel):
    total: int
    deals: list[Deal]


class Alert(BaseModel):
    alert_id: str
    alert_type: Optional[str] = None
    alert_name: Optional[str] = None
    priority: Optional[str] = None
    status: Optional[str] = None
    state: str
    title: Optional[str] = None
    segment: Optional[str] = None
    deal_id: Optional[str] = None
    sales_rep_id: Optional[str] = None
    owner: Optional[str] = None
    amount_at_stake: Optional[float] = None
    first_seen: Optional[str] = None
    acknowledged_by: Optional[str] = None
    snoozed_until: Optional[str] = None
    helpful: Optional[int] = None
    noise: Optional[int] = None


def principal(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
    who = request.app.state.tokens.verify(credentials.credentials if credentials else None)
    if who is None:
        raise HTTPException(status_code=401, detail="missing, wrong or expired token",
                            headers={"WWW-Authenticate": "Bearer"})
    return who


def _data(request: Request) -> queries.ServingData:
    return request.app.state.data


def _scope(request: Request, who: Principal):
    return visible_reps(who, _data(request).table("reps"))


router = APIRouter(prefix="/api/v1")


@router.get("/deals/{deal_id}", response_model=Deal, summary="A deal with its win probability, risk band and reasons",
            responses={404: {"description": "no such deal in your scope"}})
def get_deal(deal_id: str, request: Request, who: Principal = Depends(principal)) -> dict:
    found = queries.deal(_data(request), deal_id, _scope(request, who))
    request.app.state.audit.record(who, "api.deal", deal_id, 200 if found else 404, 1 if found else 0)
    if found is None:
        raise HTTPException(status_code=404, detail=f"deal {deal_id} not found")
    return found


@router.get("/deals", response_model=DealPage, summary="Deals in your scope, riskiest first")
def list_deals(request: Request, who: Principal = Depends(principal), open_only: bool = True,
               risk_band: Optional[str] = None, limit: int = Query(100, ge=1, le=1000),
               offset: int = Query(0, ge=0)) -> dict:
    total, rows = queries.deals(_data(request), _scope(request, who), open_only, risk_band, limit, offset)
    request.app.state.audit.record(who, "api.deals", f"risk_band={risk_band or '*'}&offset={offset}", 200, len(rows))
    return {"total": total, "deals": rows}


@router.get("/alerts", response_model=list[Alert], summary="Open alerts in your scope with their state and owner")
def list_alerts(request: Request, who: Principal = Depends(principal)) -> list[dict]:
    alerts = queries.open_alerts(_data(request), who, _scope(request, who))
    request.app.state.audit.record(who, "api.alerts", None, 200, int(alerts["deal_id"].notna().sum())
                                   if "deal_id" in alerts else 0)
    return queries.records(alerts.reindex(columns=list(Alert.model_fields)))


@router.get("/segments", summary="Segment win rates with 95 % intervals and sample sizes")
def list_segments(request: Request, who: Principal = Depends(principal), dimension: Optional[str] = None,
                  period_type: str = Query("all", pattern="^(all|quarter|month)$")) -> list[dict]:
    return queries.records(queries.segments(_data(request), _scope(request, who), dimension, period_type))


@router.get("/forecast", summary="The pipeline forecast with 80 % intervals (by horizon when available)")
def get_forecast(request: Request, who: Principal = Depends(principal)) -> dict:
    return queries.forecast(_data(request), _scope(request, who))


@router.get("/freshness", summary="When the data was pulled and published, rows per table")
def get_freshness(request: Request, who: Principal = Depends(principal)) -> dict:
    return queries.freshness(_data(request))


def _data_role(who: Principal) -> None:
    if not sees_quality(who):
        raise HTTPException(status_code=403, detail="the data role sees quality and model views")


@router.get("/quality", summary="Data quality of the latest pull and quarantine counts (data role)")
def get_quality(request: Request, who: Principal = Depends(principal)) -> dict:
    _data_role(who)
    return queries.quality(_data(request))


@router.get("/model", summary="Risk model versions, drift, forecast backtest and alert precision (data role)")
def get_model(request: Request, who: Principal = Depends(principal)) -> dict:
    _data_role(who)
    return queries.model(_data(request))
