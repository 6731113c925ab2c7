"""Reviewdesk settings: every value comes from the environment, checked at start-up.

Embedded defaults (SQLite, a file-system Celery broker, a SQLite MLflow store, all under
``var/``) make ``make demo`` work on a laptop with no services; production sets
``DATABASE_URL``, ``CELERY_BROKER_URL`` and friends (see ``.env.example``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("REVIEWDESK_VAR_DIR", BASE_DIR / "var")).resolve()


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false)")


def envint(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be >= {minimum}")
    return value


def envlist(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [part.strip() for part in raw.split(",") if part.strip()]


def envsecret(name: str) -> str | None:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE`` (Docker secrets)."""
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from None
    return None


DEBUG = envbool("DEBUG", False)
TESTING = envbool("REVIEWDESK_TESTING", False)

SECRET_KEY = envsecret("SECRET_KEY") or ""
if not SECRET_KEY:
    if DEBUG or TESTING:
        SECRET_KEY = "insecure-development-key-only-used-with-DEBUG"  # noqa: S105 - dev only
    else:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off (see .env.example)")
# The key signs sessions, CSRF tokens and password-reset links: a short or repetitive one can be
# guessed offline. Same thresholds as Django's security.W009 check, but fatal outside DEBUG/tests.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5
if not (DEBUG or TESTING) and (
    len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH or len(set(SECRET_KEY)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
):
    raise ImproperlyConfigured(
        f"SECRET_KEY is too weak: it needs at least {SECRET_KEY_MIN_LENGTH} characters and "
        f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} different ones (it has {len(SECRET_KEY)} and {len(set(SECRET_KEY))}). "
        'Generate one with: python -c "import secrets; print(secrets.token_urlsafe(50))"'
    )

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG or TESTING else [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is required when DEBUG is off (comma-separated)")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our own static files, no CDN
    "django_htmx",
    "csp",
    "template_partials",
    "reviewapp",
    "reviewapp.sso",
    "evaluations",
    "pipelines",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "reviewapp.middleware.RejectNulMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "reviewapp.urls"
WSGI_APPLICATION = "reviewapp.wsgi.application"
ASGI_APPLICATION = "reviewapp.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "reviewapp.context_processors.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# https://github.com/jazzband/dj-database-url : postgres://user:pass@host:5432/name or sqlite:///path
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'reviewdesk.sqlite3'}"
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except Exception as exc:  # dj-database-url raises several types for a malformed URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # WAL + a busy timeout let the web process and the worker share one SQLite file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME") or None}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Accounts here approve model releases: long passwords, not derived from the user's own name or email.
# (Demo and test users are made with create_user, which does not run validators.)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    # Test users are made by the hundred; a slow password hash would dominate the suite.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Mail is optional: with EMAIL_URL set (reviewapp/email_url.py), invitations are also mailed.
EMAIL_URL = (os.environ.get("EMAIL_URL") or "").strip()
EMAIL_ENABLED = bool(EMAIL_URL)
if EMAIL_ENABLED:
    from reviewapp.email_url import email_settings

    try:
        globals().update(email_settings(EMAIL_URL))
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "project-list"
LOGOUT_REDIRECT_URL = "login"
# Sign-in throttling (reviewapp/services/login_throttle.py), counted per username and per client IP
# in the shared cache: from the DELAY_AFTER-th failure on, the next attempt must wait 2, 4, 8 … s
# (at most 60 s); at LOCK_AFTER failures the username (or IP) is locked for LOCK_SECONDS. Failures
# are forgotten WINDOW_SECONDS after the last one. API tokens are not affected.
LOGIN_THROTTLE_DELAY_AFTER = envint("LOGIN_THROTTLE_DELAY_AFTER", 3, minimum=1)
LOGIN_THROTTLE_USER_LOCK_AFTER = envint("LOGIN_THROTTLE_USER_LOCK_AFTER", 10, minimum=1)
LOGIN_THROTTLE_IP_LOCK_AFTER = envint("LOGIN_THROTTLE_IP_LOCK_AFTER", 50, minimum=1)
LOGIN_THROTTLE_LOCK_SECONDS = envint("LOGIN_THROTTLE_LOCK_SECONDS", 900, minimum=1)
LOGIN_THROTTLE_WINDOW_SECONDS = envint("LOGIN_THROTTLE_WINDOW_SECONDS", 3600, minimum=1)

