"""The FastAPI application: ``create_app(settings)`` wires the REST API, the
dashboard and Slack's request URL. Nothing happens at import."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from salesintel_assets.service import api, dashboard, queries
from salesintel_assets.service.audit import AuditLog
from salesintel_assets.service.settings import ServiceSettings
from salesintel_assets.service.tokens import TokenStore

DESCRIPTION = """Deal risk, open alerts, segment metrics, the forecast and data freshness for CRM integrations.

Authenticate with `Authorization: Bearer TOKEN` (create one with `salesintel token create --role ...`).
A `rep` token sees its own deals, a `manager` token its team's, `leader` and `data` everything;
only `data` sees the quality and model views. A deal outside your scope answers 404."""


def _alert_type_lookup(data: queries.ServingData):
    def lookup(alert_id: str):
        try:
            alerts = data.table("alert_index")
        except queries.NoSnapshot:
            return None
        if alerts is None:
            return None
        found = alerts.loc[alerts["alert_id"].eq(alert_id), "alert_type"]
        return found.iloc[0] if len(found) else None
    return lookup


def create_app(settings: ServiceSettings) -> FastAPI:
    app = FastAPI(title="salesintel", version="1", description=DESCRIPTION, docs_url="/api/docs",
                  redoc_url=None, openapi_url="/api/openapi.json")
    app.state.settings = settings
    app.state.tokens = TokenStore(settings.tokens_path)
    app.state.audit = AuditLog(settings.audit_path)
    app.state.data = queries.ServingData(settings.home)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).with_name("static"))), name="static")
    app.include_router(api.router)
    app.include_router(dashboard.router)
    _slack_route(app, settings)

    @app.exception_handler(dashboard.LoginRequired)
    def _login(request: Request, exc: dashboard.LoginRequired):
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(queries.NoSnapshot)
    def _no_snapshot(request: Request, exc: queries.NoSnapshot):
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.get("/healthz", include_in_schema=False)
    def healthz():
        return {"ok": True}

    return app


def _slack_route(app: FastAPI, settings: ServiceSettings) -> None:
    """POST /slack/events through Bolt; without a signing secret it accepts nothing."""
    if settings.signing_secret is None:
        @app.post("/slack/events", include_in_schema=False)
        def slack_disabled():
            return JSONResponse({"detail": "Slack interactivity is off: set SLACK_SIGNING_SECRET and restart"},
                                status_code=503)
        return

    from slack_bolt.adapter.fastapi import SlackRequestHandler

    from salesintel_assets.service.slack import build_slack_app

    handler = SlackRequestHandler(build_slack_app(settings, _alert_type_lookup(app.state.data)))

    @app.post("/slack/events", include_in_schema=False)
    async def slack_events(request: Request):
        return await handler.handle(request)
