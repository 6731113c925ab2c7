"""The MLflow model-registry adapter: register pyfunc models, list versions, load and predict.

The only module that imports ``mlflow`` for the registry and pyfunc models (run logging lives in
``mlflow_tracking.py``). ``import mlflow`` costs ~1.4 s, so it happens inside the functions, in
workers and commands, never at Django start-up. Every function takes an
:class:`~pipelines.adapters.mlflow_common.MlflowConfig` (the app builds it from its settings): tracking
and registry use ``config.tracking_uri`` (the sync and aliases ``config.registry``); new experiments
keep artifacts under ``config.artifact_root``. HTTP limits and Databricks credentials: see
``mlflow_common`` (nothing here changes ``os.environ``).

Failures become :class:`TransientPipelineError` (tracking server unreachable or erroring) or
:class:`PermanentPipelineError` (no such model or version, a model that cannot be loaded, a model
that fails on an input).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pipelines.adapters.errors import PermanentPipelineError, TransientPipelineError
from pipelines.adapters.mlflow_common import MlflowConfig, mlflow_error, registry_store, store_error, tracking_store

if TYPE_CHECKING:
    from mlflow import MlflowClient

T = TypeVar("T")
SYSTEM = "mlflow"

_models: dict[tuple[str, str], ModelProcess] = {}
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


def _process_uris(config: MlflowConfig) -> None:
    """Point MLflow's process-wide URIs at the deployment's tracking server (which MLflow also exports
    as MLFLOW_TRACKING_URI). Only for the two MLflow 3.17 paths that read nothing else: the fluent
    logging of a pyfunc model (start_run, log_model) and the resolution of a ``models:/name/version``
    URI when downloading (``ModelsArtifactRepository._get_model_uri_infos`` reads
    ``mlflow.get_registry_uri()``). The value is the same every call: the deployment's own."""
    import mlflow

    mlflow.set_tracking_uri(config.tracking_uri)
    mlflow.set_registry_uri(config.tracking_uri)


def _client(config: MlflowConfig) -> MlflowClient:
    from mlflow import MlflowClient

    # pyfunc models are registered in the tracking server's own registry.
    return MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)


def _call(what: str, fn: Callable[[], T]) -> T:
    from mlflow.exceptions import MlflowException

    try:
        return fn()
    except MlflowException as exc:
        raise mlflow_error(f"{what}: {exc.message}", exc) from None
    except (ConnectionError, TimeoutError) as exc:
        raise TransientPipelineError(f"{what}: {type(exc).__name__}: {exc}", system=SYSTEM) from None
    except (ImportError, FileNotFoundError) as exc:
        raise PermanentPipelineError(f"{what}: {type(exc).__name__}: {exc}", system=SYSTEM) from None


def experiment_ensure(config: MlflowConfig, name: str) -> str:
    """The id of experiment ``name``, created with its artifacts under ``config.artifact_root`` if missing."""
    client = _client(config)

    def get_or_create() -> str:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        root = config.artifact_root
        location = f"{root.rstrip('/')}/{name}" if "://" in root or root.endswith(":/") else None
        if location is None:
            path = Path(root) / name
            path.mkdir(parents=True, exist_ok=True)
            location = path.resolve().as_uri()
        return str(client.create_experiment(name, artifact_location=location))

    return _call(f"experiment {name!r}", get_or_create)


def model_versions_list(config: MlflowConfig, *, model_name: str) -> list[ModelVersionInfo]:
    """Every version of a registered model, oldest first ([] when the model does not exist)."""
    client = _client(config)

    def search() -> list[ModelVersionInfo]:
        versions = client.search_model_versions(f"name = '{model_name}'")
        infos = [ModelVersionInfo(v.name, str(v.version), v.run_id or "", dict(v.tags or {})) for v in versions]
        return sorted(infos, key=lambda v: int(v.version))

    return _call(f"versions of {model_name!r}", search)


