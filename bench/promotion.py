"""Promotion: time from the approval to 100% of traffic, on a real Celery worker.

(a) **Databricks** (the local fake workspace of ``tests/fakes/databricks_api.py``, over HTTP with the
    real SDK): each config update takes ``--ready-seconds`` (default 1 s) to become ready, as an
    endpoint would; stages 10% -> 50% -> 100%. Printed: the total (approval -> the traffic step at
    100% done, and -> the rollout recorded), the endpoint's own readiness time (the sum of the
    updates' waits, measured by the fake), the soak (``--soak-seconds`` per canary stage, the time the
    health checks watch the candidate by design) and our overhead = total - readiness - soak (queueing,
    polling, health queries beyond the soak, database writes). ``--poll-ms`` is the rollout's poll
    interval (ROLLOUT_POLL_MILLISECONDS).
(b) **Local MLflow model servers** (the demo RAG chain as ``support-assistant`` v1/v2): v2's first
    promotion (its ``mlflow models serve`` start-up included, printed on its own line), then a
    rollback and a second promotion of v2 whose servers already run (no start-up).

Uses the bench database ``reviewdesk_bench`` (migrated), Redis at ``BENCH_REDIS_URL`` (db 14) with a
private queue, and MLflow / serving state under ``var/bench``. Prints figures, never asserts.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
import uuid
from typing import Any

from bench.common import (
    BENCH_DB_URL,
    ROOT,
    bench_env,
    celery_worker_argv,
    ensure_database,
    free_port,
    print_table,
)

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
QUEUE = f"bench-promotion-{uuid.uuid4().hex[:6]}"
VAR = ROOT / "var" / "bench"
SLUG = "bench-promotion"
UC_MODEL = "main.default.support_assistant"


def env(**extra: str) -> dict[str, str]:
    out = {
        **bench_env(),
        "DATABASE_URL": BENCH_DB_URL,
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
        "CELERY_VISIBILITY_TIMEOUT": "30",
        "MLFLOW_TRACKING_URI": f"sqlite:///{VAR / 'mlflow-promotion.db'}",
        "MLFLOW_ARTIFACT_ROOT": str(VAR / "mlartifacts-promotion"),
        "LOCAL_SERVING_DIR": str(VAR / "serving-promotion"),
        **extra,
    }
    for key in [k for k in out if k.startswith(("DATABRICKS_", "PROMOTION_WEBHOOK"))]:
        if key not in extra:
            del out[key]  # only the fake workspace, and no webhooks
    return out


class Worker:
    """One ``celery worker -P solo`` on the private queue; returns once it is ready."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.log = VAR / f"{QUEUE}.log"
        out = open(self.log, "w")  # the worker writes to its own copy of the descriptor
        self.proc = subprocess.Popen(
            celery_worker_argv(queue=QUEUE, name=f"bench-{QUEUE}"),
            cwd=ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + 120
        while "ready." not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start: {self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.unlink(missing_ok=True)


def setup(environ: dict[str, str]) -> None:
    import sys

    os.environ.update(environ)
    for key in [k for k in os.environ if k.startswith(("DATABRICKS_", "PROMOTION_WEBHOOK")) and k not in environ]:
        del os.environ[key]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewapp.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def fresh_project(registered_model: str) -> Any:
    """The bench project, emptied of the promotions, environments and versions of a previous run.

    It names ``registered_model`` as its own: versions of any other model are refused.
    """
    from bench.fixtures import bench_project
    from pipelines.models import Environment, ModelVersion, PromotionRequest, Rollout
    from reviewapp.models import Project

    old = Project.objects.filter(slug=SLUG).first()
    if old is not None:
        Rollout.objects.filter(environment__project=old).delete()
        PromotionRequest.objects.filter(project=old).delete()
        Environment.objects.filter(project=old).delete()
        ModelVersion.objects.filter(project=old).delete()
    project = bench_project(SLUG, reset=True)
    project.mlflow_registered_model = registered_model
    project.save(update_fields=["mlflow_registered_model"])
    return project


def people(project: Any) -> tuple[Any, Any]:
    from bench.fixtures import bench_user

    return bench_user(project, "bench-promo-a", "engineer"), bench_user(project, "bench-promo-b", "engineer")


def promote(model_version: Any, environment: Any, a: Any, b: Any, timeout: float = 600) -> dict[str, Any]:
    """A requests, B approves (timed from here), wait for the rollout; its figures."""
    from pipelines.models import PromotionRequest, Rollout
    from pipelines.releases.promotion import promotion_approve, promotion_request

    request = promotion_request(actor=a, model_version=model_version, environment=environment, reason="bench")
    started = time.perf_counter()
    promotion_approve(actor=b, request_id=request.pk)
    approved_at = PromotionRequest.objects.get(pk=request.pk).decided_at
    rollout = Rollout.objects.filter(request=request).latest("pk")
    return wait(rollout.pk, started, approved_at, timeout)


def rollback(request_id: int, b: Any, timeout: float = 600) -> dict[str, Any]:
    from django.utils import timezone

    from pipelines.models import Rollout
    from pipelines.releases.promotion import rollback_request

    started = time.perf_counter()
    at = timezone.now()
    rollback_request(actor=b, request_id=request_id, reason="bench rollback")
    rollout = Rollout.objects.filter(request_id=request_id, kind=Rollout.Kind.ROLLBACK).latest("pk")
    return wait(rollout.pk, started, at, timeout)


def wait(rollout_id: int, started: float, approved_at: Any, timeout: float) -> dict[str, Any]:
    from pipelines.models import Rollout

    deadline = time.monotonic() + timeout
    while True:
        rollout = Rollout.objects.get(pk=rollout_id)
        if rollout.status in ("succeeded", "failed"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"rollout {rollout_id} still {rollout.status} after {timeout} s")
        time.sleep(0.02)
    wall = time.perf_counter() - started
    if rollout.status != "succeeded":
        raise RuntimeError(f"rollout {rollout_id} failed: {rollout.error}")
    steps = list(rollout.steps.order_by("position"))
    traffic_100 = next(s for s in steps if s.key == "traffic_100")
    soaks = [
        (s.position, float(s.detail.get("soak_watched_seconds") or 0)) for s in steps if s.key.startswith("health_")
    ]
    return {
        # watched soak time before traffic reached 100% (the stages before it), and in all
        "soak_to_100": sum(sec for pos, sec in soaks if pos < traffic_100.position),
        "soak_total": sum(sec for _, sec in soaks),
        "wall": wall,
        "to_100": (traffic_100.finished_at - approved_at).total_seconds(),
        "to_done": (rollout.finished_at - approved_at).total_seconds(),
        "queue": (rollout.started_at - approved_at).total_seconds(),
        "steps": [(s.key, (s.finished_at - s.started_at).total_seconds(), s.detail) for s in steps],
        "request_id": rollout.request_id,
    }


def step_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = [("queue wait (approval -> worker claims)", f"{result['queue'] * 1000:.0f} ms", "")]
    for key, seconds, detail in result["steps"]:
        note = detail.get("action", "") if isinstance(detail, dict) else ""
        rows.append((f"  step {key}", f"{seconds * 1000:.0f} ms", note))
    return rows


# --- (a) Databricks -----------------------------------------------------------------------------


def bench_databricks(runs: int, ready_seconds: float, poll_ms: int, soak_seconds: int) -> None:
    from tests.fakes.databricks_api import FakeDatabricks

    with FakeDatabricks().running() as fake:
        environ = env(
            DATABRICKS_HOST=fake.url,
            DATABRICKS_TOKEN=fake.token,
            DATABRICKS_TIMEOUT_SECONDS="10",
            ROLLOUT_POLL_MILLISECONDS=str(poll_ms),
        )
        setup(environ)
        from django.utils import timezone

        from pipelines.models import Environment, ModelVersion

        project = fresh_project(UC_MODEL)
        a, b = people(project)
        versions = [
            ModelVersion.objects.create(
                project=project, registered_model=UC_MODEL, version=str(n), status="READY", synced_at=timezone.now()
            )
            for n in range(1, runs + 2)
        ]
        environment = Environment.objects.create(
            project=project,
            name="production",
            alias="champion",
            serving_kind=Environment.ServingKind.DATABRICKS,
            serving_endpoint="bench-prod",
            canary_stages=[10, 50, 100],
            ready_timeout_seconds=120,
            health_check_queries=2,
            soak_seconds=soak_seconds,
            current_version=versions[0],
        )
        fake.add_model_endpoint(
            "bench-prod",
            entities=[{"name": "support_assistant-1", "entity_name": UC_MODEL, "entity_version": "1"}],
            routes=[{"served_model_name": "support_assistant-1", "traffic_percentage": 100}],
        )
        fake.model_aliases[(UC_MODEL, "champion")] = 1
        fake.ready_after_seconds = ready_seconds
        worker = Worker(environ)
        try:
            results = []
            for version in versions[1:]:
                environment.refresh_from_db()
                before = len(fake.update_seconds)
                result = promote(version, environment, a, b)
                result["readiness"] = sum(fake.update_seconds[before:])
                result["updates"] = len(fake.update_seconds) - before
                results.append(result)
        finally:
            worker.stop()
    print(
        f"\n(a) Databricks fake: stages 10/50/100, readiness {ready_seconds:g} s per config update, "
        f"rollout poll {poll_ms} ms, soak {soak_seconds} s per stage, {runs} promotions"
    )
    rows = []
    for i, r in enumerate(results, start=1):
        if i == 1:
            rows.append(("#1 is the worker's first rollout:", "", "it imports databricks-sdk and builds its client"))
        overhead = r["to_100"] - r["readiness"] - r["soak_to_100"]
        rows += [
            (f"#{i} approval -> 100% traffic", f"{r['to_100']:.2f} s", f"({r['to_done']:.2f} s to recorded live)"),
            (f"#{i} endpoint readiness (sum)", f"{r['readiness']:.2f} s", f"{r['updates']} config updates"),
            (
                f"#{i} soak before 100% (sum)",
                f"{r['soak_to_100']:.2f} s",
                f"by design; {r['soak_total']:.2f} s with the 100% stage's",
            ),
            (f"#{i} our overhead", f"{overhead:.2f} s", f"{100 * overhead / max(r['to_100'], 1e-9):.0f}% of the total"),
        ]
    print_table("promotion on Databricks (fake)", rows)
    print_table("steps of the last promotion", step_rows(results[-1]))


# --- (b) local MLflow model servers ---------------------------------------------------------------


def bench_local(poll_ms: int, soak_seconds: int) -> None:
    environ = env(ROLLOUT_POLL_MILLISECONDS=str(poll_ms))
    setup(environ)
    from django.utils import timezone

    from pipelines.demo_models import demo_models_ensure
    from pipelines.models import Environment, ModelVersion
    from pipelines.releases.serving import local_serving_stop_all

    local_serving_stop_all()  # a previous interrupted run's servers
    demo_models_ensure(model_name="support-assistant")
    project = fresh_project("support-assistant")
    a, b = people(project)
    v1, v2 = (
        ModelVersion.objects.create(
            project=project,
            registered_model="support-assistant",
            version=str(n),
            status="READY",
            synced_at=timezone.now(),
        )
        for n in (1, 2)
    )
    environment = Environment.objects.create(
        project=project,
        name="production",
        alias="champion",
        local_port=free_port(),
        canary_stages=[10, 50, 100],
        ready_timeout_seconds=180,
        health_check_queries=2,
        soak_seconds=soak_seconds,
    )
    worker = Worker(environ)
    try:
        first = promote(v1, environment, a, b)  # the first deploy: v1 at 100%, its server starts
        environment.refresh_from_db()
        cold = promote(v2, environment, a, b)  # v2's server starts at the 10% stage
        back = rollback(cold["request_id"], b)  # both servers run: no start-up
        environment.refresh_from_db()
        warm = promote(v2, environment, a, b)
    finally:
        worker.stop()
        local_serving_stop_all()

    def startup(result: dict[str, Any]) -> float:
        first_traffic = next(s for s in result["steps"] if s[0].startswith("traffic_"))
        return float(first_traffic[2].get("waited_seconds") or 0.0)

    print(
        f"\n(b) local MLflow model servers (mlflow models serve), stages 10/50/100, rollout poll {poll_ms} ms, "
        f"soak {soak_seconds} s per stage"
    )
    print_table(
        "promotion on the local MLflow server",
        [
            ("v1 first deploy: approval -> 100%", f"{first['to_100']:.2f} s", "v1 server start-up included"),
            ("  of which v1 server start-up", f"{startup(first):.2f} s", "first traffic step"),
            ("v2 promotion: approval -> 100%", f"{cold['to_100']:.2f} s", "v2 server start-up included"),
            ("  of which v2 server start-up", f"{startup(cold):.2f} s", "traffic_10 step"),
            ("  of which the soak before 100%", f"{cold['soak_to_100']:.2f} s", "10% and 50% stages, by design"),
            (
                "  our overhead (no start-up, no soak)",
                f"{cold['to_100'] - startup(cold) - cold['soak_to_100']:.2f} s",
                "",
            ),
            ("rollback to v1: request -> 100%", f"{back['to_100']:.2f} s", "servers already running"),
            ("v2 again (warm): approval -> 100%", f"{warm['to_100']:.2f} s", "servers already running"),
            ("  of which the soak before 100%", f"{warm['soak_to_100']:.2f} s", ""),
            ("  our overhead (no soak)", f"{warm['to_100'] - warm['soak_to_100']:.2f} s", ""),
        ],
    )
    print_table("steps of the v2 promotion (cold)", step_rows(cold))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="promotions on the Databricks fake")
    parser.add_argument("--ready-seconds", type=float, default=1.0, help="the fake endpoint's readiness per update")
    parser.add_argument("--poll-ms", type=int, default=200, help="ROLLOUT_POLL_MILLISECONDS for the worker")
    parser.add_argument("--only", choices=["databricks", "local"], help="run one half")
    parser.add_argument("--soak-seconds", type=int, default=2, help="Environment.soak_seconds per canary stage")
    args = parser.parse_args()
    VAR.mkdir(parents=True, exist_ok=True)
    ensure_database()
    if args.only in (None, "databricks"):
        bench_databricks(args.runs, args.ready_seconds, args.poll_ms, args.soak_seconds)
    if args.only in (None, "local"):
        bench_local(args.poll_ms, args.soak_seconds)


if __name__ == "__main__":
    main()
