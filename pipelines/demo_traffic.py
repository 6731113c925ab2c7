"""The demo's live traffic: end users ask the served demo model, some rate the answer.

Demo only (``make demo``). Every ``DEMO_TRAFFIC_SECONDS`` the beat sends ``pipelines.demo_traffic``:
one of the demo's questions (``reviewapp.demo.items.CASES``) is answered by the demo RAG chain of
the version the traffic reaches (:func:`demo_split`: a canary's current split, else the live
version, else a fixed split), logged as an MLflow trace in :data:`TRAFFIC_EXPERIMENT` with the
``model_name`` / ``model_version`` tags the trace reader takes, and some answers get an end user's
thumbs (a HUMAN ``user_feedback`` assessment). Version 1's naive answers get thumbs down more
often than version 2's (:data:`DOWN_SHARE`). Whether a trace is rated, and how, follows from its
trace id alone, so the same trace always gets the same feedback.

The demo project's MLflow source (:func:`demo_traffic_source_ensure`) samples these traces on the
beat (a percent rule, and every thumbs down), and the monitoring refresh draws them. On load,
:func:`demo_traffic_backfill` logs three days of past traffic through the same path (version 2's
canary starting a day ago), so the monitoring page has lines at once.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from django.conf import settings
from django.utils import timezone

from pipelines.adapters import mlflow_tracking
from pipelines.demo_rag.chain import VARIANTS, RagChain
from pipelines.models import Environment, ModelVersion, Rollout, RolloutStep, Source, SourceKind
from reviewapp.demo.items import CASES, MODEL_NAME
from reviewapp.demo.project import PROJECT_SLUG
from reviewapp.models import Project

logger = logging.getLogger(__name__)

TRAFFIC_EXPERIMENT = "support-assistant-traffic"
SOURCE_NAME = "Live traffic (demo)"
SOURCE_RULES = [{"kind": "thumbs_down"}, {"kind": "percent", "percent": 50}]
SOURCE_INTERVAL_SECONDS = 15
FEEDBACK_NAME = "user_feedback"
VARIANT_TAG = "reviewdesk.demo_variant"  # as pipelines.demo_models tags the registered versions
RATED_SHARE = 0.6  # end users rate 60% of answers
DOWN_SHARE = {"v1": 0.55, "v2": 0.15}  # of the rated answers, the share rated thumbs down, per variant
FIXED_V2_PERCENT = 50  # no canary and nothing live: version 2 gets this share, version 1 the rest
BACKFILL_HOURS = 72
BACKFILL_PER_HOUR = 2
BACKFILL_CANARY_HOURS = 24  # the backfill's last day: version 2 under canary at FIXED_V2_PERCENT
USERS = 40  # simulated end users
PRODUCTION = "production"  # the environment end users reach (pipelines.releases.promotion's default)


@dataclass(frozen=True)
class Served:
    version: str  # the registry's version number
    variant: str  # the demo chain's settings it runs (pipelines.demo_rag.chain.VARIANTS)
    percent: int


@dataclass(frozen=True)
class TrafficTrace:
    trace_id: str
    version: str
    case: str
    feedback: bool | None  # True thumbs up, False thumbs down, None not rated


def fraction(text: str) -> float:
    """A number in [0, 1) derived from ``text``: the same on every run and every machine."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / float(16**12)


def demo_feedback_for(*, trace_id: str, variant: str) -> bool | None:
    """The simulated end user's thumbs on a trace: None (not rated), True (up) or False (down)."""
    if fraction(f"{trace_id}:rated") >= RATED_SHARE:
        return None
    return fraction(f"{trace_id}:down") >= DOWN_SHARE.get(variant, DOWN_SHARE["v2"])


def _variant(version: ModelVersion) -> str:
    tagged = (version.tags or {}).get(VARIANT_TAG)
    if tagged in VARIANTS:
        return str(tagged)
    return f"v{version.version}" if f"v{version.version}" in VARIANTS else "v2"


def _demo_versions(project: Project) -> dict[str, str]:
    """Variant -> the registry version that runs it (the first one found), "1"/"2" when not synced."""
    out: dict[str, str] = {}
    for version in ModelVersion.objects.filter(project=project, registered_model=MODEL_NAME).order_by("id"):
        out.setdefault(_variant(version), version.version)
    return {"v1": out.get("v1", "1"), "v2": out.get("v2", "2")}


def _fixed_split(project: Project, v2_percent: int) -> list[Served]:
    versions = _demo_versions(project)
    split = [Served(versions["v1"], "v1", 100 - v2_percent), Served(versions["v2"], "v2", v2_percent)]
    return [s for s in split if s.percent > 0]


def demo_split(*, project: Project) -> list[Served]:
    """Who answers end users now: a canary to production in progress, by its last applied traffic
    stage; else production's live version; else the fixed split (version 2 at FIXED_V2_PERCENT)."""
    rollout = (
        Rollout.objects.filter(
            request__project=project,
            environment__name=PRODUCTION,
            kind=Rollout.Kind.ROLLOUT,
            status__in=[Rollout.Status.QUEUED, Rollout.Status.RUNNING],
        )
        .select_related("from_version", "to_version")
        .order_by("-id")
        .first()
    )
    if rollout is not None and rollout.from_version is not None and rollout.from_version_id != rollout.to_version_id:
        stages = [
            int(key.split("_", 1)[1])
            for key in RolloutStep.objects.filter(
                rollout=rollout, key__startswith="traffic_", status=RolloutStep.Status.DONE
            ).values_list("key", flat=True)
            if key.split("_", 1)[1].isdigit()
        ]
        stage = max(stages, default=0)
        split = [
            Served(rollout.from_version.version, _variant(rollout.from_version), 100 - stage),
            Served(rollout.to_version.version, _variant(rollout.to_version), stage),
        ]
        return [s for s in split if s.percent > 0]
    live = Environment.objects.filter(project=project, name=PRODUCTION).select_related("current_version").first()
    if live is not None and live.current_version is not None:
        return [Served(live.current_version.version, _variant(live.current_version), 100)]
    return _fixed_split(project, FIXED_V2_PERCENT)


