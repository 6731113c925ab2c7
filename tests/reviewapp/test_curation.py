"""Consensus rules, curated labels, adjudication decisions and question-set versions (services)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from reviewapp.consensus import consensus_compute
from reviewapp.errors import AlreadyDecided, ReviewsChanged, ValidationFailed
from reviewapp.models import (
    Adjudication,
    Assignment,
    AuditEvent,
    CuratedLabel,
    CuratedLabelRevision,
    Item,
    Project,
    Question,
    Review,
    SchemaVersion,
)
from reviewapp.services.curation import adjudication_decide, curation_item_update
from reviewapp.services.projects import (
    project_set_reviews_per_item,
    question_create,
    question_delete,
    question_update,
)
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_edit, review_submit
from tests.factories import make_items, member

# --- the rules, one kind at a time (pure) -------------------------------------------------------


def q(kind: str, key: str = "q", **extra: Any) -> dict[str, Any]:
    return {"key": key, "title": key, "kind": kind, "required": True, "options": {}, **extra}


def combine(question: dict[str, Any], *values: Any, n_chunks: int = 0) -> Any:
    answers = [{question["key"]: v} if v is not None else {} for v in values]
    return consensus_compute(questions=[question], answer_sets=answers, n_chunks=n_chunks).outcomes[0]


@pytest.mark.parametrize(
    ("values", "agreed", "value", "reason"),
    [
        ((True, True), True, True, ""),
        ((True, True, False), True, True, ""),  # a majority, not unanimity
        ((True, False), False, None, "tie: 1 x pass, 1 x fail"),
        ((False, False, True, True), False, None, "tie: 2 x fail, 2 x pass"),
        ((True, None), False, None, "tie: 1 x pass, 1 x no answer"),  # silence is its own answer
    ],
)
def test_pass_fail_is_a_majority_vote_and_ties_go_to_adjudication(values, agreed, value, reason):
    outcome = combine(q("pass_fail"), *values)
    assert (outcome.agreed, outcome.value, outcome.reason) == (agreed, value, reason)
    assert outcome.rule == "majority"


def test_choice_needs_more_than_half_and_suggests_a_unique_plurality():
    choice = q("choice", options={"choices": ["a", "b", "c", "d"]})
    assert combine(choice, "a", "a", "b").value == "a"
    tie = combine(choice, "a", "b", "c")
    assert not tie.agreed and tie.value is None and tie.reason.startswith("tie")
    plurality = combine(choice, "a", "a", "b", "c", "d")  # 2 of 5: the most, but no majority
    assert not plurality.agreed and plurality.value == "a" and plurality.reason.startswith("no majority")


def test_multi_choice_is_a_majority_per_option():
    multi = q("multi_choice", options={"choices": ["clear", "friendly", "terse"]})
    outcome = combine(multi, ["clear", "friendly"], ["clear"], ["clear", "terse"])
    assert outcome.agreed and outcome.value == ["clear"]
    tie = combine(multi, ["clear", "friendly"], ["clear"])
    assert not tie.agreed and tie.value == ["clear"] and "tie on friendly" in tie.reason
    nobody = combine(multi, ["clear"], ["friendly"], ["terse"])  # required, yet no option has a majority
    assert not nobody.agreed and nobody.value == []


@pytest.mark.parametrize(
    ("values", "max_spread", "agreed", "value"),
    [
        ((3, 4), 1, True, 3),  # even count: the lower middle value, a whole number on the scale
        ((4, 4, 5), 1, True, 4),
        ((2, 5), 1, False, 2),
        ((2, 5), 3, True, 2),
        ((4, 4), 0, True, 4),
        ((4, 5), 0, False, 4),
        ((1, 5, 5), 1, False, 5),
    ],
)
def test_rating_is_the_median_unless_the_spread_exceeds_the_threshold(values, max_spread, agreed, value):
    outcome = combine(q("rating", max_spread=max_spread, options={"min": 1, "max": 5}), *values)
    assert (outcome.agreed, outcome.value) == (agreed, value)
    if not agreed:
        assert outcome.reason.startswith(f"spread {max(values) - min(values)} > {max_spread}")


def test_rating_answered_by_only_some_reviewers_disagrees():
    outcome = combine(q("rating", required=False), 4, None)
    assert not outcome.agreed and outcome.reason == "answered by 1 of 2 reviewers"
    assert combine(q("rating", required=False), None, None).agreed


def test_expected_facts_union_or_intersection():
    union = combine(q("expected_facts"), ["Reset link", "valid 1 hour"], ["reset  LINK", "Team: 24 hours"])
    assert union.agreed and union.value == ["Reset link", "valid 1 hour", "Team: 24 hours"]
    inter = combine(q("expected_facts", consensus_rule="intersection"), ["A", "b"], ["a", "c"])
    assert inter.agreed and inter.value == ["A"]
    none_shared = combine(q("expected_facts", consensus_rule="intersection"), ["A"], ["B"])
    assert not none_shared.agreed and none_shared.value == ["A", "B"]  # the curator starts from all of them


def test_text_needs_every_reviewer_to_write_the_same_unless_skipped():
    same = combine(q("expected_response"), "Open  Settings.\n", "Open Settings.")
    assert same.agreed and same.value == "Open  Settings.\n"
    differ = combine(q("expected_response"), "Open Settings.", "Use the reset link.")
    assert not differ.agreed and differ.value is None and differ.reason == "2 different answers"
    skipped = consensus_compute(
        questions=[q("text", consensus_rule="skip")], answer_sets=[{"q": "x"}, {"q": "y"}], n_chunks=0
    )
    assert skipped.agreed and skipped.answers == {}


def test_context_relevance_is_the_rating_rule_per_chunk():
    relevance = q("context_relevance", options={"min": 0, "max": 2})
    agreed = combine(relevance, [2, 0], [2, 1], n_chunks=2)
    assert agreed.agreed and agreed.value == [2, 0]
    split = combine(relevance, [2, 0], [0, 0], n_chunks=2)
    assert not split.agreed and split.reason.startswith("chunk 1: spread 2 > 1")


# --- consensus labels and the adjudication queue (database) --------------------------------------

GOOD = {"correct": True, "helpfulness": 4}


def submit(project: Project, user: Any, answers: dict[str, Any], **kwargs: Any) -> Review:
    lease = queue_next(project=project, user=user)
    assert lease is not None
    return review_submit(assignment_id=lease.pk, user=user, answers=answers, **kwargs)


@pytest.fixture
def pair(project, reviewer, reviewer2):  # type: ignore[no-untyped-def]
    """Two reviews per item, one item."""
    project = project_set_reviews_per_item(project=project, reviews_per_item=2, wait=True)
    make_items(project, 1)
    return project


def test_one_review_of_two_decides_nothing(pair, reviewer):
    submit(pair, reviewer, GOOD)
    assert not CuratedLabel.objects.exists() and not Adjudication.objects.exists()


def test_agreeing_reviews_make_a_consensus_label_with_its_provenance(pair, reviewer, reviewer2):
    first = submit(pair, reviewer, {"correct": True, "helpfulness": 4, "issue": "none"})
    second = submit(pair, reviewer2, {"correct": True, "helpfulness": 5, "issue": "none"})
    label = CuratedLabel.objects.get()
    assert label.method == "consensus" and label.decided_by is None
    assert label.answers == {"correct": True, "helpfulness": 4, "issue": "none"}
    assert set(label.reviews.all()) == {first, second}
    assert label.schema_version == 1
    assert label.agreement["questions"]["helpfulness"]["values"] == [4, 5]
    assert label.agreement["questions"]["correct"]["pairwise_agreement"] == 1.0
    assert not Adjudication.objects.exists()
    assert AuditEvent.objects.filter(action="curation.consensus", target_id=str(label.pk), actor=None).exists()


def test_a_tie_goes_to_adjudication_with_the_disagreeing_questions(pair, reviewer, reviewer2):
    submit(pair, reviewer, {"correct": True, "helpfulness": 4})
    submit(pair, reviewer2, {"correct": False, "helpfulness": 1})
    adjudication = Adjudication.objects.get()
    assert adjudication.status == "open" and adjudication.reason == "disagreement"
    assert adjudication.disagreements == [
        {"key": "correct", "reason": "tie: 1 x pass, 1 x fail"},
        {"key": "helpfulness", "reason": "spread 3 > 1 (1 to 4)"},
    ]
    assert not CuratedLabel.objects.exists()


def test_a_per_question_rule_is_respected(project, reviewer, reviewer2, curator):
    project = project_set_reviews_per_item(project=project, reviews_per_item=3, wait=True)
    make_items(project, 1)
    question_update(question=Question.objects.get(key="helpfulness"), max_spread=3)
    question_update(question=Question.objects.get(key="correct"), consensus_rule="unanimous")
    submit(project, reviewer, {"correct": True, "helpfulness": 5})
    submit(project, reviewer2, {"correct": True, "helpfulness": 2})
    submit(project, curator, {"correct": False, "helpfulness": 4})
    adjudication = Adjudication.objects.get()
    assert adjudication.disagreeing_keys == ["correct"]  # 2 of 3 is not unanimous; a spread of 3 is allowed


def test_editing_a_review_moves_an_item_between_consensus_and_adjudication(pair, reviewer, reviewer2):
    mine = submit(pair, reviewer, GOOD)
    submit(pair, reviewer2, {"correct": False, "helpfulness": 4})
    assert Adjudication.objects.filter(status="open").exists()

    review_edit(review=mine, user=reviewer, answers={"correct": False, "helpfulness": 4})
    label = CuratedLabel.objects.get()
    assert label.method == "consensus" and label.answers == {"correct": False, "helpfulness": 4}
    assert not Adjudication.objects.exists()  # the reviews agree now: nothing left to decide

    review_edit(review=mine, user=reviewer, answers={"correct": False, "helpfulness": 5})
    label.refresh_from_db()
    assert label.version == 2 and label.answers["helpfulness"] == 4  # recomputed, still the lower median
    revision = CuratedLabelRevision.objects.get(label=label)
    assert revision.answers == {"correct": False, "helpfulness": 4} and revision.replaced_by is None

    review_edit(review=mine, user=reviewer, answers={"correct": True, "helpfulness": 5})
    assert not CuratedLabel.objects.exists()  # no longer backed by its reviews
    assert Adjudication.objects.get().disagreeing_keys == ["correct"]
    withdrawn = AuditEvent.objects.get(action="curation.consensus_withdraw")
    assert withdrawn.data["answers"] == {"correct": False, "helpfulness": 4}


def test_a_comment_only_edit_leaves_the_label_alone(pair, reviewer, reviewer2):
    mine = submit(pair, reviewer, GOOD)
    submit(pair, reviewer2, GOOD)
    review_edit(review=mine, user=reviewer, answers=GOOD, comment="clearer now")
    label = CuratedLabel.objects.get()
    assert label.version == 1 and not label.revisions.exists()


def open_adjudication(project: Project, reviewer: Any, reviewer2: Any) -> tuple[Adjudication, Review]:
    mine = submit(project, reviewer, {"correct": True, "helpfulness": 4}, comment="fine")
    submit(project, reviewer2, {"correct": False, "helpfulness": 3}, comment="wrong plan name")
    return Adjudication.objects.get(), mine


def test_a_curator_decides_and_the_label_says_who_and_from_which_reviews(pair, reviewer, reviewer2, curator):
    adjudication, _ = open_adjudication(pair, reviewer, reviewer2)
    label = adjudication_decide(
        item=adjudication.item,
        user=curator,
        expected_version=adjudication.version,
        answers={"correct": False, "helpfulness": 3, "issue": "wrong"},
        expected_response="Open Settings, then Reset password.",
        expected_facts=["Reset link valid 1 hour", " "],
        rationale="The plan name is wrong.",
    )
    label.refresh_from_db()
    assert label.method == "adjudicated" and label.decided_by == curator
    assert label.answers == {"correct": False, "helpfulness": 3, "issue": "wrong"}
    assert label.expected_response == "Open Settings, then Reset password."
    assert label.expected_facts == ["Reset link valid 1 hour"]
    assert label.rationale == "The plan name is wrong."
    assert set(label.reviews.values_list("reviewer__username", flat=True)) == {"rita", "rob"}
    assert label.agreement["questions"]["correct"]["agreed"] is False
    adjudication.refresh_from_db()
    assert adjudication.status == "decided" and adjudication.decided_at is not None
    event = AuditEvent.objects.get(action="adjudication.decide")
    assert event.actor == curator and event.data["answers"]["correct"] is False
    assert event.data["disagreements"] == ["correct"]  # 4 and 3 are within the spread


def test_expectations_go_into_their_questions_when_the_schema_has_them(pair, reviewer, reviewer2, curator):
    question_create(project=pair, key="ideal", title="Ideal", kind="expected_response", required=False)
    adjudication, _ = open_adjudication(pair, reviewer, reviewer2)
    label = adjudication_decide(
        item=adjudication.item,
        user=curator,
        expected_version=adjudication.version,
        answers={"correct": True, "helpfulness": 4},
        expected_response="  Use the link.  ",
    )
    assert label.answers["ideal"] == "Use the link." and label.expected_response == "Use the link."


def test_a_decision_is_checked_like_a_review_and_nothing_is_written(pair, reviewer, reviewer2, curator):
    adjudication, _ = open_adjudication(pair, reviewer, reviewer2)
    with pytest.raises(ValidationFailed) as failed:
        adjudication_decide(
            item=adjudication.item,
            user=curator,
            expected_version=adjudication.version,
            answers={"helpfulness": 9},
            expected_facts="not a list",  # a text is split into lines, so it is fine
        )
    assert {e["field"] for e in failed.value.errors} == {"answers.correct", "answers.helpfulness"}
    assert not CuratedLabel.objects.exists()
    assert Adjudication.objects.get().status == "open"


def test_a_stale_decision_is_refused(pair, reviewer, reviewer2, curator):
    other = member(pair, "curator", username="carl")
    adjudication, mine = open_adjudication(pair, reviewer, reviewer2)
    loaded = adjudication.version
    adjudication_decide(item=adjudication.item, user=other, expected_version=loaded, answers=GOOD)
    with pytest.raises(AlreadyDecided, match="carl already decided this item"):
        adjudication_decide(item=adjudication.item, user=curator, expected_version=loaded, answers=GOOD)
    label = CuratedLabel.objects.get()
    assert label.decided_by == other and label.version == 1

    # The reviews behind a decision change: the decision stays, is flagged, and is queued again.
    decided_version = Adjudication.objects.get().version
    review_edit(review=mine, user=reviewer, answers={"correct": False, "helpfulness": 1})
    label.refresh_from_db()
    assert label.method == "adjudicated" and label.answers == GOOD and label.reviews_changed_at is not None
    adjudication.refresh_from_db()
    assert adjudication.status == "open" and adjudication.reason == "reviews_changed"
    assert AuditEvent.objects.filter(action="adjudication.reopen").count() == 1
    with pytest.raises(ReviewsChanged):
        adjudication_decide(item=adjudication.item, user=curator, expected_version=decided_version, answers=GOOD)

    label = adjudication_decide(
        item=adjudication.item,
        user=curator,
        expected_version=adjudication.version,
        answers={"correct": False, "helpfulness": 2},
    )
    assert label.decided_by == curator and label.reviews_changed_at is None and label.version == 2
    assert label.revisions.get().decided_by == other


def test_a_review_of_an_agreed_item_after_it_was_sent_back_counts_no_more(pair, reviewer, reviewer2):
    mine = submit(pair, reviewer, GOOD)
    submit(pair, reviewer2, GOOD)
    Review.objects.filter(pk=mine.pk).update(returned_at=mine.submitted_at)  # as item_send_back does
    curation_item_update(item=mine.item)
    assert not CuratedLabel.objects.exists() and not Adjudication.objects.exists()


# --- question-set versions -------------------------------------------------------------------------


def test_questions_change_in_place_until_a_review_answers_them(project):
    assert project.schema_version == 1
    question_create(project=project, key="notes", title="Notes", kind="text", required=False)
    project.refresh_from_db()
    assert project.schema_version == 1
    snapshot = SchemaVersion.objects.get(project=project, version=1).questions
    assert [q["key"] for q in snapshot] == ["correct", "helpfulness", "issue", "notes"]
    assert snapshot[0]["consensus_rule"] == "majority" and snapshot[1]["max_spread"] == 1


def test_a_schema_change_after_reviews_starts_a_new_version_and_old_reviews_keep_theirs(project, reviewer):
    make_items(project, 2)
    old = submit(project, reviewer, GOOD)
    question_create(project=project, key="ideal", title="Ideal", kind="expected_response", required=False)
    assert project.schema_version == 2  # the caller's object follows
    project.refresh_from_db()
    assert project.schema_version == 2
    old.refresh_from_db()
    assert old.schema_version == 1
    assert [q["key"] for q in SchemaVersion.objects.get(project=project, version=1).questions] == [
        "correct",
        "helpfulness",
        "issue",
    ]
    assert SchemaVersion.objects.get(project=project, version=2).questions[-1]["key"] == "ideal"
    new = submit(project, reviewer, GOOD)
    assert new.schema_version == 2

    # Presentation and combining rules change the current version in place...
    question_update(question=Question.objects.get(project=project, key="issue"), order=9, max_spread=2)
    project.refresh_from_db()
    assert project.schema_version == 2
    # ...what a reviewer is asked does not, once the version has reviews.
    question_update(question=Question.objects.get(project=project, key="issue"), title="Main issue")
    question_delete(question=Question.objects.get(project=project, key="ideal"))
    project.refresh_from_db()
    assert project.schema_version == 3  # the delete changed v3 in place: it had no reviews yet
    assert list(SchemaVersion.objects.filter(project=project).values_list("version", flat=True)) == [1, 2, 3]
    assert "ideal" not in [q["key"] for q in SchemaVersion.objects.get(project=project, version=3).questions]
    assert AuditEvent.objects.filter(action="schema.version").count() == 2


def test_question_changes_are_validated(project):
    helpfulness = Question.objects.get(project=project, key="helpfulness")
    with pytest.raises(ValidationFailed) as failed:
        question_update(question=helpfulness, key="helpful")
    assert failed.value.errors[0]["field"] == "key"
    with pytest.raises(ValidationFailed) as failed:
        question_update(question=helpfulness, consensus_rule="union")
    assert failed.value.errors[0]["field"] == "consensus_rule"
    with pytest.raises(ValidationFailed):
        question_update(question=helpfulness, max_spread=11)
    with pytest.raises(ValidationFailed):
        question_create(project=project, key="x", title="X", kind="pass_fail", consensus_rule="median")
    helpfulness.refresh_from_db()
    assert helpfulness.consensus_rule == "" and helpfulness.max_spread == 1
    # Changing the kind drops a rule the new kind cannot use.
    correct = Question.objects.get(project=project, key="correct")
    question_update(question=correct, consensus_rule="unanimous")
    question_update(question=correct, kind="rating", options={"min": 1, "max": 3})
    correct.refresh_from_db()
    assert correct.consensus_rule == "" and correct.effective_consensus_rule == "median"


def test_consensus_only_combines_reviews_of_one_version(pair, reviewer, reviewer2):
    submit(pair, reviewer, GOOD)
    question_create(project=pair, key="notes", title="Notes", kind="text", required=False)
    submit(pair, reviewer2, GOOD)
    adjudication = Adjudication.objects.get()
    assert adjudication.reason == "mixed_versions" and adjudication.schema_version is None
    assert not CuratedLabel.objects.exists()


def test_an_edit_with_new_answers_moves_a_review_to_the_current_version(pair, reviewer, reviewer2):
    mine = submit(pair, reviewer, GOOD)
    theirs = submit(pair, reviewer2, GOOD)
    assert CuratedLabel.objects.get().schema_version == 1
    question_create(project=pair, key="notes", title="Notes", kind="text", required=False)
    review_edit(review=theirs, user=reviewer2, answers=GOOD, comment="only the comment")
    theirs.refresh_from_db()
    assert theirs.schema_version == 1 and CuratedLabel.objects.exists()
    review_edit(review=mine, user=reviewer, answers={**GOOD, "notes": "ok"})
    mine.refresh_from_db()
    assert mine.schema_version == 2
    assert Adjudication.objects.get().reason == "mixed_versions"
    assert not CuratedLabel.objects.exists()


# --- concurrency (PostgreSQL) ----------------------------------------------------------------------

RACES = 12


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_two_reviews_finishing_an_item_at_once_are_combined_exactly_once(project, reviewer, reviewer2):
    """Each item's two last reviews are submitted at the same instant from two connections; every
    item must end with exactly one outcome (a consensus label, or an open adjudication)."""
    import threading

    from django.db import connection

    project = project_set_reviews_per_item(project=project, reviews_per_item=2, wait=True)
    make_items(project, RACES)
    problems: list[str] = []
    for n, item in enumerate(Item.objects.filter(project=project).order_by("id")):
        # Both reviewers hold a slot of the same item (as queue_next leaves them), then submit at once.
        leases = list(Assignment.objects.filter(item=item).order_by("slot"))
        for lease, user in zip(leases, (reviewer, reviewer2), strict=True):
            lease.reviewer, lease.leased_at, lease.expires_at = (
                user,
                timezone.now(),
                timezone.now() + timedelta(hours=1),
            )
            lease.save(update_fields=["reviewer", "leased_at", "expires_at"])
        # Even items: both pass (consensus). Odd items: pass against fail (adjudication).
        answers = [GOOD, GOOD if n % 2 == 0 else {"correct": False, "helpfulness": 4}]
        start = threading.Barrier(2)

        def run(lease: Any, user: Any, given: dict[str, Any], start: threading.Barrier) -> None:
            try:
                start.wait(timeout=10)
                review_submit(assignment_id=lease.pk, user=user, answers=given)
            except Exception as exc:  # a thread's failure must fail the test
                problems.append(repr(exc))
            finally:
                connection.close()

        threads = [
            threading.Thread(target=run, args=args)
            for args in zip(leases, (reviewer, reviewer2), answers, (start, start), strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert problems == []
    labels = dict(CuratedLabel.objects.values_list("item_id", "method"))
    open_items = set(Adjudication.objects.filter(status="open").values_list("item_id", flat=True))
    assert len(labels) + len(open_items) == RACES and not set(labels) & open_items
    assert len(labels) == RACES // 2 and set(labels.values()) == {"consensus"}
    assert all(CuratedLabel.objects.get(item_id=i).reviews.count() == 2 for i in labels)
