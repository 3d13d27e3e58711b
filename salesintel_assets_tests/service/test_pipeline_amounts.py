"""The dashboard's money figures when the CRM has no amounts on open deals
(many have none until a price is agreed): unknown, never $0."""

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from salesintel_assets.domain.serving.snapshot import current_snapshot
from salesintel_assets.service.app import create_app
from salesintel_assets.service.settings import ServiceSettings
from salesintel_assets.service.tokens import TokenStore


def _view(home, path: str = "/") -> str:
    settings = ServiceSettings(home=home)
    token = TokenStore(settings.tokens_path).create("data")[0]
    with TestClient(create_app(settings)) as client:
        client.post("/login", data={"token": token})
        page = client.get(path)
    assert page.status_code == 200
    return page.text


def _unprice(home, share: float) -> None:
    """The published pipeline as if ``share`` of each rep's open deals had no amount."""
    path = current_snapshot(home) / "pipeline_by_rep.parquet"
    pipeline = pd.read_parquet(path)
    priced = (pipeline["open_deals"] * (1 - share)).round().astype("int64")
    keep = priced / pipeline["open_deals"]
    money = ["pipeline_amount", "expected_revenue", "var_revenue", "revenue_at_risk"]
    pipeline[money] = pipeline[money].mul(keep, axis=0).where(priced > 0)
    pipeline.assign(priced_deals=priced).to_parquet(path, index=False)


def test_the_published_pipeline_counts_the_deals_with_an_amount(served_home):
    pipeline = pd.read_parquet(current_snapshot(served_home) / "pipeline_by_rep.parquet")
    assert pipeline["priced_deals"].sum() == pipeline["open_deals"].sum()   # the sample CRM prices every deal


@pytest.mark.parametrize("share, shown, hidden", [
    (1.0, ["no amounts", "not known: no open deal has an amount"], ["$0", "80% interval"]),
    (0.5, ["with an amount", "80% interval"], ["no amounts", "not known"]),
    (0.0, ["80% interval"], ["no amounts", "with an amount", "not known"]),
])
def test_the_overview_says_when_open_deals_have_no_amount(served_home, share, shown, hidden):
    _unprice(served_home, share)
    kpis = _view(served_home).split('class="grid kpis"')[1].split('class="grid two"')[0]
    assert all(text in kpis for text in shown) and not any(text in kpis for text in hidden)


def test_the_forecast_shows_won_deals_when_no_open_deal_has_an_amount(served_home):
    priced = _view(served_home, "/forecast")
    assert "<h2>Expected won revenue</h2>" in priced and "$" in priced.split("<h2>Detail</h2>")[1]
    _unprice(served_home, 1.0)
    page = _view(served_home, "/forecast")
    assert "<h2>Expected won deals</h2>" in page and "No open deal has an amount, so revenue is not known." in page
    detail = page.split("<h2>Detail</h2>")[1]
    assert "$" not in detail and "<td class=\"num\">–</td>" in detail
