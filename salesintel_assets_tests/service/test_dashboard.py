"""The dashboard in a real headless Chromium (Debian's, driven by
Playwright): every view renders with data, each role sees its own, and a
screenshot of each view is saved under ``test-artifacts/screenshots``."""

from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import sync_playwright

from salesintel_assets.service import queries
from salesintel_assets.service.app import create_app
from salesintel_assets.service.settings import ServiceSettings
from salesintel_assets.service.tokens import TokenStore
from salesintel_assets_tests.service.service_support import LiveServer, with_clean_up_day

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"  # gitignored
VIEWS = {"/": "overview", "/forecast": "forecast", "/risks": "risks", "/alerts": "alerts", "/data": "data"}


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def site(served_home):
    settings = ServiceSettings(home=served_home)
    with LiveServer(create_app(settings)) as server:
        yield server.url, TokenStore(settings.tokens_path), queries.ServingData(served_home)


def _sign_in(browser, url, token):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/risks")
    assert page.url.endswith("/login")  # no session: the sign-in page
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
    return page


def test_every_view_renders_with_data_for_a_leader(browser, site):
    url, store, data = site
    page = _sign_in(browser, url, store.create("data")[0])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for path, name in VIEWS.items():
        page.goto(url + path)
        assert page.locator("nav a.active").inner_text() == {"overview": "Overview", "forecast": "Forecast",
                                                              "risks": "Top risks", "alerts": "Alerts",
                                                              "data": "Data"}[name]
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        if name == "overview":
            assert page.locator(".kpi .value").first.inner_text().startswith("$")
            assert page.locator("svg.chart circle").count() >= 6  # months of win rate
            assert page.locator("svg.chart polygon").count() == 1  # the interval band
            assert page.locator("svg.chart rect").count() >= 4  # the waterfall
        elif name == "forecast":   # the horizons' bars, then the close months'
            shown = queries.forecast(data, None)
            assert shown["months"] and page.locator("svg.chart rect").count() == len(shown["rows"]) + len(
                shown["months"])
            assert page.locator("table").nth(1).locator("tbody tr").count() == len(shown["months"])
        elif name == "risks":
            assert page.locator("tbody tr").count() == 15
            assert page.locator("ul.reasons li").count() >= 15
        elif name == "alerts":
            assert page.locator("tbody tr").count() == len(data.table("alerts"))
        else:
            assert page.get_by_text("Quality of the latest pull").is_visible()
            assert page.get_by_text("Risk model").is_visible()
    page.close()


def test_each_role_sees_its_own(browser, site):
    url, store, data = site
    reps = data.table("reps")
    risks = data.table("top_risks")
    rep = risks["sales_rep_id"].iloc[0]
    rep_name = reps.loc[reps["sales_rep_id"].eq(rep), "rep_name"].iloc[0]
    manager = reps.loc[reps["sales_rep_id"].eq(rep), "manager_id"].iloc[0]
    team_names = set(reps.loc[reps["manager_id"].eq(manager), "rep_name"])

    page = _sign_in(browser, url, store.create("rep", rep)[0])
    assert page.locator(".page-head h1").inner_text() == rep_name
    page.goto(f"{url}/risks")
    page.screenshot(path=str(SCREENSHOTS / "risks-rep.png"), full_page=True)
    owners = set(page.locator("tbody tr td:nth-child(2)").all_inner_texts())
    assert owners == {rep_name}
    page.goto(f"{url}/data")
    assert page.get_by_text("Quality and model views are for the data team.").is_visible()
    page.close()

    page = _sign_in(browser, url, store.create("manager", manager)[0])
    assert page.locator(".page-head h1").inner_text().endswith(f"team ({len(team_names)} reps)")
    page.goto(f"{url}/risks")
    owners = set(page.locator("tbody tr td:nth-child(2)").all_inner_texts())
    assert owners and owners <= team_names and len(owners) > 1
    page.goto(f"{url}/alerts")
    page.screenshot(path=str(SCREENSHOTS / "alerts-manager.png"), full_page=True)
    page.close()

    page = browser.new_page()
    page.goto(f"{url}/login")
    page.fill("input[name=token]", "si_wrong_token")
    page.click("button[type=submit]")
    assert page.get_by_text("That token is wrong or expired.").is_visible()
    page.close()


def test_the_win_rate_chart_says_which_clean_up_days_it_left_out(browser, site, served_home):
    url, store, data = site
    page = _sign_in(browser, url, store.create("data")[0])
    assert page.locator("p.clean-ups").count() == 0   # the sample CRM is never swept
    assert page.locator(".split-clean-ups").count() == 0
    on_day = with_clean_up_day(served_home, pd.Timestamp("2026-05-12"))
    page.goto(f"{url}/")
    said = page.locator("p.clean-ups").inner_text()
    assert said.startswith("Left out: the closes of clean-up days") and f"12 May 2026 ({on_day:,} closes" in said
    # the rate-vs-mix split compares 2026Q1 with 2026Q2, which holds the sweep: it says it left it out too
    split = page.locator(".split-clean-ups").inner_text()
    assert split == f"Without the closes of clean-up days: 12 May 2026 ({on_day:,} closes, 100% lost)."
    may = next(p for p in queries.win_rate_series(data, None).to_dict("records") if p["month"] == "2026-05")
    assert may["win_rate"] > 0.2   # May's own closes, not the sweep's
    page.close()
