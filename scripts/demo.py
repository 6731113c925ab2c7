#!/usr/bin/env python3
"""Run the demo in the foreground: the web server, a Celery worker and Celery beat, together.

    python scripts/demo.py [--port 8000] [--host 127.0.0.1]      (``make demo`` runs it for you)

Each process's output is prefixed with its name. Ctrl-C (SIGINT) or SIGTERM stops all three: each
gets SIGTERM (Celery's warm shutdown), then, after a timeout, SIGKILL for its whole process group,
so no pool child or runserver thread outlives the demo. The local model servers of promoted
versions (started by the worker, detached from it) are stopped too, and restarted on the next run.
If one process dies on its own, the others are stopped and the script exits non-zero. Press Ctrl-C
again (a second later) to kill at once; a burst of signals (make forwarding SIGTERM beside Ctrl-C's
SIGINT) is one request to stop. The port can be taken again as soon as the demo has stopped.

Embedded defaults: SQLite and the file-system Celery broker under ``var/`` (``REVIEWDESK_VAR_DIR``);
``DEBUG`` defaults to true here. ``PORT`` sets the port when ``--port`` is not given.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

BASE_DIR = Path(__file__).resolve().parent.parent
STOP_TIMEOUT = 10.0  # seconds a process gets to exit after SIGTERM before SIGKILL
READY_TIMEOUT = 90.0
COLOURS = {"web": "36", "worker": "33", "beat": "35", "demo": "32"}

_print_lock = threading.Lock()
_colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def say(name: str, line: str) -> None:
    """One output line, prefixed with the process name; never raises (stdout may be gone)."""
    prefix = f"{name:>6} | "
    if _colour:
        prefix = f"\033[{COLOURS.get(name, '0')}m{prefix}\033[0m"
    with _print_lock:
        try:
            sys.stdout.write(prefix + line.rstrip("\n") + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass


class Child:
    """A process in its own session (so its group can be signalled) whose output is relayed."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            argv,
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group; a terminal's Ctrl-C reaches only us
        )
        self.pgid = self.proc.pid
        self.pump = threading.Thread(target=self._relay, args=(self.proc.stdout,), daemon=True)
        self.pump.start()

    def _relay(self, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            say(self.name, raw.decode("utf-8", errors="replace"))
        stream.close()

    def signal_leader(self, sig: int) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def group_alive(self) -> bool:
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # the id now belongs to someone else's group
            return False
        return True

    def kill_group(self) -> None:
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on the port. SO_REUSEADDR, as the web server itself binds: a socket
    left in TIME_WAIT by the last run (our readiness probe, a browser) must not block a restart."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def demo_logins() -> list[str]:
    sys.path.insert(0, str(BASE_DIR))
    try:
        from reviewapp.demo.project import DEMO_USERS
    except Exception:  # the banner is a nicety; never fail the demo over it
        return []
    return [f"{u.username} / {u.password}  ({u.role}{', Django admin' if u.superuser else ''})" for u in DEMO_USERS]


def announce_when_ready(url: str, stop: threading.Event) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310 - our own http URL
                if response.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass
        stop.wait(0.5)
    else:
        if not stop.is_set():
            say("demo", f"the web server did not answer {url}/healthz within {READY_TIMEOUT:.0f} s")
        return
    lines = [
        "",
        f"Reviewdesk is running at {url}/",
        "Demo logins:",
        *(f"  {login}" for login in demo_logins()),
        f"API docs: {url}/api/docs/   Django admin: {url}/admin/",
        "Press Ctrl-C to stop the web server, the worker and beat.",
        "",
    ]
    for line in lines:
        say("demo", line)


def commands(host: str, port: int, var_dir: Path) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "web": [python, "manage.py", "runserver", f"{host}:{port}", "--noreload"],
        "worker": [
            python,
            "-m",
            "celery",
            "-A",
            "reviewapp",
            "worker",
            "-l",
            "INFO",
            "-c",
            "1",
            "-n",
            "demo@%h",
            # one local worker: nobody to sync with or gossip to, and startup is a second faster
            "--without-mingle",
            "--without-gossip",
        ],
        "beat": [
            python,
            "-m",
            "celery",
            "-A",
            "reviewapp",
            "beat",
            "-l",
            "INFO",
            "-s",
            str(var_dir / "celerybeat-schedule"),
        ],
    }