def pyfunc_loader_model_register(
    config: MlflowConfig,
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

    experiment_id = experiment_ensure(config, experiment_name)
    client = _client(config)
    _process_uris(config)  # log_model exists only in the fluent API

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


# Model code runs in a process of its own (pipelines/adapters/model_runner.py) whose environment holds none of
# the application's secrets; the worker only downloads the model's files.
MODEL_LOAD_TIMEOUT = 180.0
MODEL_PREDICT_TIMEOUT = 120.0
_BASE_DIR = Path(__file__).resolve().parents[2]  # the checkout, so `-m pipelines.adapters.model_runner` resolves
_REGISTRY_ENV = {"MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD"}


class ModelProcess:
    """One ``pipelines.adapters.model_runner`` process serving one downloaded model, a request at a time."""

    def __init__(self, model_uri: str, path: str, *, secret_env_prefix: str) -> None:
        from pipelines.adapters.outbound import environ_without_secrets

        self.model_uri = model_uri
        self.lock = threading.Lock()
        self._buffer = b""
        self.process = subprocess.Popen(  # noqa: S603 - our own module, a path we downloaded
            [sys.executable, "-m", "pipelines.adapters.model_runner", path],
            cwd=_BASE_DIR,
            # The model is on disk already: it needs no registry address either (which may hold a password).
            env={
                k: v
                for k, v in environ_without_secrets(secret_env_prefix=secret_env_prefix).items()
                if k not in _REGISTRY_ENV
            },
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        reply = self._read(MODEL_LOAD_TIMEOUT, f"load {model_uri}")
        if "error" in reply:
            self.stop()
            raise PermanentPipelineError(f"load {model_uri}: {reply['error']}", system=SYSTEM)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def predict(self, inputs: list[dict[str, Any]]) -> list[Any]:
        assert self.process.stdin is not None
        with self.lock:
            try:
                self.process.stdin.write(json.dumps(inputs).encode() + b"\n")
                self.process.stdin.flush()
            except (BrokenPipeError, OSError):
                raise TransientPipelineError(
                    f"{self.model_uri}: the model process has stopped", system=SYSTEM
                ) from None
            reply = self._read(MODEL_PREDICT_TIMEOUT, f"predict {self.model_uri}")
        if "error" in reply:
            raise PermanentPipelineError(f"{self.model_uri} failed on its input: {reply['error']}", system=SYSTEM)
        return list(reply.get("output") or [])

    def _read(self, timeout: float, what: str) -> dict[str, Any]:
        """The next protocol line, within ``timeout`` seconds; a dead or silent process is transient."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise TransientPipelineError(f"{what}: no answer in {timeout:.0f} s", system=SYSTEM)
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.stop()
                    raise TransientPipelineError(f"{what}: the model process exited", system=SYSTEM)
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def _model_download(config: MlflowConfig, model_uri: str) -> str:
    """The model's files in a local folder, fetched through the registry; no model code runs here."""
    import mlflow.artifacts

    _process_uris(config)  # models:/ URIs resolve through the process-wide registry URI
    folder = tempfile.mkdtemp(prefix="reviewdesk-model-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return _call(
        f"download {model_uri}",
        lambda: mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri,
            dst_path=folder,
            tracking_uri=config.tracking_uri,
            registry_uri=config.tracking_uri,
        ),
    )


def pyfunc_model_load(config: MlflowConfig, model_uri: str) -> ModelProcess:
    """The model process serving ``model_uri``, started once per worker process (``models:/name/version``
    never changes) and again if it died."""
    key = (config.tracking_uri, model_uri)
    with _models_lock:
        running = _models.get(key)
        if running is not None and running.alive():
            return running
        lock = _load_locks.setdefault(key, threading.Lock())
    with lock:  # one load per model, without blocking loads of other models
        running = _models.get(key)
        if running is None or not running.alive():
            running = ModelProcess(
                model_uri, _model_download(config, model_uri), secret_env_prefix=config.secret_env_prefix
            )
            atexit.register(running.stop)
            _models[key] = running
        return running


def pyfunc_predict(config: MlflowConfig, *, model_uri: str, inputs: list[dict[str, Any]]) -> list[Any]:
    """Predict with a registered pyfunc model; one output per input (a list, whatever the model returns)."""
    output = pyfunc_model_load(config, model_uri).predict(inputs)
    if len(output) != len(inputs):
        raise PermanentPipelineError(
            f"{model_uri} returned {len(output)} outputs for {len(inputs)} inputs", system=SYSTEM
        )
    return output


# --- Registry sync: versions, aliases and the pipeline behind each version (helper "evidence") ---
# Used by pipelines.releases.registry.registry_sync. The registry may differ from the tracking server:
# config.registry_uri (blank = the tracking URI), e.g. "databricks-uc" for Unity Catalog models
# (three-level names) with tracking_uri="databricks" for their runs; the workspace and its
# credentials come from config.databricks (see mlflow_common.databricks_host_creds).
# Tested against a local SQLite registry and against tests/fakes/databricks_api.py (UC).

PROMPT_TEMPLATE_KEY = "prompt_template"
PROMPT_TEMPLATE_ARTIFACTS = ("prompt_template.txt", "prompt_template.md", "prompt.txt")
PROMPT_TEMPLATE_MAX_BYTES = 200_000


@dataclass(frozen=True)
class RegistryVersion:
    """One version as the registry describes it, with the aliases that point at it."""

    name: str
    version: str
    run_id: str
    source: str
    status: str
    description: str
    aliases: tuple[str, ...]
    tags: dict[str, str]
    created_at_ms: int | None


@dataclass(frozen=True)
class RunPipeline:
    """The params of the run that logged a version, and its prompt template ("" when none was logged)."""

    params: dict[str, str]
    prompt_template: str
    found: bool = True  # False: the run is gone (deleted, or in a workspace we cannot read)


class _RegistryClient:
    """The few ``MlflowClient`` calls the sync and the aliases make, on stores built from ``config``:
    on Databricks with the credentials passed in (``mlflow_common``), elsewhere MLflow's own client.
    No process-wide ``set_*_uri`` here: the sync must not change where other code logs."""

    def __init__(self, config: MlflowConfig) -> None:
        from mlflow import MlflowClient

        self.config = config
        self._client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.registry)
        self._registry = registry_store(config) if config.registry_is_databricks else None
        self._tracking = tracking_store(config) if config.tracking_is_databricks else None

    def get_registered_model(self, name: str) -> Any:
        if self._registry is None:
            return self._client.get_registered_model(name)
        return self._registry.get_registered_model(name)

    def search_model_versions(self, filter_string: str, page_token: str | None = None) -> Any:
        if self._registry is None:
            return self._client.search_model_versions(filter_string, page_token=page_token)
        from mlflow.store.model_registry import SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT

        return self._registry.search_model_versions(
            filter_string, SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT, None, page_token
        )

    def get_model_version(self, name: str, version: str) -> Any:
        if self._registry is None:
            return self._client.get_model_version(name, version)
        return self._registry.get_model_version(name, version)

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        if self._registry is None:
            return self._client.get_model_version_by_alias(name, alias)
        return self._registry.get_model_version_by_alias(name, alias)

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        if self._registry is None:
            self._client.set_registered_model_alias(name, alias, version)
        else:
            self._registry.set_registered_model_alias(name, alias, version)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        if self._registry is None:
            self._client.delete_registered_model_alias(name, alias)
        else:
            self._registry.delete_registered_model_alias(name, alias)

    def get_run(self, run_id: str) -> Any:
        return self._client.get_run(run_id) if self._tracking is None else self._tracking.get_run(run_id)

    def list_artifacts(self, run_id: str) -> Any:
        return self._client.list_artifacts(run_id)

    def download_artifacts(self, run_id: str, path: str, dst: str) -> str:
        return str(self._client.download_artifacts(run_id, path, dst))