def _pick(split: list[Served], key: str) -> Served:
    point = fraction(f"{key}:version") * sum(s.percent for s in split)
    for served in split:
        if point < served.percent:
            return served
        point -= served.percent
    return split[-1]


@cache
def _chain(variant: str) -> RagChain:
    from pipelines.demo_models import demo_passages

    return RagChain(demo_passages(), VARIANTS[variant])


def demo_answer_log(*, project: Project, when: datetime, key: str, split: list[Served]) -> TrafficTrace:
    """One end user's question answered by the version the split sends it to, logged as a trace
    started at ``when``, with the end user's simulated feedback (also stored as the project's
    end users' feedback, under the same ids a pull of the trace's assessments uses)."""
    from pipelines.sources.feedback import feedback_from_trace_assessments

    case = CASES[int(fraction(f"{key}:case") * len(CASES))]
    served = _pick(split, key)
    request = case.request_value()
    answer = _chain(served.variant).answer(request)
    base, spread = (700, 1200) if served.variant == "v1" else (1100, 2100)
    latency = base + int(fraction(f"{key}:latency") * spread)
    tracking_uri = settings.MLFLOW_TRACKING_URI
    logged = mlflow_tracking.trace_log(
        tracking_uri=tracking_uri,
        artifact_root=settings.MLFLOW_ARTIFACT_ROOT,
        experiment=TRAFFIC_EXPERIMENT,
        name=MODEL_NAME,
        inputs=request if isinstance(request, dict) else {"question": request},
        outputs={"response": answer["response"]},
        retrieved=answer["retrieved_context"],
        tags={
            "model_name": MODEL_NAME,
            "model_version": served.version,
            "demo_case": case.key,
            "channel": case.channel,
            "topic": case.topic,
        },
        start_ms=int(when.timestamp() * 1000),
        duration_ms=latency,
    )
    thumbs = demo_feedback_for(trace_id=logged.trace_id, variant=served.variant)
    if thumbs is not None:
        user = int(fraction(f"{logged.trace_id}:user") * USERS) + 1
        mlflow_tracking.trace_assessment_log(
            tracking_uri=tracking_uri,
            trace_id=logged.trace_id,
            kind="feedback",
            name=FEEDBACK_NAME,
            value=thumbs,
            source_id=f"demo-user-{user}",
        )
        # Stored now as well, so the demo has it whether or not pulls read assessments yet; the client
        # id is the assessment's (mlflow:<id>), so a pull that reads it later stores nothing twice.
        assessments = mlflow_tracking.trace_assessments_get(tracking_uri=tracking_uri, trace_id=logged.trace_id)
        feedback_from_trace_assessments(project=project, trace_id=logged.trace_id, assessments=assessments or [])
    return TrafficTrace(trace_id=logged.trace_id, version=served.version, case=case.key, feedback=thumbs)


def demo_project() -> Project | None:
    return Project.objects.filter(slug=PROJECT_SLUG).first()


def demo_traffic_tick(*, now: datetime | None = None) -> TrafficTrace | None:
    """One live request (the beat's task): None when the demo is not loaded."""
    project = demo_project()
    if project is None:
        return None
    now = now or timezone.now()
    return demo_answer_log(project=project, when=now, key=f"live:{now.isoformat()}", split=demo_split(project=project))


def demo_traffic_backfill(
    *,
    project: Project,
    now: datetime | None = None,
    hours: int = BACKFILL_HOURS,
    per_hour: int = BACKFILL_PER_HOUR,
) -> int:
    """Log ``hours`` of past traffic (``per_hour`` requests an hour), once: nothing when the traffic
    experiment has traces already. Version 1 alone, then version 2's canary for the last
    BACKFILL_CANARY_HOURS. How many traces were logged."""
    if mlflow_tracking.experiment_has_traces(tracking_uri=settings.MLFLOW_TRACKING_URI, experiment=TRAFFIC_EXPERIMENT):
        return 0
    now = now or timezone.now()
    start = now - timedelta(hours=hours)
    canary_from = now - timedelta(hours=BACKFILL_CANARY_HOURS)
    before, during = _fixed_split(project, 0), _fixed_split(project, FIXED_V2_PERCENT)
    step = timedelta(hours=1) / per_hour
    logged = 0
    for n in range(hours * per_hour):
        key = f"backfill:{n}"
        when = start + step * n + step * fraction(f"{key}:jitter")
        demo_answer_log(project=project, when=when, key=key, split=during if when >= canary_from else before)
        logged += 1
    return logged


def demo_traffic_source_ensure(*, project: Project) -> tuple[Source, bool]:
    """The demo project's MLflow source for the traffic experiment; (source, created)."""
    from pipelines.sources.services import source_create

    source = Source.objects.filter(project=project, name=SOURCE_NAME).first()
    if source is not None:
        return source, False
    source = source_create(
        project=project,
        values={
            "name": SOURCE_NAME,
            "kind": SourceKind.MLFLOW_TRACES,
            "settings": {"experiment": TRAFFIC_EXPERIMENT},
            "rules": SOURCE_RULES,
            "interval_seconds": SOURCE_INTERVAL_SECONDS,
        },
        actor=None,
    )
    return source, True
