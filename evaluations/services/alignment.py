"""Judge-human alignment: how far each scorer's pass/fail verdicts can be trusted.

For every scorer of a run whose suite entry names a ``human_question`` (a pass/fail question of
the project; by default the suite config's), the scorer's verdict on each item (``passed``) is
compared with the item's curated answer to that question (``CuratedLabel.answers``). Items
without a curated label, a curated answer, or a verdict (value missing or errored) are left out;
``n`` says how many remain. Reported: accuracy (share of agreeing items) with a 95% Wilson
interval, Cohen's kappa with a bootstrap interval (``reviewapp.agreement.cohen_kappa``),
and the 2x2 confusion matrix (judge verdict x human answer).

Only rows whose scored response is the response the humans reviewed count (the same content
hash, ``reviewapp.item_stats.content_hash``): a judge verdict on a freshly generated
answer says nothing about how the humans judged another answer. A run whose target regenerates
every answer differently therefore has no alignment figure: ``applicable`` is false and
``reason`` says "not applicable: humans reviewed different answers"; ``different_response``
counts the rows left out for that reason.

Disagreements are the items where a scorer's verdict differs from the curated answer, and —
among LLM judges that answer the same human question — items where those judges disagree with
each other (useful before any human label exists; code scorers measure different things, so
they are not expected to agree with each other). ``disagreements_send_to_review`` puts them in
front of people, simply:

- every such item gets ``Item.priority`` raised to ``priority`` (default 10; never lowered), through
  the team-review bulk-assignment service, which also moves the item's open review slots up the
  reviewers' queue;
- an item that already has a curated label (its reviews are done, so the queue no longer offers it)
  also gets a "needs an expert" flag for curators, whose note names the run and the scorers; a
  curator can then send reviews back for re-review or correct the label.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import transaction

from evaluations.models import Run, RunChunk, RunResult, RunRow
from evaluations.scorers.registry import scorer_get
from reviewapp.agreement import cohen_kappa
from reviewapp.item_stats import content_hash, wilson
from reviewapp.models import CuratedLabel, Flag, Item
from reviewapp.selectors.items import ItemQuery
from reviewapp.services.assignments import assignments_bulk_assign
from reviewapp.services.audit import audit_record
from reviewapp.services.flags import flag_create

DISAGREEMENT_PRIORITY = 10
NOT_APPLICABLE = "not applicable: humans reviewed different answers"


@dataclass(frozen=True)
class Alignment:
    scorer: str
    question: str  # the pass/fail question compared with
    n: int  # items with both a verdict and a curated answer
    agree: int
    accuracy: float | None
    accuracy_low: float | None
    accuracy_high: float | None
    kappa: float | None
    kappa_low: float | None
    kappa_high: float | None
    # judge verdict x human answer
    pass_pass: int = 0
    pass_fail: int = 0
    fail_pass: int = 0
    fail_fail: int = 0
    unlabelled: int = 0  # items with a verdict but no curated answer
    different_response: int = 0  # rows left out: the scored response is not the one humans reviewed
    applicable: bool = True
    reason: str = ""  # why there is no figure, when not applicable

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def confusion(self) -> dict[str, int]:
        return {
            "judge_pass_human_pass": self.pass_pass,
            "judge_pass_human_fail": self.pass_fail,
            "judge_fail_human_pass": self.fail_pass,
            "judge_fail_human_fail": self.fail_fail,
        }


def _questions(run: Run) -> dict[str, str]:
    """Scorer entry name -> the human question its verdicts are compared with."""
    return {str(e["name"]): str(e["human_question"]) for e in run.suite_version.scorers if e.get("human_question")}


def _judge_names(run: Run) -> set[str]:
    """Suite entries whose scorer is an LLM judge."""
    names = set()
    for entry in run.suite_version.scorers:
        try:
            if scorer_get(entry["scorer"]).source_type == "LLM_JUDGE":
                names.add(str(entry["name"]))
        except KeyError:
            continue
    return names


def _human_answers(run: Run, keys: set[str]) -> dict[int, dict[str, bool]]:
    """Curated pass/fail answers of the run's items, for the given question keys.

    A run over a dataset version compares with the answers the version snapshotted (on its chunks).
    """
    pairs: Any
    if run.dataset_version:
        pairs = (
            (int(item_id), (entry or {}).get("human"))
            for expectations in RunChunk.objects.filter(run=run).values_list("expectations", flat=True)
            for item_id, entry in (expectations or {}).items()
        )
    else:
        items = RunResult.objects.filter(run=run).values("item_id")
        pairs = CuratedLabel.objects.filter(project_id=run.project_id, item_id__in=items).values_list(
            "item_id", "answers"
        )
    answers: dict[int, dict[str, bool]] = {}
    for item_id, given in pairs:
        picked = {k: v for k, v in (given or {}).items() if k in keys and isinstance(v, bool)}
        if picked:
            answers[item_id] = picked
    return answers


def _verdicts(run: Run, names: list[str]) -> dict[str, dict[int, bool]]:
    out: dict[str, dict[int, bool]] = defaultdict(dict)
    rows = RunResult.objects.filter(run=run, scorer__in=names, passed__isnull=False, error="")
    for scorer, item_id, passed in rows.values_list("scorer", "item_id", "passed"):
        out[scorer][item_id] = passed
    return out


def regenerated_items(*, run: Run) -> set[int]:
    """Items whose scored response in this run is not the response the humans reviewed.

    A run over stored responses scores the items' own responses: none. A run whose target
    generates answers scores ``RunRow.response``; it counts as the reviewed answer only when its
    content hash equals the item's stored response's.
    """
    if (run.target or {}).get("kind", "stored") == "stored":
        return set()
    generated = RunRow.objects.filter(run=run).values_list("item_id", "response", "item__response")
    return {
        item_id
        for item_id, response, reviewed in generated.iterator(chunk_size=5000)
        if content_hash(response) != content_hash(reviewed)
    }


def alignment_compute(*, run: Run) -> dict[str, Alignment]:
    """Per scorer with a human question: agreement of its verdicts with the curated labels.

    Only on rows whose scored response is the reviewed one (see the module doc).
    """
    questions = _questions(run)
    if not questions:
        return {}
    humans = _human_answers(run, set(questions.values()))
    verdicts = _verdicts(run, list(questions))
    regenerated = regenerated_items(run=run)
    out: dict[str, Alignment] = {}
    for name, question in questions.items():
        pairs: list[tuple[bool, bool]] = []
        unlabelled = 0
        different = 0
        for item_id, passed in verdicts.get(name, {}).items():
            if item_id in regenerated:
                different += 1
                continue
            human = humans.get(item_id, {}).get(question)
            if human is None:
                unlabelled += 1
            else:
                pairs.append((passed, human))
        n = len(pairs)
        if not n and different:
            out[name] = Alignment(
                scorer=name,
                question=question,
                n=0,
                agree=0,
                accuracy=None,
                accuracy_low=None,
                accuracy_high=None,
                kappa=None,
                kappa_low=None,
                kappa_high=None,
                different_response=different,
                applicable=False,
                reason=NOT_APPLICABLE,
            )
            continue
        agree = sum(1 for judge, human in pairs if judge == human)
        low, high = wilson(agree, n) or (None, None)
        kappa = cohen_kappa(pairs)
        out[name] = Alignment(
            scorer=name,
            question=question,
            n=n,
            agree=agree,
            accuracy=agree / n if n else None,
            accuracy_low=low,
            accuracy_high=high,
            kappa=kappa.value,
            kappa_low=kappa.ci_low,
            kappa_high=kappa.ci_high,
            pass_pass=sum(1 for j, h in pairs if j and h),
            pass_fail=sum(1 for j, h in pairs if j and not h),
            fail_pass=sum(1 for j, h in pairs if not j and h),
            fail_fail=sum(1 for j, h in pairs if not j and not h),
            unlabelled=unlabelled,
            different_response=different,
        )
    return out


@dataclass(frozen=True)
class Disagreement:
    item_id: int
    with_humans: list[str] = field(default_factory=list)  # scorers whose verdict differs from the curated answer
    between_judges: list[str] = field(default_factory=list)  # scorers (same question) that split on the item

    def describe(self) -> str:
        parts = []
        if self.with_humans:
            parts.append(f"differs from the curated label: {', '.join(self.with_humans)}")
        if self.between_judges:
            parts.append(f"judges split: {', '.join(self.between_judges)}")
        return "; ".join(parts)


def disagreements_list(*, run: Run, scorers: list[str] | None = None) -> list[Disagreement]:
    """Items where a scorer disagrees with the curated label, or scorers of one question disagree."""
    questions = _questions(run)
    if scorers:
        questions = {k: v for k, v in questions.items() if k in scorers}
    if not questions:
        return []
    humans = _human_answers(run, set(questions.values()))
    verdicts = _verdicts(run, list(questions))
    regenerated = regenerated_items(run=run)
    with_humans: dict[int, list[str]] = defaultdict(list)
    between: dict[int, list[str]] = defaultdict(list)
    for name, question in questions.items():
        for item_id, passed in verdicts.get(name, {}).items():
            if item_id in regenerated:
                continue  # the humans judged another answer: no disagreement with them to report
            human = humans.get(item_id, {}).get(question)
            if human is not None and human != passed:
                with_humans[item_id].append(name)
    by_question: dict[str, list[str]] = defaultdict(list)
    judges = _judge_names(run)
    for name, question in questions.items():
        if name in judges:
            by_question[question].append(name)
    for names in by_question.values():
        if len(names) < 2:
            continue
        item_ids = set().union(*(verdicts.get(n, {}).keys() for n in names))
        for item_id in item_ids:
            given = {n: verdicts[n][item_id] for n in names if item_id in verdicts.get(n, {})}
            if len(set(given.values())) > 1:
                between[item_id].extend(sorted(given))
    return [
        Disagreement(item_id=pk, with_humans=with_humans.get(pk, []), between_judges=between.get(pk, []))
        for pk in sorted(set(with_humans) | set(between))
    ]


@dataclass(frozen=True)
class SendResult:
    items: int  # items with a disagreement
    prioritised: int  # items whose priority was raised
    flagged: int  # curated items flagged for curators


def disagreements_send_to_review(
    *, run: Run, actor: Any, scorers: list[str] | None = None, priority: int = DISAGREEMENT_PRIORITY
) -> SendResult:
    """Raise the priority of every disagreement item and flag the curated ones (see the module doc)."""
    found = disagreements_list(run=run, scorers=scorers)
    if not found:
        return SendResult(items=0, prioritised=0, flagged=0)
    ids = [d.item_id for d in found]
    with transaction.atomic():
        lower = list(
            Item.objects.filter(project=run.project, pk__in=ids, priority__lt=priority).values_list("pk", flat=True)
        )
        prioritised = 0
        if lower:
            result = assignments_bulk_assign(
                project=run.project,
                query=ItemQuery(ids=tuple(lower)),
                actor=actor,
                priority=priority,
                assign=False,
            )
            prioritised = result.priority_set
        curated = set(CuratedLabel.objects.filter(item_id__in=ids).values_list("item_id", flat=True))
        items = {i.pk: i for i in Item.objects.filter(pk__in=curated).select_related("project")}
        flagged = 0
        for d in found:
            if d.item_id in items:
                version = run.suite_version
                note = f"Evaluation run {run.pk} ({version.suite.name} v{version.number}): {d.describe()}."
                flag_create(item=items[d.item_id], user=actor, kind=Flag.Kind.NEEDS_EXPERT, note=note[:2000])
                flagged += 1
        audit_record(
            actor=actor,
            action="evaluation.disagreements_send",
            target=run,
            project=run.project,
            data={"items": len(ids), "prioritised": prioritised, "flagged": flagged, "priority": priority},
        )
    return SendResult(items=len(ids), prioritised=prioritised, flagged=flagged)
