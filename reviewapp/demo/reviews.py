"""Reviews already made in the demo, so curated labels, agreement, datasets and promotion gates have data.

The demo's curator and engineer review the first cases of both model versions through the real
queue and review services (two reviews per item, as the project asks), answering as the demo
author labelled each answer (``Case.intended_issue``); on a few items the engineer disagrees, so
the adjudication queue has work. The other items stay for the person trying the demo.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from reviewapp.demo.items import CASES, MODEL_VERSIONS, Case
from reviewapp.models import Assignment, Project, Review
from reviewapp.services.queue import assignment_release, queue_next
from reviewapp.services.reviews import review_submit

REVIEWED_CASES = 12  # of each model version: 24 items with two reviews each
REVIEWERS = ("curator", "engineer")
DISAGREEING_CASES = 3  # the engineer rates these differently from the curator
DEMO_SEED_PRIORITY = 1_000_000


def demo_answers(case: Case, version: str, *, disagree: bool = False) -> dict[str, Any]:
    issue = case.intended_issue[0 if version == "1" else 1]
    correct = issue == "none"
    answers: dict[str, Any] = {
        "correct": correct,
        "helpfulness": 5 if correct else 2,
        "issue": issue,
        "tone": ["clear", "friendly"] if correct else ["too terse"],
        "expected_facts": list(case.expected_facts),
    }
    if disagree:
        answers["correct"] = correct = not correct
        answers["helpfulness"] = 3
    if correct:
        # Accepting a passed answer as the expectation is fine; a failed one never is (review_submit refuses it).
        answers["expected_response"] = case.response(version)
    return answers


def demo_reviews_seed(*, project: Project) -> int:
    """Add the demo's reviews once; returns how many were submitted (0 when they exist already)."""
    users = {u.username: u for u in get_user_model().objects.filter(username__in=REVIEWERS)}
    if len(users) < len(REVIEWERS) or Review.objects.filter(project=project, reviewer__in=users.values()).exists():
        return 0
    by_key = {case.key: case for case in CASES[:REVIEWED_CASES]}
    disagreeing = {case.key for case in CASES[:DISAGREEING_CASES]}
    # The queue serves every item's first slot before any second one; lift the chosen items' slots
    # to the front for the seeding only, so both reviewers reach the same items.
    external_ids = [f"demo-{key}-v{version}" for key in by_key for version in MODEL_VERSIONS]
    slots = Assignment.objects.filter(project=project, item__external_id__in=external_ids, submitted_at__isnull=True)
    slots.update(priority=DEMO_SEED_PRIORITY)
    # Sibling spacing would send the seeding past the chosen items (their siblings must wait);
    # seeded reviews are not read by anyone, so take them in order (in memory: nothing is saved).
    spacing, project.sibling_spacing = project.sibling_spacing, 0
    submitted = 0
    for username in REVIEWERS:
        user = users[username]
        wanted = 2 * len(by_key)
        done = 0
        while done < wanted:
            lease = queue_next(project=project, user=user)
            if lease is None:
                break
            case = by_key.get(str((lease.item.metadata or {}).get("case", "")))
            if case is None:  # past the reviewed cases: give the item back untouched
                assignment_release(assignment=lease, user=user)
                break
            disagree = username == "engineer" and case.key in disagreeing and lease.item.model_version == "2"
            review_submit(
                assignment_id=lease.pk,
                user=user,
                answers=demo_answers(case, lease.item.model_version, disagree=disagree),
                time_on_task_ms=45_000,
            )
            done += 1
            submitted += 1
    slots.filter(priority=DEMO_SEED_PRIORITY).update(priority=0)
    project.sibling_spacing = spacing
    return submitted