# --- Single sign-on: OpenID Connect (reviewapp/sso/, mozilla-django-oidc) ------------------------
# On when OIDC_ISSUER and OIDC_CLIENT_ID are set. Endpoints come from the issuer's
# /.well-known/openid-configuration at first use; an OIDC_OP_*_ENDPOINT set here wins over it.
OIDC_ISSUER = (os.environ.get("OIDC_ISSUER") or "").strip().rstrip("/")
OIDC_PROVIDER_NAME = (os.environ.get("OIDC_PROVIDER_NAME") or "").strip() or "single sign-on"
OIDC_RP_CLIENT_ID = (os.environ.get("OIDC_CLIENT_ID") or "").strip()
OIDC_RP_CLIENT_SECRET = envsecret("OIDC_CLIENT_SECRET") or ""
if OIDC_ISSUER and not (OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET):
    raise ImproperlyConfigured("OIDC_ISSUER is set: OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are required too")
OIDC_RP_SCOPES = (os.environ.get("OIDC_SCOPES") or "openid email profile").strip()
OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ.get("OIDC_OP_AUTHORIZATION_ENDPOINT") or ""
OIDC_OP_TOKEN_ENDPOINT = os.environ.get("OIDC_OP_TOKEN_ENDPOINT") or ""
OIDC_OP_USER_ENDPOINT = os.environ.get("OIDC_OP_USER_ENDPOINT") or ""
OIDC_OP_JWKS_ENDPOINT = os.environ.get("OIDC_OP_JWKS_ENDPOINT") or ""
OIDC_RP_SIGN_ALGO = "RS256"  # ID tokens are checked against the provider's JWKS
OIDC_USE_NONCE = True
OIDC_USE_PKCE = True
OIDC_TIMEOUT = envint("OIDC_TIMEOUT_SECONDS", 5, minimum=1)
OIDC_CREATE_USER = envbool("OIDC_CREATE_USERS", False)
OIDC_ROLE_CLAIM = (os.environ.get("OIDC_ROLE_CLAIM") or "").strip()
OIDC_ROLE_MAP = os.environ.get("OIDC_ROLE_MAP") or ""
# Password sign-in: off hides the form and refuses passwords everywhere (admin included); with
# LOCAL_PASSWORDS_BREAK_GLASS=true superusers (manage.py createsuperuser) may still use one.
LOCAL_PASSWORDS = envbool("LOCAL_PASSWORDS", True)
LOCAL_PASSWORDS_BREAK_GLASS = envbool("LOCAL_PASSWORDS_BREAK_GLASS", False)
if not LOCAL_PASSWORDS and not OIDC_ISSUER and not LOCAL_PASSWORDS_BREAK_GLASS:
    raise ImproperlyConfigured("LOCAL_PASSWORDS=false needs OIDC_ISSUER (or LOCAL_PASSWORDS_BREAK_GLASS=true)")
AUTHENTICATION_BACKENDS = ["reviewapp.sso.backend.SsoBackend", "reviewapp.sso.backend.LocalPasswordBackend"]

# --- Cache: shared by web and worker processes ---------------------------------------------
# Dashboard figures are computed in the background (reviewapp.stats_refresh) and served from here,
# so the cache must be one for all processes: Redis in production, a folder under var/ on a laptop.
CACHE_URL = os.environ.get("CACHE_URL", "").strip()
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL, "KEY_PREFIX": "rd"}
    }
elif TESTING and not CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": CACHE_URL.removeprefix("file://") or str(VAR_DIR / "cache"),
        }
    }
# How often the worker refreshes the dashboard figures of projects that changed.
STATS_REFRESH_SECONDS = envint("STATS_REFRESH_SECONDS", 30, minimum=5)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", not DEBUG and not TESTING)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

