"""MLflow tracking and model registry for the deal risk model.

By default the tracking store and the registry are one SQLite file in
SALESINTEL_HOME (``mlflow.db``) with artifacts under ``mlartifacts/`` (the
plain-file store of MLflow 3 is refused); ``tracking_uri`` (from
MLFLOW_TRACKING_URI) points both at another store or server instead.

``import mlflow`` costs seconds, so it happens inside the methods. MLflow's
fluent API keeps the tracking URI in process globals *and* environment
variables; every use here is wrapped in ``_session``, which restores both, so
one resource (or test) never leaks its store into another.
"""


import os
import threading
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import Iterator, Optional

import dagster as dg
from pydantic import PrivateAttr

from salesintel_assets.domain.common.storage import MLFLOW_ARTIFACTS_DIR, MLFLOW_DB_FILE
from salesintel_assets.resources.warehouse import SalesintelHome

CHAMPION = "champion"
CHALLENGER = "challenger"
_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


# A registered version never changes, and one run reads the champion up to three times (its drift check, the
# challenge, the scores): each load of a 3,000-deal CRM's model took 2 s. The latest loads are kept per process.
_LOADED: "OrderedDict[tuple, object]" = OrderedDict()
_LOADED_LOCK = threading.Lock()
LOADED_MODELS_KEPT = 2


@dataclass(frozen=True)
class ModelVersion:
    version: int
    run_id: str
    tags: dict


class MLflowTracking(dg.ConfigurableResource):
    """Where runs, metrics and registered versions of ``model_name`` live."""

    home: SalesintelHome
    tracking_uri: Optional[str] = None
    experiment_name: str = "deal_risk"
    model_name: str = "deal_risk"

    _tenant_names: Optional[tuple[str, str]] = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """A named tenant's runs and versions go to its own experiment and
        registered model (its own store too, unless MLFLOW_TRACKING_URI
        points every tenant at one server: then the names keep them apart)."""
        from salesintel_assets.resources.tenancy import run_tenant

        tenant = run_tenant(context, self.home.path)
        if not tenant.is_default:
            self._tenant_names = (tenant.model_name, tenant.model_name)

    def experiment(self) -> str:
        return self._tenant_names[0] if self._tenant_names else self.experiment_name

    def registered_name(self) -> str:
        return self._tenant_names[1] if self._tenant_names else self.model_name

    # --- where -------------------------------------------------------------------
    def uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{self.home.root() / MLFLOW_DB_FILE}"

    def artifact_location(self) -> Optional[str]:
        """Artifacts beside the default store; a configured server decides its own."""
        return None if self.tracking_uri else self.home.subdir(MLFLOW_ARTIFACTS_DIR).as_uri()

    def ui_command(self) -> str:
        """The command that opens the MLflow UI on this store (artifacts are
        found through each experiment's own location)."""
        return f"mlflow ui --backend-store-uri {self.uri()} --host 127.0.0.1 --port 5000 --workers 1"

    @contextmanager
    def _session(self) -> Iterator[object]:
        """The mlflow module pointed at this store, restored afterwards."""
        import mlflow

        saved_env = {name: os.environ.get(name) for name in _URI_VARIABLES}
        saved = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
        mlflow.set_tracking_uri(self.uri())
        mlflow.set_registry_uri(self.uri())
        try:
            yield mlflow
        finally:
            mlflow.set_tracking_uri(saved[0])
            mlflow.set_registry_uri(saved[1])
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def client(self):
        import mlflow

        return mlflow.MlflowClient(tracking_uri=self.uri(), registry_uri=self.uri())

    def experiment_id(self) -> str:
        """The experiment, created on first use and tagged as model training
        (MLflow's UI otherwise opens it in its GenAI view)."""
        client = self.client()
        found = client.get_experiment_by_name(self.experiment())
        if found is None:
            return client.create_experiment(self.experiment(), artifact_location=self.artifact_location(),
                                            tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})
        if found.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:
            client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
        return found.experiment_id

    # --- registry --------------------------------------------------------------------
    def version_by_alias(self, alias: str = CHAMPION) -> Optional[ModelVersion]:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client().get_model_version_by_alias(self.registered_name(), alias)
        except MlflowException:
            return None
        return ModelVersion(int(found.version), found.run_id, dict(found.tags))

    def find_version(self, tag: str, value: str) -> Optional[ModelVersion]:
        """The newest version whose tag has this value (e.g. a data fingerprint)."""
        found = self.client().search_model_versions(f"name='{self.registered_name()}' and tags.{tag}='{value}'")
        if not found:
            return None
        best = max(found, key=lambda v: int(v.version))
        return ModelVersion(int(best.version), best.run_id, dict(best.tags))

    def load_model(self, alias: str = CHAMPION):
        """The scikit-learn model behind ``models:/<name>@<alias>`` (a version
        this process loaded lately is not read again)."""
        found = self.client().get_model_version_by_alias(self.registered_name(), alias)
        key = self._loaded_key(int(found.version), found.run_id)
        with _LOADED_LOCK:
            if key in _LOADED:
                _LOADED.move_to_end(key)
                return _LOADED[key]
        with self._session() as mlflow:
            import mlflow.sklearn  # noqa: F401  (registers the flavour module)

            model = mlflow.sklearn.load_model(f"models:/{self.registered_name()}/{found.version}")
        self._keep_loaded(key, model)
        return model

    def _loaded_key(self, version: int, run_id: str) -> tuple:
        return self.uri(), self.registered_name(), version, run_id

    @staticmethod
    def _keep_loaded(key: tuple, model) -> None:
        with _LOADED_LOCK:
            _LOADED[key] = model
            _LOADED.move_to_end(key)
            while len(_LOADED) > LOADED_MODELS_KEPT:
                _LOADED.popitem(last=False)

    def set_alias(self, alias: str, version: int) -> None:
        self.client().set_registered_model_alias(self.registered_name(), alias, str(version))

    def tag_version(self, version: int, tags: dict) -> None:
        client = self.client()
        for key, value in tags.items():
            client.set_model_version_tag(self.registered_name(), str(version), key, str(value))

    # --- runs -------------------------------------------------------------------------
    def log_model_run(self, model, input_example, params: dict, metrics: dict, tags: dict,
                      trusted_types: tuple[str, ...], run_name: str,
                      datasets: Optional[dict] = None) -> ModelVersion:
        """One run with the model (signature + input example, stored as skops)
        registered as a new version of ``model_name``. ``datasets`` maps a
        context ("training", "validation") to the DataFrame used for it; each
        is logged as the run's input (name, digest, schema and profile only)."""
        experiment = self.experiment_id()
        input_example = _missing_values_allowed(input_example)
        with self._session() as mlflow:
            import mlflow.data
            import mlflow.sklearn
            from mlflow.models import infer_signature

            with mlflow.start_run(experiment_id=experiment, run_name=run_name) as run:
                for context, frame in (datasets or {}).items():
                    mlflow.log_input(_dataset(frame, f"{self.registered_name()}_{context}"), context=context)
                mlflow.log_params({k: _short(v) for k, v in params.items()})
                mlflow.log_metrics({k: float(v) for k, v in metrics.items() if _finite(v)})
                mlflow.set_tags({k: _short(v) for k, v in tags.items()})
                signature = infer_signature(input_example, model.predict_proba(input_example)[:, 1])
                info = mlflow.sklearn.log_model(
                    model, name="model", input_example=input_example, signature=signature,
                    registered_model_name=self.registered_name(), serialization_format="skops",
                    skops_trusted_types=list(trusted_types), pyfunc_predict_fn="predict_proba",
                    pip_requirements=_requirements())
        version = int(info.registered_model_version)
        self.tag_version(version, tags)
        # MLflow has read the stored model back (skops, trusted types only): this run's later steps score
        # with the object it stored instead of reading it a third time
        self._keep_loaded(self._loaded_key(version, run.info.run_id), model)
        return ModelVersion(version, run.info.run_id, dict(tags))

    def log_run(self, run_name: str, metrics: dict, tags: dict, params: Optional[dict] = None) -> str:
        """A run without a model (drift checks); returns its id."""
        experiment = self.experiment_id()
        with self._session() as mlflow:
            with mlflow.start_run(experiment_id=experiment, run_name=run_name) as run:
                if params:
                    mlflow.log_params({k: _short(v) for k, v in params.items()})
                mlflow.log_metrics({k: float(v) for k, v in metrics.items() if _finite(v)})
                mlflow.set_tags({k: _short(v) for k, v in tags.items()})
        return run.info.run_id


