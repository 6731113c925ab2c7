"""The MLflow model-registry adapter: register pyfunc models, list versions, load and predict.

The only module that imports ``mlflow`` for the registry and pyfunc models (run logging lives in
``mlflow_tracking.py``). ``import mlflow`` costs ~1.4 s, so it happens inside the functions, in
workers and commands, never at Django start-up. Tracking and registry both use
``settings.MLFLOW_TRACKING_URI``; new experiments keep artifacts under ``settings.MLFLOW_ARTIFACT_ROOT``.

Failures become :class:`TransientPipelineError` (tracking server unreachable or erroring) or
:class:`PermanentPipelineError` (no such model or version, a model that cannot be loaded, a model
that fails on an input).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings

from pipelines.errors import PermanentPipelineError, TransientPipelineError

if TYPE_CHECKING:
    from mlflow import MlflowClient

T = TypeVar("T")
SYSTEM = "mlflow"
PERMANENT_CODES = {
    "RESOURCE_DOES_NOT_EXIST",
    "INVALID_PARAMETER_VALUE",
    "BAD_REQUEST",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "INVALID_STATE",
    "RESOURCE_ALREADY_EXISTS",
    "NOT_FOUND",
}

_models: dict[tuple[str, str], Any] = {}
_models_lock = threading.Lock()
_load_locks: dict[tuple[str, str], threading.Lock] = {}


@dataclass(frozen=True)
class ModelVersionInfo:
    name: str
    version: str
    run_id: str
    tags: dict[str, str]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def tracking_uri() -> str:
    return str(settings.MLFLOW_TRACKING_URI)


def _client() -> MlflowClient:
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri()
    # The fluent API (start_run, log_model, load_model) reads the process-wide URIs.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _call(what: str, fn: Callable[[], T]) -> T:
    from mlflow.exceptions import MlflowException

    try:
        return fn()
    except MlflowException as exc:
        error_class = PermanentPipelineError if exc.error_code in PERMANENT_CODES else TransientPipelineError
        raise error_class(f"{what}: {exc.message}", system=SYSTEM) from None
    except (ConnectionError, TimeoutError) as exc:
        raise TransientPipelineError(f"{what}: {type(exc).__name__}: {exc}", system=SYSTEM) from None
    except (ImportError, FileNotFoundError) as exc:
        raise PermanentPipelineError(f"{what}: {type(exc).__name__}: {exc}", system=SYSTEM) from None


def experiment_ensure(name: str) -> str:
    """The id of experiment ``name``, created with its artifacts under MLFLOW_ARTIFACT_ROOT if missing."""
    client = _client()

    def get_or_create() -> str:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        root = str(settings.MLFLOW_ARTIFACT_ROOT)
        location = f"{root.rstrip('/')}/{name}" if "://" in root or root.endswith(":/") else None
        if location is None:
            path = Path(root) / name
            path.mkdir(parents=True, exist_ok=True)
            location = path.resolve().as_uri()
        return str(client.create_experiment(name, artifact_location=location))

    return _call(f"experiment {name!r}", get_or_create)


def model_versions_list(*, model_name: str) -> list[ModelVersionInfo]:
    """Every version of a registered model, oldest first ([] when the model does not exist)."""
    client = _client()

    def search() -> list[ModelVersionInfo]:
        versions = client.search_model_versions(f"name = '{model_name}'")
        infos = [ModelVersionInfo(v.name, str(v.version), v.run_id or "", dict(v.tags or {})) for v in versions]
        return sorted(infos, key=lambda v: int(v.version))

    return _call(f"versions of {model_name!r}", search)


def pyfunc_loader_model_register(
    *,
    model_name: str,
    experiment_name: str,
    run_name: str,
    loader_module: str,
    data_path: Path,
    code_path: Path,
    params: dict[str, str],
    tags: dict[str, str],
    description: str = "",
) -> ModelVersionInfo:
    """Log a pyfunc model (``loader_module`` + ``data_path``, code from ``code_path``) in a new run and register it.

    The run records ``params`` and ``tags``; the new model version gets ``tags`` too, so callers
    can find a version again by what it is rather than by its number.
    """
    import mlflow

    experiment_id = experiment_ensure(experiment_name)
    client = _client()

    def log() -> ModelVersionInfo:
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
            mlflow.log_params(params)
            mlflow.set_tags(tags)
            info = mlflow.pyfunc.log_model(
                name="model",
                loader_module=loader_module,
                data_path=str(data_path),
                code_paths=[str(code_path)],
                # Only the standard library is needed at load time; naming the requirement skips
                # MLflow's inference, which loads the model in a subprocess.
                pip_requirements=[f"mlflow=={mlflow.__version__}"],
                registered_model_name=model_name,
            )
        version = str(info.registered_model_version)
        for key, value in tags.items():
            client.set_model_version_tag(model_name, version, key, value)
        if description:
            client.update_model_version(model_name, version, description=description)
        return ModelVersionInfo(model_name, version, run.info.run_id, dict(tags))

    return _call(f"register {model_name!r}", log)


def pyfunc_model_load(model_uri: str) -> Any:
    """``mlflow.pyfunc.load_model(model_uri)``, once per process: ``models:/name/version`` never changes."""
    key = (tracking_uri(), model_uri)
    with _models_lock:
        if key in _models:
            return _models[key]
        lock = _load_locks.setdefault(key, threading.Lock())
    with lock:  # one load per model, without blocking loads of other models
        if key not in _models:
            import mlflow.pyfunc

            _client()
            _models[key] = _call(f"load {model_uri}", lambda: mlflow.pyfunc.load_model(model_uri))
        return _models[key]


def pyfunc_predict(*, model_uri: str, inputs: list[dict[str, Any]]) -> list[Any]:
    """Predict with a registered pyfunc model; one output per input (a list, whatever the model returns)."""
    model = pyfunc_model_load(model_uri)
    try:
        output = model.predict(inputs)
    except Exception as exc:  # the model's own code: any exception means "this input failed"
        raise PermanentPipelineError(
            f"{model_uri} failed on its input: {type(exc).__name__}: {exc}", system=SYSTEM
        ) from None
    if hasattr(output, "to_dict"):
        output = output.to_dict(orient="records")
    elif hasattr(output, "tolist"):
        output = output.tolist()
    output = list(output)
    if len(output) != len(inputs):
        raise PermanentPipelineError(
            f"{model_uri} returned {len(output)} outputs for {len(inputs)} inputs", system=SYSTEM
        )
    return output
