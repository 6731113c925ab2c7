"""A canary stage's health check and soak: real queries sent to the candidate itself, watched for errors and latency.

After each traffic stage the rollout asks the version it rolls out (``to_version``) directly, not the
endpoint's weighted mix: on Databricks through the served entity's own invocation path, locally through
the proxy's version-pinning header (``pipelines.releases.serving.serving_query(version=...)``). A 10% canary is
therefore tested with every health query, not with one in ten.

The step first sends ``Environment.health_check_queries`` real requests (the project's latest items),
then keeps querying the candidate every ``ROLLOUT_SOAK_INTERVAL_SECONDS`` for ``Environment.soak_seconds``
of watched time. Every query is one sample: which version answered, its latency, and whether it failed
(an HTTP or connection error, an empty answer, or an answer from another version). The stage fails when
the error rate is above ``Environment.max_error_rate`` or the p95 latency (nearest rank) above
``Environment.max_p95_ms``; the engine then restores traffic and the alias as for any failed step.

The soak's progress lives in the step's ``detail`` and is written after every query, so a worker that
dies mid-soak leaves it there: the next worker (after the sweeper re-sends the rollout) resumes it
with the samples so far and only the watched seconds still missing. A retried rollout soaks afresh
(``rollout_retry`` clears the detail).
"""

from __future__ import annotations

import math
import time
from typing import Any

from django.conf import settings
from django.utils import timezone

from pipelines.adapters.errors import PermanentPipelineError, PipelineError
from pipelines.models import RolloutStep
from pipelines.releases import serving
from pipelines.releases.rollout.lease import LeaseLost, _Run
from reviewapp.models import Item

LOG_MAX = 300  # per-query records kept in the step (versions and counts cover every query)
LATENCIES_MAX = 5000


def health_check_records(*, project_id: int, limit: int) -> list[dict[str, Any]]:
    """Real requests for a health check: the project's latest items (``{"request": ...}``)."""
    records: list[dict[str, Any]] = []
    for request in Item.objects.filter(project_id=project_id).order_by("-id").values_list("request", flat=True)[:50]:
        if request and request not in [r["request"] for r in records]:
            records.append({"request": request})
        if len(records) >= limit:
            break
    return records or [{"request": "Hello, are you there?"}][:limit]


def _empty(prediction: Any) -> bool:
    if prediction is None:
        return True
    if isinstance(prediction, str):
        return not prediction.strip()
    if isinstance(prediction, dict):
        if "response" in prediction:
            return _empty(prediction["response"])
        return all(_empty(v) for v in prediction.values()) if prediction else True
    if isinstance(prediction, list):
        return not prediction
    return False


def p95(latencies: list[float]) -> float | None:
    """The nearest-rank 95th percentile (the value 95% of samples are at or below), None without samples."""
    if not latencies:
        return None
    ordered = sorted(latencies)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _fresh(target: Any, environment: Any) -> dict[str, Any]:
    return {
        "target_version": str(target.version),
        "target_entity": serving.entity_name(target) if environment.serving_kind == "databricks" else "",
        "soak_seconds": int(environment.soak_seconds),
        "max_error_rate": float(environment.max_error_rate),
        "max_error_rate_pct": round(100 * float(environment.max_error_rate), 2),
        "max_p95_ms": int(environment.max_p95_ms),
        "soak_started_at": timezone.now().isoformat(),
        "soak_watched_seconds": 0.0,
        "soak_resumed": 0,
        "queries": 0,
        "errors": 0,
        "error_rate_pct": 0.0,
        "p95_ms": None,
        "served_by": {},
        "latencies_ms": [],
        "log": [],
        "answers": [],
        "error_examples": [],
    }


def _state(step: RolloutStep, target: Any, environment: Any) -> dict[str, Any]:
    """This step's soak so far (resumed after a worker died), or a fresh one."""
    detail = dict(step.detail or {})
    if detail.get("soak_started_at") and detail.get("target_version") == str(target.version):
        detail["soak_resumed"] = int(detail.get("soak_resumed") or 0) + 1
        resumes = list(detail.get("resumes") or [])
        resumes.append({"at": timezone.now().isoformat(), "watched_seconds": detail.get("soak_watched_seconds")})
        detail["resumes"] = resumes
        return detail
    return _fresh(target, environment)