# Content-Security-Policy on every response (django-csp 4): scripts, styles, images and fetches only
# from this site; no inline or eval'd script, no <style> elements. Style *attributes* stay allowed
# (progress-bar widths and table alignment of rendered markdown, which nh3 limits to text-align).
# Pages that really need more (none today) use csp.decorators.csp_update.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "reviewapp.api.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON only (no form or multipart bodies), read strictly: see reviewapp/jsoninput.py.
    "DEFAULT_PARSER_CLASSES": ["reviewapp.api.parsers.StrictJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "EXCEPTION_HANDLER": "reviewapp.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# The API schema and its Swagger page: public only when the operator says so (the demo runs with
# DEBUG=true, so they are public there); otherwise a signed-in user or an API token is needed.
API_DOCS_PUBLIC = envbool("API_DOCS_PUBLIC", DEBUG)
SPECTACULAR_SETTINGS = {
    "TITLE": "Reviewdesk API",
    "DESCRIPTION": "Ingest RAG outputs, review them, and read back reviews.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "reviewapp.api.schema.add_error_responses",
    ],
    # Several models have a "kind"; name each enum after its model instead of a hash.
    "ENUM_NAME_OVERRIDES": {
        "QuestionKindEnum": "reviewapp.models.projects.Question.Kind",
        "FlagKindEnum": "reviewapp.models.flags.Flag.Kind",
        "InvitationStatusEnum": "reviewapp.models.invitations.InvitationStatus",
        "RunStatusEnum": "evaluations.models.runs.Run.Status",
        "DeliveryTargetKindEnum": "pipelines.models.pushes.TargetKind",
        "SourceKindEnum": "pipelines.models.sources.SourceKind",
        "SourcePullStatusEnum": "pipelines.models.sources.SourcePull.Status",
    },
}
# The largest ingest body we accept (10,000 items of a few KB each).
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("DATA_UPLOAD_MAX_MEMORY_SIZE", 200 * 1024 * 1024, minimum=1024)
INGEST_MAX_ITEMS = envint("INGEST_MAX_ITEMS", 10_000, minimum=1)

# --- Celery ---------------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "filesystem://"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # A server-less broker for the demo; not durable across a worker crash (use Redis for that).
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.5,
    }
else:
    # visibility_timeout must exceed the longest task; restore scans every 10 s, not every ~100 s.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=5),
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 1,
    }
# Seconds between two runs of the jobs kernel's sweeper (reviewapp.jobs; beat), over every kind of job.
JOBS_SWEEP_SECONDS = envint("JOBS_SWEEP_SECONDS", 30, minimum=1)
# Leases of the kinds that do not renew theirs while they work (reviewapp.jobs): a worker that
# died holding one is swept after this. Each stays above its task's time limit, so a live worker
# is never taken over; only tests and impatient operators shorten them.
EVALUATION_MLFLOW_LOG_LEASE_SECONDS = envint("EVALUATION_MLFLOW_LOG_LEASE_SECONDS", 700, minimum=2)
MLFLOW_ASSESSMENT_SYNC_LEASE_SECONDS = envint("MLFLOW_ASSESSMENT_SYNC_LEASE_SECONDS", 300, minimum=2)
MLFLOW_DATASET_EXPORT_LEASE_SECONDS = envint("MLFLOW_DATASET_EXPORT_LEASE_SECONDS", 600, minimum=2)
# An export renews its lease at every progress write (every 2,000 rows).
EXPORT_JOB_LEASE_SECONDS = envint("EXPORT_JOB_LEASE_SECONDS", 300, minimum=2)
# A project sync (slots and curation after a settings change) renews its lease after every batch of items.
PROJECT_SYNC_LEASE_SECONDS = envint("PROJECT_SYNC_LEASE_SECONDS", 120, minimum=2)
PROJECT_SYNC_BATCH = envint("PROJECT_SYNC_BATCH", 200, minimum=1)
# Seconds between two monitoring refreshes (pipelines/sources/monitoring.py; beat): each project's time
# buckets touched by items, reviews, curated labels or evaluation results changed since the last one.
MONITORING_REFRESH_SECONDS = envint("MONITORING_REFRESH_SECONDS", 60, minimum=5)
# A refresh looks this far back past its watermark, for rows whose transaction committed late.
MONITORING_REFRESH_OVERLAP_SECONDS = envint("MONITORING_REFRESH_OVERLAP_SECONDS", 120, minimum=0)
# A refresh does not renew its lease: above the task's time limit (870 s); tests shorten it.
MONITORING_REFRESH_LEASE_SECONDS = envint("MONITORING_REFRESH_LEASE_SECONDS", 900, minimum=2)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # otherwise a killed child's task is acked and lost
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Where tasks go when nothing routes them; tests point workers and producers at a private queue.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE") or "celery"

