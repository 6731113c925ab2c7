"""``manage.py serve_local_models``: after every local model server and endpoint died (a reboot), the
command brings each local environment back as the rollout engine left it, canary split included;
running it again leaves what runs alone; ``--stop`` stops everything."""

from __future__ import annotations

import io
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from pipelines.adapters.local_processes import json_read, process_alive
from pipelines.demo_models import demo_models_ensure
from pipelines.models import Environment
from pipelines.releases import serving
from pipelines.releases.serving.local import local_serving_dir
from tests.pipelines.promotion_fixtures import versions
from tests.pipelines.test_promotions_api import free_port
from tests.workers import wait_for


def pids() -> dict[str, int]:
    out = {}
    for kind in ("servers", "proxies"):
        for state_file in local_serving_dir(kind).glob("*.json"):
            if not state_file.name.endswith(".routes.json"):
                out[f"{kind}/{state_file.stem}"] = int((json_read(state_file) or {})["pid"])
    return out


def served_versions(port: int, n: int) -> list[str]:
    return [
        requests.post(
            f"http://127.0.0.1:{port}/invocations", json={"dataframe_records": [{"request": "hi"}]}, timeout=60
        ).headers["X-Reviewdesk-Served-Version"]
        for _ in range(n)
    ]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("serve_local_models", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
@pytest.mark.slow
def test_restarts_what_the_rollout_left_and_is_idempotent(project, settings: Any, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_ARTIFACT_ROOT = str(tmp_path / "mlartifacts")
    settings.LOCAL_SERVING_DIR = tmp_path / "serving"
    seen: list[int] = []
    try:
        demo_models_ensure(model_name="support-assistant")
        v1, v2 = versions(project, 1, 2, name="support-assistant")
        prod_port, staging_port = free_port(), free_port()
        production = Environment.objects.create(
            project=project,
            name="production",
            alias="champion",
            local_port=prod_port,
            current_version=v1,
            ready_timeout_seconds=90,
        )
        Environment.objects.create(
            project=project,
            name="staging",
            alias="staging",
            local_port=staging_port,
            current_version=v1,
            ready_timeout_seconds=90,
        )
        Environment.objects.create(project=project, name="qa", alias="qa", local_port=free_port())  # serves nothing
        # The rollout engine stopped half-way on production: v2 is a 50% canary beside v1.
        serving.serving_apply(
            environment=production,
            split=[serving.Split(v1, 50), serving.Split(v2, 50)],
            deadline=time.monotonic() + 90,
            heartbeat=lambda: None,
        )
        assert sorted(served_versions(prod_port, 2)) == ["1", "2"]
        before = pids()
        seen += before.values()
        for pid in before.values():  # the machine reboots: everything dies, the state files stay
            os.killpg(pid, signal.SIGKILL)
        assert wait_for(lambda: not any(process_alive(p) for p in before.values()), timeout=10)
        with pytest.raises(requests.ConnectionError):
            served_versions(prod_port, 1)

        out = run()

        assert "support/production: v1 50%, v2 50%" in out and "started model server v1" in out
        assert "support/staging: v1 100%" in out
        assert "support/qa: serves no version yet" in out
        assert sorted(served_versions(prod_port, 2)) == ["1", "2"]  # the canary split came back
        assert served_versions(staging_port, 2) == ["1", "1"]
        after = pids()
        seen += after.values()
        assert len(after) == 4  # two model servers (v1 shared), two endpoints
        assert not set(after.values()) & set(before.values())

        again = run()

        assert again.count("(already running)") == 2 and "started" not in again
        assert pids() == after
        assert sorted(served_versions(prod_port, 2)) == ["1", "2"]

        # An environment whose port another program holds is reported, and the command fails.
        with socket.socket() as blocker:
            blocker.bind(("127.0.0.1", 0))
            blocker.listen()
            Environment.objects.create(
                project=project, name="blocked", alias="b", local_port=blocker.getsockname()[1], current_version=v1
            )
            with pytest.raises(CommandError, match="could not start: support/blocked"):
                run("--project", "support")
        assert pids() == after  # the others were left alone

        assert "Stopped" in run("--stop")
        assert not [pid for pid in seen if process_alive(pid)]
    finally:
        serving.local_serving_stop_all()
    assert not [pid for pid in seen + list(pids().values()) if process_alive(pid)]
