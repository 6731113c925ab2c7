"""Run the test suite against the best services this machine has.

PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 are used when they answer; otherwise the
suite runs on SQLite and the tests that need a service are skipped, each with its reason. On CI
(``CI=true``) every service is required and a skipped service test fails the run.

The tests run in parallel, one pytest-xdist worker per core, each with its own test database
(``_gw0``, ``_gw1``…) and var folder (tests/xdist_env.py). ``--fast`` (``make test-fast``) leaves
out the tests marked ``slow`` and keeps the test databases between runs (``--reuse-db``; pass
``--create-db`` after a migration changed one in place). Pass ``-n 0`` to run in one process
(``--pdb`` and ``--trace`` do that by themselves).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://reviewdesk@127.0.0.1:5432/reviewdesk")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def postgres_ok(url: str) -> str | None:
    try:
        import psycopg

        with psycopg.connect(url.replace("postgres://", "postgresql://"), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return None
    except Exception as exc:
        return (
            f"PostgreSQL unreachable at {url}: {str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__}"
        )


# Who may create our role and database on a local PostgreSQL (trust or peer authentication, as a
# fresh Debian install has for the postgres superuser); the first that connects is used.
PG_ADMIN_URLS = ("postgresql://postgres@127.0.0.1:5432/postgres", "postgresql:///postgres")


def postgres_prepare(url: str) -> str | None:
    """Create the test role (LOGIN CREATEDB: pytest-django creates its own test database) and its
    database on a local PostgreSQL that lets an administrator in, as .ci/run does. Returns why not."""
    import psycopg
    from psycopg import sql

    parts = url.split("//", 1)[1]
    role, _, rest = parts.partition("@")
    role = role.split(":", 1)[0]
    host = rest.split("/", 1)[0].split(":", 1)[0]
    dbname = rest.split("/", 1)[1].split("?", 1)[0] if "/" in rest else role
    if host not in ("127.0.0.1", "localhost", "::1"):
        return f"not creating role {role!r} on a PostgreSQL that is not local ({host})"
    last = ""
    for admin_url in PG_ADMIN_URLS:
        try:
            with psycopg.connect(admin_url, connect_timeout=2, autocommit=True) as conn:
                if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(role)))
                    print(f"note: created PostgreSQL role {role} (LOGIN CREATEDB)", flush=True)
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone():
                    conn.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(role))
                    )
                    print(f"note: created PostgreSQL database {dbname}", flush=True)
            return None
        except Exception as exc:  # no admin access this way: try the next, else say why
            last = str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__
    return f"could not create role {role!r} as an administrator: {last}"


def redis_ok(url: str) -> str | None:
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    try:
        with socket.create_connection((host, int(port or 6379)), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(16).startswith(b"+PONG"):
                return f"Redis at {url} did not answer PING"
        return None
    except OSError as exc:
        return f"Redis unreachable at {url}: {exc}"


def main() -> int:
    env = os.environ
    env.setdefault("REVIEWDESK_TESTING", "true")
    env.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
    env.setdefault("REVIEWDESK_VAR_DIR", os.path.abspath("var/test"))
    if "DATABASE_URL" not in env:
        why = postgres_ok(PG_URL)
        if why is not None and "does not exist" in why and postgres_prepare(PG_URL) is None:
            why = postgres_ok(PG_URL)
        if why is None:
            env["DATABASE_URL"] = PG_URL
        else:
            env["REVIEWDESK_SKIP_POSTGRES"] = why
            env["DATABASE_URL"] = f"sqlite:///{env['REVIEWDESK_VAR_DIR']}/test.sqlite3"
    if "REVIEWDESK_TEST_REDIS_URL" not in env:
        why = redis_ok(REDIS_URL)
        if why is None:
            env["REVIEWDESK_TEST_REDIS_URL"] = REDIS_URL
        else:
            env["REVIEWDESK_SKIP_REDIS"] = why
    if not shutil.which("chromium") and not os.path.exists("/usr/bin/chromium"):
        env["REVIEWDESK_SKIP_BROWSER"] = "Chromium not found at /usr/bin/chromium (apt-get install -y chromium)"
    for key in ("REVIEWDESK_SKIP_POSTGRES", "REVIEWDESK_SKIP_REDIS", "REVIEWDESK_SKIP_BROWSER"):
        if key in env:
            print(f"note: {env[key]}", flush=True)
    print(f"database: {env['DATABASE_URL']}", flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "pytest", *pytest_args(sys.argv[1:])])


# Options after which one process is wanted: a debugger needs the terminal, and xdist is told its own way.
SERIAL_OPTIONS = ("-n", "--numprocesses", "--pdb", "--trace", "-p no:xdist", "-pno:xdist")


def pytest_args(args: list[str]) -> list[str]:
    """The pytest command line: ours (parallel; for --fast, no slow tests and kept databases), then the caller's."""
    ours = []
    if "--fast" in args:
        args = [arg for arg in args if arg != "--fast"]
        ours += ["-m", "not slow", "--reuse-db"]
    joined = " ".join(args)
    if not any(arg.startswith(SERIAL_OPTIONS) for arg in args) and "-p no:xdist" not in joined:
        # loadgroup: tests marked xdist_group(name) stay in one worker, the rest go wherever is free.
        ours += ["-n", "auto", "--dist", "loadgroup"]
    return [*ours, *args]


if __name__ == "__main__":
    sys.exit(main())