# --- MLflow ---------------------------------------------------------------------------------
MLFLOW_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{VAR_DIR / 'mlflow.db'}"
MLFLOW_ARTIFACT_ROOT = os.environ.get("MLFLOW_ARTIFACT_ROOT") or str(VAR_DIR / "mlartifacts")
DELTA_ROOT = os.environ.get("DELTA_ROOT") or str(VAR_DIR / "delta")

# The MLflow UI, for links from a run page (e.g. http://mlflow:5000); blank when there is none (SQLite store).
MLFLOW_UI_URL = (os.environ.get("MLFLOW_UI_URL") or "").rstrip("/")
MLFLOW_EXPERIMENT_PREFIX = os.environ.get("MLFLOW_EXPERIMENT_PREFIX") or "reviewdesk"
# MLflow's client retries a dead server for ~4 minutes by default; a worker should give up fast and
# leave the retry to the jobs kernel's sweeper (the run's MLflow logging is a job: reviewapp.jobs).
MLFLOW_HTTP_REQUEST_MAX_RETRIES = envint("MLFLOW_HTTP_REQUEST_MAX_RETRIES", 2)
MLFLOW_HTTP_REQUEST_TIMEOUT = envint("MLFLOW_HTTP_REQUEST_TIMEOUT", 10, minimum=1)


def _mlflow_http_limits() -> None:
    # MLflow's HTTP client reads these only from the environment, per request (no client argument:
    # pipelines/adapters/mlflow_common.py). Published once, here at the start of every process; the
    # adapters never touch os.environ. A value the operator set is the one read above anyway.
    from pipelines.adapters.mlflow_common import http_limits_environ  # no mlflow import; wiring may name it

    limits = http_limits_environ(max_retries=MLFLOW_HTTP_REQUEST_MAX_RETRIES, timeout=MLFLOW_HTTP_REQUEST_TIMEOUT)
    for key, value in limits.items():
        os.environ.setdefault(key, value)


_mlflow_http_limits()
# The model registry projects' versions are synced from (pipelines/releases/registry.py); blank = the
# tracking URI. "databricks-uc" reads Unity Catalog models (catalog.schema.model names).
MLFLOW_REGISTRY_URI = (os.environ.get("MLFLOW_REGISTRY_URI") or "").strip()
# Seconds between scheduled syncs of every project's registered model versions (beat).
MODEL_REGISTRY_SYNC_SECONDS = envint("MODEL_REGISTRY_SYNC_SECONDS", 300, minimum=10)
# Curated labels written back to their items' MLflow traces as assessments (pipelines/datasets/assessments.py):
# seconds between scheduled syncs (beat; 0 = no schedule, on demand only), labels per sync, and how
# many times a label version that failed (e.g. its trace is not in MLflow yet) is tried again.
MLFLOW_ASSESSMENT_SYNC_SECONDS = envint("MLFLOW_ASSESSMENT_SYNC_SECONDS", 300)
MLFLOW_ASSESSMENT_SYNC_BATCH = envint("MLFLOW_ASSESSMENT_SYNC_BATCH", 500, minimum=1)
MLFLOW_ASSESSMENT_SYNC_MAX_ATTEMPTS = envint("MLFLOW_ASSESSMENT_SYNC_MAX_ATTEMPTS", 5, minimum=1)

# --- Background exports ----------------------------------------------------------------------
# Files of finished background exports are deleted this many hours after they finished.
EXPORT_RETENTION_HOURS = envint("EXPORT_RETENTION_HOURS", 72, minimum=1)

# --- Databricks workspace (Unity Catalog pushes, model serving); blank host = not configured ---
# Read only from the environment; never stored in the database or shown on a page.
DATABRICKS_HOST = (os.environ.get("DATABRICKS_HOST") or "").rstrip("/")
DATABRICKS_TOKEN = envsecret("DATABRICKS_TOKEN") or ""
DATABRICKS_CLIENT_ID = os.environ.get("DATABRICKS_CLIENT_ID") or ""
DATABRICKS_CLIENT_SECRET = envsecret("DATABRICKS_CLIENT_SECRET") or ""
# Every SDK call (with the SDK's own retries) ends within this many seconds.
DATABRICKS_TIMEOUT_SECONDS = envint("DATABRICKS_TIMEOUT_SECONDS", 30, minimum=1)
# Unity Catalog pushes: the SQL warehouse that runs COPY INTO / MERGE, and the Volume folder that
# receives Parquet batches (https://docs.databricks.com/sql/language-manual/delta-copy-into.html).
DATABRICKS_WAREHOUSE_ID = os.environ.get("DATABRICKS_WAREHOUSE_ID") or ""
DATABRICKS_UC_VOLUME = (os.environ.get("DATABRICKS_UC_VOLUME") or "/Volumes/main/reviewdesk/landing").rstrip("/")

