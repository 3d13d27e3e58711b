"""The leader dashboard: server-rendered pages (Jinja2, inline SVG charts),
the same roles and scopes as the API. Signing in stores the token in an
HttpOnly cookie; views that show deals write an audit row."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from salesintel_assets.service import charts, queries
from salesintel_assets.service.access import sees_quality, visible_reps
from salesintel_assets.service.tokens import Principal

COOKIE = "salesintel_session"
NAV = [("/", "Overview"), ("/forecast", "Forecast"), ("/risks", "Top risks"), ("/alerts", "Alerts"),
       ("/data", "Data")]
MAX_ALERT_ROWS = 200  # the rest are in the API (GET /api/v1/alerts)
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
templates.env.globals.update(money=charts.money, pct=charts.pct)
router = APIRouter(include_in_schema=False)


class LoginRequired(Exception):
    """No valid session cookie: the app sends the browser to the sign-in page."""


def _who(request: Request) -> Principal:
    who = request.app.state.tokens.verify(request.cookies.get(COOKIE))
    if who is None:
        raise LoginRequired()
    return who


def _page(request: Request, name: str, who: Principal, active: str, title: str, **context) -> HTMLResponse:
    data: queries.ServingData = request.app.state.data
    return templates.TemplateResponse(request, name, {"who": who, "nav": NAV, "active": active, "title": title,
                                                      "fresh": queries.freshness(data), **context})


def _scope_label(request: Request, who: Principal, scope) -> str:
    if scope is None:
        return "Company"
    reps = request.app.state.data.table("reps")
    if who.role == "rep" and reps is not None:
        name = reps.loc[reps["sales_rep_id"].eq(who.rep_id), "rep_name"]
        return f"{name.iloc[0]}" if len(name) else who.rep_id
    if reps is not None:
        name = reps.loc[reps["manager_id"].eq(who.rep_id), "manager_name"] if "manager_name" in reps else []
        team = name.iloc[0] if len(name) else who.rep_id
        return f"{team}'s team ({len(scope)} reps)"
    return who.rep_id or "Your scope"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request):
    return templates.TemplateResponse(request, "login.html", {"who": None, "title": "Sign in", "fresh": None})


@router.post("/login")
def login(request: Request, token: str = Form(...)):
    if request.app.state.tokens.verify(token.strip()) is None:
        return templates.TemplateResponse(request, "login.html", {"who": None, "title": "Sign in", "fresh": None,
                                                                  "error": "That token is wrong or expired."},
                                          status_code=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="lax",
                        secure=request.app.state.settings.secure_cookies, max_age=12 * 3600)
    return response


@router.get("/logout")
def logout():
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, dimension: str | None = None):
    who = _who(request)
    data = request.app.state.data
    scope = visible_reps(who, data.table("reps"))
    series = queries.win_rate_series(data, scope)
    points = series.to_dict("records")
    attr = queries.attribution(data, dimension, per_rep=scope is None)
    if attr["rows"]:
        top = attr["rows"][:5]
        steps = [(f"{r['segment']} rate", r["rate_effect"]) for r in top]
        rest = attr["rate_effect"] - sum(r["rate_effect"] for r in top)
        if abs(rest) > 1e-9:
            steps.append(("other rates", rest))
        steps.append(("mix shift", attr["mix_effect"]))
        waterfall_chart = charts.waterfall((attr["period_a"], attr["rate_a"]), steps, (attr["period_b"], attr["rate_b"]))
    else:
        waterfall_chart = charts._empty(680, 260, "Not enough data for attribution")
    return _page(request, "overview.html", who, "/", "Overview", scope_label=_scope_label(request, who, scope),
                 pipe=queries.pipeline(data, scope), last=points[-1] if points else None,
                 win_chart=charts.win_rate_chart(points), attr=attr, waterfall_chart=waterfall_chart,
                 clean_ups=queries.clean_ups(data, points[0]["month"] if points else None),
                 split_clean_ups=queries.clean_ups(data, attr.get("period_a"), attr.get("period_b")))


@router.get("/forecast", response_class=HTMLResponse)
def forecast(request: Request):
    who = _who(request)
    data = request.app.state.data
    scope = visible_reps(who, data.table("reps"))
    result = queries.forecast(data, scope)
    labels = {"horizon": ("By horizon (closing within 30 days, 90 days, by quarter end)", "Horizon"),
              "close_month": ("By expected close month", "Close month"),
              "scope": ("Your open pipeline", "Scope")}
    basis_label, key_label = labels[result["basis"]]
    pipe = queries.pipeline(data, scope)
    # No open deal with an amount (many CRMs have none until a price is agreed): revenue is unknown, not
    # $0, so the charts show won deals instead
    unpriced = bool(pipe["open_deals"]) and not pipe["priced_deals"]
    shown = ("expected_won_deals", "won_deals_p10", "won_deals_p90") if unpriced else (
        "expected_won_revenue", "revenue_p10", "revenue_p90")
    fmt = (lambda v: f"{float(v):,.0f}") if unpriced else charts.money
    rows = result["rows"]
    chart = charts.interval_bars(rows, "key", *shown, fmt=fmt, width=1100, height=300)
    months = result.get("months") or []
    month_chart = charts.interval_bars(months, "key", *shown, fmt=fmt, width=1100, height=260) if months else None
    return _page(request, "forecast.html", who, "/forecast", "Forecast", rows=rows, chart=chart,
                 basis_label=basis_label, key_label=key_label, months=months, month_chart=month_chart,
                 unpriced=unpriced)


@router.get("/risks", response_class=HTMLResponse)
def risks(request: Request):
    who = _who(request)
    data = request.app.state.data
    scope = visible_reps(who, data.table("reps"))
    top = queries.top_risks(data, scope, n=15)
    request.app.state.audit.record(who, "dashboard.risks", None, 200, len(top))
    weak = "model_verdict" in top and top["model_verdict"].eq("weak").any()
    return _page(request, "risks.html", who, "/risks", "Top risks", risks=queries.records(top), weak=weak,
                 scope_label=_scope_label(request, who, scope))


@router.get("/alerts", response_class=HTMLResponse)
def alerts(request: Request):
    who = _who(request)
    data = request.app.state.data
    table = queries.open_alerts(data, who, visible_reps(who, data.table("reps")))
    request.app.state.audit.record(who, "dashboard.alerts", None, 200,
                                   int(table["deal_id"].notna().sum()) if "deal_id" in table else 0)
    return _page(request, "alerts.html", who, "/alerts", "Alerts", alerts=queries.records(table.head(MAX_ALERT_ROWS)),
                 total=len(table))


@router.get("/data", response_class=HTMLResponse)
def data_view(request: Request):
    who = _who(request)
    data = request.app.state.data
    show = sees_quality(who)
    return _page(request, "data.html", who, "/data", "Data", quality=queries.quality(data) if show else None,
                 model=queries.model(data) if show else None)