SCHEMA_SAMPLE_ROWS = 1000


def _missing_values_allowed(example):
    """The example with whole-number columns as floats. The signature is
    inferred from it, and an integer column there would make the served model
    refuse a row with a missing value (MLflow warns about exactly this)."""
    integers = [c for c in example.columns if example[c].dtype.kind in "iu"]
    return example.astype({c: "float64" for c in integers}) if integers else example


def _dataset(frame, name: str):
    """The frame as an MLflow dataset. MLflow infers a dataset's schema by
    reading every value of every text column (20 s for a 100,000-row fit
    period under load, measured); a column's type shows in its first rows,
    so the schema is read from them. Digest and row counts cover every row."""
    import mlflow.data
    from mlflow.models import infer_signature

    dataset = mlflow.data.from_pandas(frame, name=name)
    with warnings.catch_warnings():   # its hint about integer columns concerns serving, not a record of data
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
        dataset.__dict__["schema"] = infer_signature(frame.head(SCHEMA_SAMPLE_ROWS)).inputs  # its cached property
    return dataset


def _finite(value) -> bool:
    try:
        return value is not None and float(value) == float(value) and abs(float(value)) != float("inf")
    except (TypeError, ValueError):
        return False


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 5000 else text[:4997] + "..."


def _requirements() -> list[str]:
    """Pinned requirements of the model, given explicitly: MLflow's inference
    of them imports the model in a subprocess (3 s of a 3.5 s log, measured)."""
    return [f"{name}=={metadata.version(name)}" for name in ("scikit-learn", "skops", "numpy", "pandas", "scipy")]