# --- Delivery: pushes of curated rows to Delta / Unity Catalog (pipelines/datasets/pushes/) ------------
# Object-store credentials for s3:// abfss:// gs:// Delta URIs, as a JSON object of deltalake
# storage options (https://delta-io.github.io/delta-rs/integrations/object-storage/s3/); never logged.
_delta_options_raw = (envsecret("DELTA_STORAGE_OPTIONS") or "").strip()
try:
    DELTA_STORAGE_OPTIONS: dict[str, str] = json.loads(_delta_options_raw) if _delta_options_raw else {}
except ValueError:
    raise ImproperlyConfigured("DELTA_STORAGE_OPTIONS is not valid JSON") from None
if not isinstance(DELTA_STORAGE_OPTIONS, dict) or not all(isinstance(v, str) for v in DELTA_STORAGE_OPTIONS.values()):
    raise ImproperlyConfigured("DELTA_STORAGE_OPTIONS must be a JSON object of strings")
# Each object-store request of a Delta push times out after this many seconds, and no retry starts
# after it (deltalake `timeout` / `retry_timeout`; DELTA_STORAGE_OPTIONS may set them one by one).
DELTA_STORAGE_TIMEOUT_SECONDS = envint("DELTA_STORAGE_TIMEOUT_SECONDS", 30, minimum=1)
# Seconds between continuous pushes of newly curated labels to targets with the feed on (beat).
DELIVERY_PUSH_INTERVAL_SECONDS = envint("DELIVERY_PUSH_INTERVAL_SECONDS", 300, minimum=5)
# At most this many curated labels per feed micro-batch.
DELIVERY_BATCH_MAX_ROWS = envint("DELIVERY_BATCH_MAX_ROWS", 50000, minimum=1)
# Sources (pipelines.sources): seconds between the beat's look for sources whose interval has passed,
# rows per batch of a pull (each batch commits with the source's watermark), a pull's lease.
SOURCES_DUE_SECONDS = envint("SOURCES_DUE_SECONDS", 30, minimum=1)
SOURCES_BATCH_SIZE = envint("SOURCES_BATCH_SIZE", 500, minimum=1)
SOURCES_PULL_LEASE_SECONDS = envint("SOURCES_PULL_LEASE_SECONDS", 600, minimum=1)
SOURCES_PULL_MAX_ATTEMPTS = envint("SOURCES_PULL_MAX_ATTEMPTS", 5, minimum=1)
# Demo only: seconds between two simulated end-user requests to the demo model (pipelines.demo_traffic);
# 0 (the default) schedules none. scripts/demo.py (make demo) sets it.
DEMO_TRAFFIC_SECONDS = envint("DEMO_TRAFFIC_SECONDS", 0, minimum=0)
# A pull stops taking new batches after this many seconds (below its task's 540 s soft limit); the
# source is then due again at once and the next pull goes on from the watermark.
SOURCES_PULL_MAX_SECONDS = envint("SOURCES_PULL_MAX_SECONDS", 420, minimum=1)
# Each feed batch also re-reads the labels curated this many seconds before its watermark, so a label
# whose transaction committed late (stamped before the watermark moved past it) is still delivered;
# unchanged rows are not rewritten. Longer than any curation transaction may take.
DELIVERY_FEED_OVERLAP_SECONDS = envint("DELIVERY_FEED_OVERLAP_SECONDS", 600)
# A push's lease; above the push task's time limit (570 s), so the sweeper never re-queues a live push.
DELIVERY_PUSH_LEASE_SECONDS = envint("DELIVERY_PUSH_LEASE_SECONDS", 600, minimum=1)
DELIVERY_PUSH_MAX_ATTEMPTS = envint("DELIVERY_PUSH_MAX_ATTEMPTS", 5, minimum=1)
# Milliseconds to pause between record batches of 5,000 rows, to throttle I/O on a shared store
# (0: none); tests use it to kill a worker in the middle of a push.
DELIVERY_BATCH_PAUSE_MS = envint("DELIVERY_BATCH_PAUSE_MS", 0)