def _call_any(what: str, fn: Callable[[], T]) -> T:
    """Like :func:`_call`, and also maps HTTP and database errors of a store."""
    try:
        return _call(what, fn)
    except (PermanentPipelineError, TransientPipelineError):
        raise
    except Exception as exc:
        raise store_error(f"{what}: {type(exc).__name__}: {str(exc)[:500]}", exc) from None


def registered_model_versions(config: MlflowConfig, *, model_name: str) -> list[RegistryVersion]:
    """Every version of ``model_name`` with its aliases, oldest first.

    PermanentPipelineError when the registered model does not exist (so a typo in the project's
    model name never marks every synced version deleted).
    """
    quoted = model_name.replace("\\", "\\\\").replace("'", "\\'")
    unity_catalog = config.registry_is_unity_catalog

    def read() -> list[RegistryVersion]:
        client = _RegistryClient(config)
        model = client.get_registered_model(model_name)
        by_version: dict[str, list[str]] = {}
        raw_aliases = model.aliases or {}
        pairs = raw_aliases.items() if isinstance(raw_aliases, dict) else ((a.alias, a.version) for a in raw_aliases)
        for alias, version in pairs:
            by_version.setdefault(str(version), []).append(str(alias))
        found: list[Any] = []
        page_token = None
        while True:  # a registry may answer in pages (Unity Catalog does)
            page = client.search_model_versions(f"name = '{quoted}'", page_token=page_token)
            found.extend(page)
            page_token = page.token
            if not page_token:
                break
        if unity_catalog:
            # UC search results carry no tags or aliases (MLflow's ModelVersionSearch): read each version.
            found = [client.get_model_version(model_name, str(v.version)) for v in found]
        out = []
        for v in found:
            out.append(
                RegistryVersion(
                    name=str(v.name),
                    version=str(v.version),
                    run_id=str(v.run_id or ""),
                    source=str(v.source or ""),
                    status=str(v.status or ""),
                    description=str(v.description or ""),
                    aliases=tuple(sorted(set(by_version.get(str(v.version), [])) | set(v.aliases or []))),
                    tags={str(k): str(val) for k, val in (v.tags or {}).items()},
                    created_at_ms=int(v.creation_timestamp) if v.creation_timestamp else None,
                )
            )
        return sorted(out, key=lambda v: (len(v.version), v.version))

    return _call_any(f"versions of {model_name!r}", read)


