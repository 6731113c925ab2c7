"""Ops: docker-compose.yml, .env.example and the Dockerfile read carefully, and scripts/demo.py run for real.

Docker is not needed: the compose file is parsed with PyYAML and every command it runs is checked
against the real programs (their ``--help``, Django's command list, production-like settings).
The demo tests start the real web server, worker and beat on a free port and stop them again.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
DJANGO_SERVICES = ("web", "worker", "beat")
APP_SERVICES = ("web", "worker", "beat", "mlflow")
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|_KEY$)")
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)")
ONLY_INTERPOLATION = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}$")
# HSTS and the HTTPS redirect belong to the TLS proxy in front of the app (see README).
ACCEPTED_DEPLOY_WARNINGS = {"security.W004", "security.W008"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def documented_variables() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, re.M))


def production_env(**extra: str) -> dict[str, str]:
    """A clean environment like a production container's, without the test run's variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVIEWDESK_", "DJANGO_", "TEST_"))}
    for key in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "CELERY_BROKER_URL"):
        env.pop(key, None)
    env.update(extra)
    return env


def run(argv: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def command_argv(command: str | list[str]) -> list[list[str]]:
    """The programs a compose ``command`` runs: ``sh -c "a && exec b"`` gives [a, b]."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] == ["sh", "-c"]:
        parts = [shlex.split(part) for part in argv[2].split("&&")]
        return [part[1:] if part[0] == "exec" else part for part in parts]
    return [argv]


# --- docker-compose.yml --------------------------------------------------------------------------


def test_compose_runs_the_whole_stack(services):
    assert set(services) == {"postgres", "redis", "web", "worker", "beat", "mlflow"}
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"


def test_one_app_image_is_defined_once_and_shared(compose, services):
    raw = (ROOT / "docker-compose.yml").read_text()
    assert "x-app: &app" in raw
    image = compose["x-app"]["image"]
    assert raw.count(image) == 1
    for name in APP_SERVICES:
        assert services[name]["image"] == image, name
        assert services[name]["build"] == compose["x-app"]["build"], name


def test_every_service_is_health_checked_or_waits_for_healthy_dependencies(services):
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions, not a plain list"
        for dep, rule in depends.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert rule.get("condition") in {"service_healthy", "service_started"}, f"{name} -> {dep}"
            if rule["condition"] == "service_healthy":
                # Otherwise compose would wait forever for a health status that never comes.
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy; it has no healthcheck"
        if "healthcheck" not in service:
            assert depends and all(r["condition"] == "service_healthy" for r in depends.values()), name
    for name in DJANGO_SERVICES:
        conditions = services[name]["depends_on"]
        assert conditions["postgres"]["condition"] == conditions["redis"]["condition"] == "service_healthy"
    for name in ("worker", "beat"):  # they start after web has migrated the database
        assert services[name]["depends_on"]["web"]["condition"] == "service_healthy"


def test_healthchecks_probe_the_real_thing(services):
    def check(name: str) -> str:
        return " ".join(map(str, services[name]["healthcheck"]["test"]))

    assert "pg_isready" in check("postgres")
    assert "redis-cli ping" in check("redis")
    assert "http://127.0.0.1:8000/readyz" in check("web")
    assert "http://127.0.0.1:5000/health" in check("mlflow")
    assert "inspect ping" in check("worker")
    for name in ("web", "mlflow"):  # the images have no curl: these run `python -c CODE`
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"], name
        compile(test[3], f"{name} healthcheck", "exec")


def test_django_services_read_dot_env_and_build_urls_from_it(services):
    for name in DJANGO_SERVICES:
        service = services[name]
        assert service["env_file"] == ".env", name
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert re.fullmatch(r"\$\{SECRET_KEY:\?[^}]+\}", env["SECRET_KEY"]), "SECRET_KEY must be required"


def test_compose_has_no_literal_secrets(services):
    for name, service in services.items():
        env = service.get("environment", {})
        pairs = env.items() if isinstance(env, dict) else (item.partition("=")[::2] for item in env)
        for key, value in pairs:
            value = str(value)
            if SECRET_NAME.search(key):
                assert ONLY_INTERPOLATION.match(value), f"{name}: {key} must come from .env, not {value!r}"
            for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", value):
                assert ONLY_INTERPOLATION.match(password), f"{name}: {key} has a literal password in its URL"


def test_every_variable_compose_uses_is_documented(services):
    raw = (ROOT / "docker-compose.yml").read_text()
    referenced = {a or b for a, b in INTERPOLATION.findall(raw)}
    for service in services.values():
        env = service.get("environment", {})
        referenced |= set(env) if isinstance(env, dict) else {item.partition("=")[0] for item in env}
    assert {"SECRET_KEY", "POSTGRES_PASSWORD"} <= referenced
    missing = referenced - documented_variables()
    assert not missing, f"add to .env.example: {sorted(missing)}"


# --- .env.example ----------------------------------------------------------------------------------


def settings_variables() -> set[str]:
    """Every environment variable reviewapp/settings.py reads, found in its syntax tree."""
    tree = ast.parse((ROOT / "reviewapp" / "settings.py").read_text())
    helpers = {"envbool", "envint", "envlist", "envsecret"}
    found: set[str] = set()
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            if isinstance(func, ast.Name) and func.id in helpers:
                name = node.args[0].value
                if func.id == "envsecret":
                    found.add(f"{name}_FILE")
            elif isinstance(func, ast.Attribute) and func.attr in {"get", "getenv"} and "environ" in ast.unparse(func):
                name = node.args[0].value
            elif isinstance(func, ast.Attribute) and ast.unparse(func) == "os.getenv":
                name = node.args[0].value
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            if isinstance(node.slice, ast.Constant):
                name = node.slice.value
        if isinstance(name, str):
            found.add(name)
    return found


def test_every_variable_settings_reads_is_documented():
    read = settings_variables()
    # Sanity: the parser sees every kind of read settings.py makes.
    assert {"DEBUG", "SECRET_KEY", "SECRET_KEY_FILE", "DATABASE_URL", "INGEST_MAX_ITEMS", "LOG_LEVEL"} <= read
    missing = read - documented_variables()
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_env_example_comments_every_variable_and_holds_no_secret():
    text = (ROOT / ".env.example").read_text()
    required = {
        "DEBUG",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "CELERY_VISIBILITY_TIMEOUT",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_ARTIFACT_ROOT",
        "DELTA_ROOT",
        "REVIEW_LEASE_SECONDS",
        "INGEST_MAX_ITEMS",
        "DATA_UPLOAD_MAX_MEMORY_SIZE",
        "LOG_LEVEL",
        "SESSION_COOKIE_SECURE",
        "REVIEWDESK_VAR_DIR",
        "DATABRICKS_HOST",
        "DATABRICKS_TOKEN",
    }
    assert required <= documented_variables()
    described = False
    for line in text.splitlines():
        if re.match(r"^#? ?[A-Z][A-Z0-9_]*=", line):
            assert described, f"no comment above {line!r}"
        elif line.startswith("#"):
            described = True
        elif not line.strip():
            described = False
    for key in ("SECRET_KEY", "POSTGRES_PASSWORD", "DATABRICKS_TOKEN"):
        values = re.findall(rf"^#? ?{key}=(.*)$", text, re.M)
        assert values == [""], f"{key} must be empty in .env.example, not {values}"
    assert re.search(r"^DEBUG=false$", text, re.M)


# --- the commands compose runs are real --------------------------------------------------------


@functools.cache
def help_of(*cmd: str) -> str:
    """What ``cmd --help`` prints; each program and subcommand is asked once per test run."""
    env = production_env(DEBUG="true", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    result = run([*cmd, "--help"], env)
    assert result.returncode == 0, f"{cmd}: {result.stderr[-2000:]}"
    return result.stdout


def help_text(argv: list[str]) -> str:
    """The ``--help`` texts that cover every option ``argv`` may use."""
    program, *rest = argv
    if program == "python":
        assert rest[0] == "manage.py", argv
        return help_of(PYTHON, "manage.py", rest[1])
    if program == "celery":  # celery -A APP SUBCOMMAND: -A is global, the rest belong to the subcommand
        assert rest[0] == "-A", argv
        celery = str(BIN / "celery")
        return help_of(celery) + help_of(celery, "-A", rest[1], rest[2])
    if program == "mlflow":
        return help_of(str(BIN / "mlflow"), rest[0])
    return help_of(str(BIN / program))


@pytest.mark.slow
def test_compose_commands_exist_with_the_options_they_use(services):
    seen = set()
    runs = [(name, argv) for name in APP_SERVICES for argv in command_argv(services[name]["command"])]
    worker_check = services["worker"]["healthcheck"]["test"]
    assert worker_check[0] == "CMD-SHELL"
    runs.append(("worker healthcheck", shlex.split(worker_check[1])))
    for name, argv in runs:
        assert argv[0] in {"python", "celery", "gunicorn", "mlflow"}, f"{name}: unexpected program {argv[0]}"
        text = help_text(argv)
        for option in (a.split("=")[0] for a in argv if a.startswith("-")):
            known = re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text)
            assert known, f"{name}: `{' '.join(argv)}` uses {option}, which {argv[0]} does not know"
        seen.add(" ".join(argv[:4]))
    assert "python manage.py migrate --noinput" in seen
    assert any(s.startswith("celery -A reviewapp worker") for s in seen)
    assert any(s.startswith("celery -A reviewapp beat") for s in seen)
    assert "celery -A reviewapp inspect" in seen


@pytest.mark.slow
def test_the_wsgi_app_compose_serves_loads_with_production_settings(services, tmp_path):
    command = " ".join(" ".join(argv) for argv in command_argv(services["web"]["command"]))
    target = re.search(r"gunicorn (\S+):(\S+)", command)
    assert target, command
    module, attr = target.groups()
    env = production_env(
        DEBUG="false",
        SECRET_KEY="k3!" + "a1B2c3D4e5F6g7H8i9J0" * 3,
        ALLOWED_HOSTS="example.com",
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
        REVIEWDESK_VAR_DIR=str(tmp_path),
    )
    code = f"import importlib; app = getattr(importlib.import_module({module!r}), {attr!r}); assert callable(app)"
    result = run([PYTHON, "-c", code], env)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_check_deploy_passes_with_production_env(tmp_path):
    env = production_env(
        DEBUG="false",
        SECRET_KEY="k3!" + "a1B2c3D4e5F6g7H8i9J0" * 3,
        ALLOWED_HOSTS="example.com",
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
        REVIEWDESK_VAR_DIR=str(tmp_path),
    )
    result = run([PYTHON, "manage.py", "check", "--deploy"], env)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = set(re.findall(r"\((security\.W\d+|[a-z_.]+\.[EW]\d+)\)", result.stderr + result.stdout))
    assert warnings <= ACCEPTED_DEPLOY_WARNINGS, result.stderr


@pytest.mark.parametrize(
    ("unset", "message"),
    [
        ("SECRET_KEY", "SECRET_KEY is required when DEBUG is off"),
        ("ALLOWED_HOSTS", "ALLOWED_HOSTS is required when DEBUG is off"),
    ],
)
def test_settings_refuse_to_start_without_required_values(tmp_path, unset, message):
    values = {"DEBUG": "false", "SECRET_KEY": "k3!" + "a1B2c3D4e5F6g7H8i9J0" * 3, "ALLOWED_HOSTS": "example.com"}
    values.pop(unset)
    env = production_env(**values, REVIEWDESK_VAR_DIR=str(tmp_path))
    result = run([PYTHON, "manage.py", "check"], env)
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {message}" in result.stderr


# --- Dockerfile ---------------------------------------------------------------------------------


def dockerfile_run_env(text: str, marker: str) -> dict[str, str]:
    """The ``NAME=value`` prefixes of the Dockerfile RUN line that contains ``marker``."""
    joined = text.replace("\\\n", " ")
    line = next(line for line in joined.splitlines() if line.startswith("RUN") and marker in line)
    return dict(re.findall(r"\b([A-Z_]+)=(\S+)", line.split(marker)[0]))


def test_dockerfile_builds_a_slim_non_root_gunicorn_image():
    text = (ROOT / "Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["python:3.11-slim", "python:3.11-slim"]
    assert re.search(r"uv pip install .*--compile-bytecode -r \S*requirements\.txt", text)
    assert "manage.py collectstatic --noinput" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in {"root", "0"}
    assert re.search(r'^CMD \["gunicorn", "reviewapp\.wsgi:application"', text, re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var", ".env"} <= set(ignored)


def test_dockerfile_collectstatic_step_runs_with_its_build_env():
    env_values = dockerfile_run_env((ROOT / "Dockerfile").read_text(), "python manage.py collectstatic")
    assert env_values["DEBUG"] == "false"
    env = production_env(**env_values)
    result = run([PYTHON, "manage.py", "collectstatic", "--noinput", "--dry-run"], env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"\d+ static files? copied", result.stdout), result.stdout


# --- scripts/demo.py -----------------------------------------------------------------------------


# How long a stop may take: demo.py gives each process 10 s before SIGKILL, then runs
# `serve_local_models --stop` (a Django start); on a loaded 2-core machine that is well over 15 s.
STOP_WAIT = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_with_env(marker: str) -> list[int]:
    """Live processes whose environment holds ``marker``: everything the demo started, at any depth."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, a zombie, or not ours to read
            continue
    return found


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo-db") / "template.sqlite3"
    env = production_env(
        DEBUG="true",
        DATABASE_URL=f"sqlite:///{path}",
        REVIEWDESK_VAR_DIR=str(path.parent / "var"),
    )
    result = run([PYTHON, "manage.py", "migrate", "--noinput"], env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return path


class Demo:
    def __init__(self, tmp_path: Path, template: Path, port: int | None = None) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        db = tmp_path / "demo.sqlite3"
        db.write_bytes(template.read_bytes())
        self.var_dir = tmp_path / "var"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "demo.log"
        self.marker = f"REVIEWDESK_VAR_DIR={self.var_dir}"
        env = production_env(
            DEBUG="true", PORT=str(self.port), DATABASE_URL=f"sqlite:///{db}", REVIEWDESK_VAR_DIR=str(self.var_dir)
        )
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [PYTHON, "scripts/demo.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.url + path, timeout=3) as response:  # noqa: S310 - http://127.0.0.1
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            return 0

    def wait_until_up(self, timeout: float = 60) -> None:
        """The demo saw the web server answer (its banner), and the worker and beat have started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"demo exited early:\n{self.output()[-3000:]}"
            out = self.output()
            if f"Reviewdesk is running at {self.url}/" in out and " ready." in out and "beat: Starting" in out:
                assert self.get("/healthz") == 200
                return
            time.sleep(0.3)
        pytest.fail(f"demo not up in {timeout} s:\n{self.output()[-3000:]}")

    def cleanup(self) -> None:
        for pid in processes_with_env(self.marker):  # only what this test started
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def demo(tmp_path, migrated_sqlite):
    started = Demo(tmp_path, migrated_sqlite)
    yield started
    started.cleanup()


def assert_all_gone(demo: Demo) -> None:
    deadline = time.monotonic() + 3
    while processes_with_env(demo.marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = processes_with_env(demo.marker)
    assert not left, f"left running: {left}\n{demo.output()[-3000:]}"


@pytest.mark.slow
def test_demo_serves_then_stops_every_process_on_sigint(demo):
    demo.wait_until_up()
    assert demo.get("/readyz") == 200  # database and the file-system broker under its var dir
    assert len(processes_with_env(demo.marker)) >= 4  # demo.py, web, worker (+ pool child), beat

    demo.proc.send_signal(signal.SIGINT)
    assert demo.proc.wait(timeout=STOP_WAIT) == 0

    assert_all_gone(demo)
    out = demo.output()
    assert f"Reviewdesk is running at {demo.url}/" in out
    assert "reviewer / reviewer" in out
    for prefix in ("   web | ", "worker | ", "  beat | "):
        assert prefix in out, prefix
    assert "SIGINT received" in out and "demo | stopped" in out


@pytest.mark.slow
def test_demo_restarts_at_once_on_the_same_port_after_ctrl_c(demo, tmp_path, migrated_sqlite):
    demo.wait_until_up()
    demo.proc.send_signal(signal.SIGINT)
    assert demo.proc.wait(timeout=STOP_WAIT) == 0
    assert_all_gone(demo)

    # The same port and database, at once: sockets left in TIME_WAIT by the readiness probe and the
    # test's own requests must not make the port look busy.
    again = Demo(tmp_path / "again", migrated_sqlite, port=demo.port)
    try:
        again.wait_until_up()
    finally:
        again.proc.send_signal(signal.SIGINT)
        again.proc.wait(timeout=STOP_WAIT)
        again.cleanup()
    assert "is in use" not in again.output()


@pytest.mark.parametrize("burst", [["SIGTERM", "SIGINT"], ["SIGINT", "SIGTERM", "SIGTERM", "SIGINT", "SIGTERM"]])
@pytest.mark.slow
def test_demo_stops_every_process_on_a_burst_of_signals(demo, burst):
    demo.wait_until_up()
    for name in burst:  # what a signal to the process group plus make's forwarded SIGTERM deliver
        demo.proc.send_signal(getattr(signal, name))
    assert demo.proc.wait(timeout=STOP_WAIT) == 0, demo.output()[-3000:]
    assert_all_gone(demo)
    assert "demo | stopped" in demo.output()


@pytest.mark.slow
def test_demo_stops_the_others_and_fails_when_one_process_dies(demo):
    demo.wait_until_up()
    beat = [
        pid
        for pid in processes_with_env(demo.marker)
        if b"beat" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    ]
    assert len(beat) == 1
    os.kill(beat[0], signal.SIGKILL)

    assert demo.proc.wait(timeout=STOP_WAIT) == 1
    assert_all_gone(demo)
    assert "beat exited with code -9; stopping the others" in demo.output()


@pytest.mark.slow
def test_demo_refuses_a_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = production_env(DEBUG="true", PORT=str(port), REVIEWDESK_VAR_DIR=str(tmp_path))
        result = run([PYTHON, "scripts/demo.py"], env, timeout=30)
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in result.stdout