# --- Promotion: rollouts, local serving, webhooks (pipelines/releases/rollout/, serving/, webhooks.py) ---
# A rollout worker renews its lease while it works; the sweeper re-queues a rollout whose lease ran out.
ROLLOUT_LEASE_SECONDS = envint("ROLLOUT_LEASE_SECONDS", 60, minimum=2)
# How often a rollout polls a serving endpoint while waiting for it to be ready.
ROLLOUT_POLL_SECONDS = envint("ROLLOUT_POLL_MILLISECONDS", 1000, minimum=50) / 1000
# Attempts of one rollout step on transient errors (5xx, timeouts) before the rollout fails.
ROLLOUT_STEP_MAX_ATTEMPTS = envint("ROLLOUT_STEP_MAX_ATTEMPTS", 3, minimum=1)
# The pace of a canary stage's soak: one health query to the candidate this often (the soak's length
# and its error-rate / p95 limits are Environment settings).
ROLLOUT_SOAK_INTERVAL_SECONDS = envint("ROLLOUT_SOAK_INTERVAL_MILLISECONDS", 1000, minimum=10) / 1000
# Local serving (the default, no Databricks): `mlflow models serve` processes and a weighted proxy
# per environment, tracked by state files in this directory; first port of the demo environments.
LOCAL_SERVING_DIR = Path(os.environ.get("LOCAL_SERVING_DIR") or VAR_DIR / "serving").resolve()
LOCAL_SERVING_BASE_PORT = envint("LOCAL_SERVING_BASE_PORT", 5100, minimum=1024)
# The interface the local endpoints (the environments' proxies) listen on; the model servers behind
# them stay on loopback. 0.0.0.0 inside a container, so the endpoint can be published (docker compose).
LOCAL_SERVING_HOST = os.environ.get("LOCAL_SERVING_HOST") or "127.0.0.1"
# Signed outgoing webhooks on promotion events: comma-separated URLs, and the HMAC-SHA256 secret.
PROMOTION_WEBHOOK_URLS = envlist("PROMOTION_WEBHOOK_URL", [])
PROMOTION_WEBHOOK_SECRET = envsecret("PROMOTION_WEBHOOK_SECRET") or ""

# --- Isolation: what a project may reach outside (pipelines/adapters/outbound.py, docs/security.md) ----------
# Hosts outgoing HTTP may reach although they are loopback, link-local or private addresses (LLM
# endpoints, webhooks, Databricks hosts): comma-separated host names, IP addresses or CIDR networks.
# Public addresses need no entry. Cloud metadata addresses are refused whatever this says. The demo
# (DEBUG) and the tests allow loopback; production allows none unless listed (e.g. "mlflow,10.0.0.0/8").
OUTBOUND_ALLOWED_HOSTS = envlist(
    "OUTBOUND_ALLOWED_HOSTS", ["localhost", "127.0.0.0/8", "::1"] if DEBUG or TESTING else []
)
# LLM endpoints may only name credential variables that start with this prefix, so an endpoint can
# never make the application send DATABASE_URL, SECRET_KEY or cloud credentials to a provider.
SECRET_ENV_PREFIX = (os.environ.get("REVIEWDESK_SECRET_PREFIX") or "REVIEWDESK_SECRET_").strip()
if len(SECRET_ENV_PREFIX) < 4 or not SECRET_ENV_PREFIX.replace("_", "").isalnum() or not SECRET_ENV_PREFIX.isupper():
    raise ImproperlyConfigured("REVIEWDESK_SECRET_PREFIX must be 4+ upper-case letters, digits or '_'")