def run_pipeline_read(config: MlflowConfig, *, run_id: str, version_tags: dict[str, str] | None = None) -> RunPipeline:
    """The run's params and its prompt template.

    The template is looked for, in order: a ``prompt_template`` param of the run, a
    ``prompt_template`` tag of the version, then of the run, then a text artifact at the run's
    root (``prompt_template.txt`` / ``.md`` / ``prompt.txt``; not on a Databricks tracking server,
    whose run artifacts need the workspace's artifact APIs). A run that no longer exists gives
    empty params (``found=False``); a store that is down raises TransientPipelineError.
    """
    from mlflow.exceptions import MlflowException

    tags = version_tags or {}
    if not run_id:
        return RunPipeline(params={}, prompt_template=tags.get(PROMPT_TEMPLATE_KEY, ""), found=False)

    def read() -> RunPipeline:
        client = _RegistryClient(config)
        try:
            run = client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "PERMISSION_DENIED"):
                return RunPipeline(params={}, prompt_template=tags.get(PROMPT_TEMPLATE_KEY, ""), found=False)
            raise
        params = {str(k): str(v) for k, v in (run.data.params or {}).items()}
        template = params.get(PROMPT_TEMPLATE_KEY) or tags.get(PROMPT_TEMPLATE_KEY) or ""
        template = template or str((run.data.tags or {}).get(PROMPT_TEMPLATE_KEY, ""))
        if not template and not config.tracking_is_databricks:
            names = {a.path for a in client.list_artifacts(run_id) if not a.is_dir}
            for name in PROMPT_TEMPLATE_ARTIFACTS:
                if name in names:
                    import tempfile

                    with tempfile.TemporaryDirectory(prefix="prompt-") as tmp:
                        local = Path(client.download_artifacts(run_id, name, tmp))
                        with local.open("rb") as fh:
                            raw = fh.read(PROMPT_TEMPLATE_MAX_BYTES)
                    template = raw.decode("utf-8", errors="replace")
                    break
        return RunPipeline(params=params, prompt_template=template)

    return _call_any(f"run {run_id}", read)


# --- Promotion: registry aliases (helper "promotion") ----------------------------------------------
# The rollout's first step points the environment's alias (e.g. "champion") at the promoted version,
# and a failed rollout or a rollback points it back. Same registry as the sync (config.registry).


def registered_model_alias_get(config: MlflowConfig, *, model_name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    def get() -> str | None:
        client = _RegistryClient(config)
        try:
            return str(client.get_model_version_by_alias(model_name, alias).version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return None
            raise

    return _call_any(f"alias {alias!r} of {model_name!r}", get)


def registered_model_alias_set(config: MlflowConfig, *, model_name: str, alias: str, version: str) -> None:
    _call_any(
        f"set alias {alias!r} of {model_name!r} to v{version}",
        lambda: _RegistryClient(config).set_registered_model_alias(model_name, alias, str(version)),
    )


def registered_model_alias_delete(config: MlflowConfig, *, model_name: str, alias: str) -> None:
    if registered_model_alias_get(config, model_name=model_name, alias=alias) is None:
        return
    _call_any(
        f"delete alias {alias!r} of {model_name!r}",
        lambda: _RegistryClient(config).delete_registered_model_alias(model_name, alias),
    )