def _ask(run: _Run, state: dict[str, Any], record: dict[str, Any], *, initial: bool) -> None:
    """One health query to the candidate, recorded as a sample (never raises a pipeline error)."""
    rollout = run.rollout
    target = str(rollout.to_version.version)
    started = time.monotonic()
    version, error, text = "", "", ""
    try:
        out = serving.serving_query(environment=rollout.environment, records=[record], version=rollout.to_version)
        version = (out[0]["served_by"] if out else "") or "?"
        prediction = out[0]["prediction"] if out else None
        if not out or _empty(prediction):
            error = f"empty answer to {str(record['request'])[:80]!r}"
        elif version not in (target, "?"):
            error = f"answered by v{version}, not the candidate v{target}"
        else:
            text = str(prediction.get("response", prediction) if isinstance(prediction, dict) else prediction)
    except PipelineError as exc:
        error = exc.message
    ms = round((time.monotonic() - started) * 1000, 1)
    state["queries"] += 1
    n = state["queries"]
    if version:
        state["served_by"][version] = state["served_by"].get(version, 0) + 1
    if error:
        state["errors"] += 1
        if len(state["error_examples"]) < 5:
            state["error_examples"].append(error[:300])
    if len(state["latencies_ms"]) < LATENCIES_MAX:
        state["latencies_ms"].append(ms)
    if len(state["log"]) < LOG_MAX:
        state["log"].append({"n": n, "version": version or None, "ms": ms, "ok": not error, "error": error[:200]})
    if initial:
        state["answers"].append({"request": str(record["request"])[:120], "answer": text[:200], "served_by": version})
    state["error_rate_pct"] = round(100 * state["errors"] / n, 2)
    state["p95_ms"] = p95(state["latencies_ms"])


def _save(run: _Run, step: RolloutStep, state: dict[str, Any]) -> None:
    """Write the soak's progress, only while this worker still owns the rollout (else stop: LeaseLost)."""
    step.detail = state
    saved = RolloutStep.objects.filter(pk=step.pk, rollout__lease_owner=run.owner).update(detail=state)
    if not saved:
        raise LeaseLost(f"rollout {run.rollout.pk}: lease lost during the soak")


def _step_health(run: _Run, step: RolloutStep) -> dict[str, Any]:
    rollout = run.rollout
    environment = rollout.environment
    records = health_check_records(
        project_id=rollout.request.project_id, limit=max(1, environment.health_check_queries)
    )
    state = _state(step, rollout.to_version, environment)
    _save(run, step, state)
    try:
        serving.serving_prepare(environment=environment)  # a fresh worker's client setup is not query latency
    except PipelineError:
        pass  # the queries below meet the same error and record it
    # The health check proper: each real request once (skipped for the ones a resumed soak already sent).
    for record in records[len(state["answers"]) :]:
        run.renew()
        _ask(run, state, record, initial=True)
        _save(run, step, state)
    # The soak: keep asking the candidate at a steady pace until enough time has been watched.
    interval = float(settings.ROLLOUT_SOAK_INTERVAL_SECONDS)
    i = state["queries"]
    last = time.monotonic()
    while state["soak_watched_seconds"] < state["soak_seconds"]:
        run.renew()
        _ask(run, state, records[i % len(records)], initial=False)
        i += 1
        remaining = state["soak_seconds"] - state["soak_watched_seconds"] - (time.monotonic() - last)
        pause = min(max(0.0, interval - (time.monotonic() - last)), max(0.0, remaining))
        _pause(run, pause)
        now = time.monotonic()
        state["soak_watched_seconds"] = round(state["soak_watched_seconds"] + (now - last), 3)
        last = now
        _save(run, step, state)
    verdict = _verdict(state)
    state["verdict"] = verdict or "passed"
    _save(run, step, state)
    if verdict:
        stage = step.key.split("_", 1)[1]
        raise PermanentPipelineError(f"health at {stage}%: {verdict}", system="serving")
    return state


def _pause(run: _Run, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        run.renew()
        time.sleep(min(0.25, max(0.0, end - time.monotonic())))


def _verdict(state: dict[str, Any]) -> str:
    """Why the stage fails ("" when it passes): error rate or p95 latency above the environment's limits."""
    problems = []
    n, errors = state["queries"], state["errors"]
    target = state["target_version"]
    if n and errors / n > state["max_error_rate"]:
        example = f"; e.g. {state['error_examples'][0]}" if state["error_examples"] else ""
        problems.append(
            f"error rate {state['error_rate_pct']}% ({errors} of {n} queries to v{target} failed) is above the "
            f"limit of {state['max_error_rate_pct']}%{example}"
        )
    if state["p95_ms"] is not None and state["p95_ms"] > state["max_p95_ms"]:
        problems.append(
            f"p95 latency {state['p95_ms']:.0f} ms over {n} queries to v{target} is above the limit of "
            f"{state['max_p95_ms']} ms"
        )
    return "; ".join(problems)