# Where Delta targets may lie: comma-separated absolute local folders and object-store prefixes
# (s3://bucket/prefix/). DELTA_ROOT (where default targets go) is always allowed.
DELTA_ALLOWED_ROOTS = envlist("DELTA_ALLOWED_ROOTS", [DELTA_ROOT])
# Unity Catalog schemas each project may deliver to: rules separated by ';', each
# "<project slug or *>=<catalog.schema>[,<catalog.schema>...]", where the schema may be '*' (every
# schema of the catalog), e.g. "support=main.reviewdesk,main.support;*=sandbox.*". Unset: none.
UC_ALLOWED_SCHEMAS_RAW = os.environ.get("UC_ALLOWED_SCHEMAS", "")


def _isolation_settings_check() -> None:
    from pipelines.adapters import outbound  # standard library only; settings is the wiring and may name it

    for name, check in (
        ("OUTBOUND_ALLOWED_HOSTS", lambda: outbound.allowed_hosts_parse(OUTBOUND_ALLOWED_HOSTS)),
        ("DELTA_ALLOWED_ROOTS", lambda: outbound.delta_roots_parse([*DELTA_ALLOWED_ROOTS, DELTA_ROOT])),
        ("UC_ALLOWED_SCHEMAS", lambda: outbound.uc_schemas_parse(UC_ALLOWED_SCHEMAS_RAW)),
    ):
        try:
            check()
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {exc}") from None


_isolation_settings_check()

# --- Evaluations: model endpoints and LLM judges -------------------------------------------
# Model endpoints the deployment manages as code: a JSON list of objects with name, kind
# (databricks_serving | openai_compatible | mlflow_model), url, endpoint_name, model,
# credential_env (the NAME of the variable holding the key), rate_limit_rpm, timeout_seconds,
# max_retries, max_concurrency, enabled. They win over admin-made endpoints of the same name;
# see evaluations/endpoints.py and docs/scorers.md.
_endpoints_raw = os.environ.get("REVIEWDESK_ENDPOINTS", "").strip()
try:
    EVALUATION_ENDPOINTS: list[dict[str, object]] = json.loads(_endpoints_raw) if _endpoints_raw else []
except ValueError as exc:
    raise ImproperlyConfigured(f"REVIEWDESK_ENDPOINTS is not valid JSON: {exc}") from None
if not isinstance(EVALUATION_ENDPOINTS, list) or not all(isinstance(e, dict) for e in EVALUATION_ENDPOINTS):
    raise ImproperlyConfigured("REVIEWDESK_ENDPOINTS must be a JSON list of objects")
# The endpoint LLM judges call when a suite does not name one.
EVALUATION_JUDGE_ENDPOINT = os.environ.get("REVIEWDESK_JUDGE_ENDPOINT", "").strip()

# --- Evaluations ----------------------------------------------------------------------------
# Custom scorers: modules with @scorer functions (evaluations/scorers/registry.py), comma-separated.
EVALUATION_SCORER_MODULES = envlist("REVIEWDESK_SCORER_MODULES", [])
EVALUATION_CHUNK_SIZE = envint("EVALUATION_CHUNK_SIZE", 100, minimum=1)
# A worker renews its chunk's lease while it works; the sweeper re-queues a chunk whose lease ran out.
EVALUATION_CHUNK_LEASE_SECONDS = envint("EVALUATION_CHUNK_LEASE_SECONDS", 120, minimum=2)
EVALUATION_CHUNK_MAX_ATTEMPTS = envint("EVALUATION_CHUNK_MAX_ATTEMPTS", 5, minimum=1)
# A chunk still pending this long after it was enqueued is enqueued again (a lost message).
EVALUATION_PENDING_REQUEUE_SECONDS = envint("EVALUATION_PENDING_REQUEUE_SECONDS", 600, minimum=5)
# Default share of errored rows above which a run fails (a suite version may set its own).
EVALUATION_MAX_ERROR_RATE = envint("EVALUATION_MAX_ERROR_RATE_PERCENT", 20, minimum=0) / 100
# Concurrent calls of LLM-judge scorers within one chunk (code scorers run inline).
EVALUATION_JUDGE_CONCURRENCY = envint("EVALUATION_JUDGE_CONCURRENCY", 16, minimum=1)

# --- Review queue ---------------------------------------------------------------------------
REVIEW_LEASE_SECONDS = envint("REVIEW_LEASE_SECONDS", 600, minimum=30)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

for path in (VAR_DIR, BROKER_DIR / "queue", BROKER_DIR / "processed", BROKER_DIR / "control"):
    path.mkdir(parents=True, exist_ok=True)