class Signals:
    """What the signal handler records, and nothing more. The handler runs between two bytecodes of
    the main thread, which may hold a lock (printing, an Event's condition) at that moment: taking
    any lock there can deadlock, so the main loop reads these fields and does the work."""

    # A second signal this long after the first means "kill now"; a burst (make forwarding SIGTERM
    # beside the terminal's SIGINT to the process group) is one request to stop.
    FORCE_AFTER = 1.0

    def __init__(self) -> None:
        self.first: int | None = None
        self.first_at = 0.0
        self.last_at = 0.0

    def record(self, signum: int, _frame: object) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first, self.first_at = signum, now
        self.last_at = now

    @property
    def force(self) -> bool:
        return self.first is not None and self.last_at - self.first_at >= self.FORCE_AFTER


def stop_all(children: list[Child], signals: Signals) -> None:
    """SIGTERM every leader, wait, then SIGKILL whatever is left in each process group."""
    for child in children:
        child.signal_leader(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and not signals.force:
        if not any(child.group_alive() or child.proc.poll() is None for child in children):
            break
        # Leaders that exited may leave group members behind (a prefork pool child): end them too.
        for child in children:
            if child.proc.poll() is not None and child.group_alive():
                try:
                    os.killpg(child.pgid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass
        time.sleep(0.1)
    for child in children:
        if child.proc.poll() is None or child.group_alive():
            say("demo", f"{child.name} did not stop in time; killing it")
            child.kill_group()
    for child in children:
        try:
            child.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            say("demo", f"{child.name} (pid {child.proc.pid}) is still running after SIGKILL")
        child.pump.join(timeout=2)


def local_serving(env: dict[str, str], *, stop: bool) -> None:
    """Restart (or stop) the local model servers of promoted versions; they outlive the worker by design."""
    argv = [sys.executable, "manage.py", "serve_local_models", *(["--stop"] if stop else [])]
    try:
        done = subprocess.run(argv, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.TimeoutExpired) as exc:
        say("serve", f"could not {'stop' if stop else 'restart'} the local model servers: {exc}")
        return
    for line in (done.stdout + done.stderr).splitlines():
        say("serve", line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Reviewdesk's web server, Celery worker and beat together.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000), help="default: $PORT or 8000")
    parser.add_argument("--host", default="127.0.0.1", help="interface for the web server (default: 127.0.0.1)")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.setdefault("DEBUG", "true")
    # The demo moves: an end user's request every 5 s (pipelines.demo_traffic), pulled by the demo's
    # MLflow source every 15 s and drawn by a monitoring refresh every 15 s.
    env.setdefault("DEMO_TRAFFIC_SECONDS", "5")
    env.setdefault("SOURCES_DUE_SECONDS", "5")
    env.setdefault("MONITORING_REFRESH_SECONDS", "15")
    env["PYTHONUNBUFFERED"] = "1"  # otherwise log lines arrive in bursts through the pipes
    var_dir = Path(env.get("REVIEWDESK_VAR_DIR") or BASE_DIR / "var").resolve()
    var_dir.mkdir(parents=True, exist_ok=True)

    if not port_free(args.host, args.port):
        say("demo", f"port {args.port} on {args.host} is in use; pass --port N or set PORT=N")
        return 2

    stop = threading.Event()
    signals = Signals()
    signal.signal(signal.SIGINT, signals.record)
    signal.signal(signal.SIGTERM, signals.record)

    children: list[Child] = []
    exit_code = 0
    try:
        for name, argv_ in commands(args.host, args.port, var_dir).items():
            children.append(Child(name, argv_, env))
        url = f"http://{args.host}:{args.port}"
        threading.Thread(target=announce_when_ready, args=(url, stop), daemon=True).start()
        # Versions promoted in an earlier session answer again on their local endpoints.
        threading.Thread(target=local_serving, args=(env,), kwargs={"stop": False}, daemon=True).start()
        while not stop.is_set():
            if signals.first is not None:
                say("demo", f"{signal.Signals(signals.first).name} received; stopping web, worker and beat")
                break
            for child in children:
                code = child.proc.poll()
                if code is not None:
                    say("demo", f"{child.name} exited with code {code}; stopping the others")
                    exit_code = code if code > 0 else 1  # killed by a signal (< 0) or quit quietly (0): a failure
                    stop.set()
                    break
            time.sleep(0.2)
    finally:
        stop.set()
        stop_all(children, signals)
        local_serving(env, stop=True)
    if exit_code == 0:
        say("demo", "stopped")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
