"""Worlds for the models-layer tests: the sample CRM as warehouse tables, a
world whose win probabilities are known, a rules file with overrides, and
the check that a trained model survives storage."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from salesintel_assets.domain.ingestion import pulls as ingestion
from salesintel_assets.domain.ingestion import quality
from salesintel_assets.sources import sample_crm
from salesintel_assets.domain.warehouse import upserts as warehouse
from salesintel_assets.domain.common.rules import default_rules_path, load_rules


def sample_tables(n_deals: int = 3000, seed: int = 42, clock: date | None = None,
                  as_of: date | None = None) -> dict:
    """fact_deals, stage history and activities of the sample CRM at ``clock``,
    analysed as of ``as_of`` (default: the clock), plus the world (truth)."""
    rules = load_rules()
    world = sample_crm.generate_world(n_deals, seed)
    snap = sample_crm.snapshot(world, clock)
    raw = ingestion.conform_raw(ingestion.as_export_text(snap.deals))
    clean = quality.validate_deals(raw, rules).clean
    as_of = pd.Timestamp(as_of or clock or sample_crm.SAMPLE_END_DATE)
    fact = warehouse.build_fact_deals(clean, snap.stage_history, snap.activities, rules, as_of)
    return {"fact": fact, "history": snap.stage_history, "activities": snap.activities, "world": world,
            "rules": rules, "as_of": as_of}


def known_probability_fact(n_deals: int = 4000, seed: int = 3, drift: float = 0.0,
                           span_days: int = 500) -> tuple[pd.DataFrame, np.ndarray]:
    """Closed deals (no stage history) created over ``span_days`` whose win
    probability is a known logistic function of lead source and amount (plus
    ``drift`` log odds per year since the first deal); cycle length carries
    no signal. Returns (fact, true probability per deal)."""
    rng = np.random.default_rng(seed)
    lead = rng.choice(["Inbound", "Outbound", "Referral", "Partner"], n_deals)
    amount = np.exp(rng.normal(np.log(15_000), 0.8, n_deals)).round()
    draw, days = rng.random(n_deals), rng.integers(0, span_days, n_deals)
    logit = -0.2 + pd.Series(lead).map({"Inbound": 0.0, "Outbound": -0.3, "Referral": 0.9, "Partner": -1.0}).to_numpy()
    logit += -0.6 * (np.log(amount) - np.log(15_000)) + drift * days / 365.25
    p = 1 / (1 + np.exp(-logit))
    won = draw < p
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(days, unit="D")
    cycle = 5 + rng.integers(0, 80, n_deals)
    closed = created + pd.to_timedelta(cycle, unit="D")
    fact = pd.DataFrame({
        "deal_id": [f"K{i:05d}" for i in range(n_deals)], "created_date": created, "closed_date": closed,
        "sales_rep_id": rng.choice([f"rep_{i}" for i in range(1, 11)], n_deals),
        "industry": rng.choice(["SaaS", "FinTech"], n_deals), "region": rng.choice(["Europe", "APAC"], n_deals),
        "product_type": rng.choice(["Core", "Pro"], n_deals), "lead_source": lead,
        "deal_stage": np.where(won, "Closed", "Proposal"), "deal_amount": amount,
        "sales_cycle_days": cycle.astype(float), "outcome": np.where(won, "Won", "Lost"),
        "is_open": False, "is_won": won, "needs_review": False,
    })
    fact["age_days"] = fact["sales_cycle_days"]
    fact["days_in_stage"] = np.nan
    return fact, p


def rules_file(folder: Path, **risk_overrides) -> Path:
    """The packaged rules with some ``risk`` keys replaced (nested keys as
    ``forecast__simulations=500``)."""
    raw = yaml.safe_load(default_rules_path().read_text())
    for key, value in risk_overrides.items():
        target = raw["risk"]
        *parents, leaf = key.split("__")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    path = Path(folder) / "rules.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    load_rules(path)  # fail here, not in the run, if an override is invalid
    return path


_STORE_TEMPLATE: list[Path] = []


def seed_mlflow_store(home: Path) -> None:
    """Put an empty, already migrated MLflow database into ``home``. Creating
    one takes MLflow 2-6 s on these machines and the tests make several; one
    test (the registry test) still lets MLflow create its store from scratch."""
    if not _STORE_TEMPLATE:
        import atexit
        import shutil
        import tempfile

        from salesintel_assets.resources.mlflow import MLflowTracking
        from salesintel_assets.resources.warehouse import SalesintelHome

        folder = Path(tempfile.mkdtemp(prefix="mlflow-template-"))
        atexit.register(shutil.rmtree, folder, True)
        MLflowTracking(home=SalesintelHome(path=str(folder))).client().search_experiments()
        _STORE_TEMPLATE.append(folder / "mlflow.db")
    import shutil

    Path(home).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_STORE_TEMPLATE[0], Path(home) / "mlflow.db")


def assert_stored_with_trusted_types(training, features: pd.DataFrame) -> None:
    """skops refuses unknown types on load: every candidate and the horizon
    model must hold only the trusted ones, and predict the same once loaded."""
    import skops.io

    from salesintel_assets.domain.models import risk_model as rm

    for name, model in [(c.name, c.model) for c in training.candidates] + [("horizons", training.model)]:
        stored = skops.io.dumps(model)
        assert set(skops.io.get_untrusted_types(data=stored)) <= set(rm.SKOPS_TRUSTED_TYPES), name
        loaded = skops.io.loads(stored, trusted=list(rm.SKOPS_TRUSTED_TYPES))
        np.testing.assert_allclose(loaded.predict_proba(features), model.predict_proba(features))
