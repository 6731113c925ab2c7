"""The schema editor's draft: the questions as the page's form holds them, before they are saved.

The whole draft travels in the form (``count`` and ``q-<i>-<field>``), so adding, moving and
removing questions and the live preview need no server-side state and work without JavaScript.
``document()`` is the draft as a schema document for ``services.schema`` (which checks it);
``preview_questions()`` is the draft as unsaved Question rows for the review form's partials.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

from reviewapp.errors import FieldError
from reviewapp.models import Item, Question
from reviewapp.models.projects import CONSENSUS_RULE_ORDER
from reviewapp.services.schema import EXPECTATION_KINDS, MAX_QUESTIONS, question_spec_of

Kind = Question.Kind
SCALE_KINDS = frozenset({Kind.RATING, Kind.CONTEXT_RELEVANCE})
CHOICE_KINDS = frozenset({Kind.CHOICE, Kind.MULTI_CHOICE})
SCALE_DEFAULTS = {Kind.RATING: (1, 5), Kind.CONTEXT_RELEVANCE: (0, 2)}
# What a new question of each kind starts with, so its preview shows something sensible at once.
NEW_TITLES = {
    Kind.PASS_FAIL: "Is the answer correct?",
    Kind.RATING: "How helpful is the answer?",
    Kind.CHOICE: "What is the main problem?",
    Kind.MULTI_CHOICE: "Which problems does it have?",
    Kind.TEXT: "Notes",
    Kind.EXPECTED_RESPONSE: "Expected response",
    Kind.EXPECTED_FACTS: "Expected facts",
    Kind.CONTEXT_RELEVANCE: "Relevance of each retrieved chunk",
}
NEW_CHOICES = ["none", "wrong", "incomplete"]


@dataclass
class DraftQuestion:
    key: str
    title: str
    kind: str
    instructions: str = ""
    assessment_type: str = "feedback"
    required: bool = True
    consensus_rule: str = ""  # "" = the kind's default
    max_spread: str = "1"
    min: str = ""
    max: str = ""
    min_label: str = ""
    max_label: str = ""
    choices: str = ""  # one per line
    saved: bool = False  # the key exists in the saved schema (it cannot change)
    focus: str = ""  # which of its controls gets the keyboard after a re-render (title, up, down, remove)
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def all_errors(self) -> list[str]:
        return [f"{name or 'question'}: {m}" if name else m for name, ms in self.errors.items() for m in ms]

    def options(self) -> dict[str, Any]:
        if self.kind in SCALE_KINDS:
            lo, hi = SCALE_DEFAULTS[Kind(self.kind)]
            opts: dict[str, Any] = {"min": _int(self.min, lo), "max": _int(self.max, hi)}
            if self.min_label.strip():
                opts["min_label"] = self.min_label.strip()
            if self.max_label.strip():
                opts["max_label"] = self.max_label.strip()
            return opts
        if self.kind in CHOICE_KINDS:
            return {"choices": [line.strip() for line in self.choices.splitlines() if line.strip()]}
        return {}

    def spec(self) -> dict[str, Any]:
        return {
            "key": self.key.strip(),
            "title": self.title,
            "kind": self.kind,
            "instructions": self.instructions,
            "assessment_type": self.assessment_type,
            "required": self.required,
            "options": self.options(),
            "consensus_rule": self.consensus_rule or None,
            "max_spread": _int(self.max_spread, self.max_spread),
        }

    def rules(self) -> tuple[str, ...]:
        return CONSENSUS_RULE_ORDER.get(self.kind, ())

    def rule_choices(self) -> list[tuple[str, str]]:
        """The consensus rules that fit the kind, with what each does."""
        labels = dict(Question.ConsensusRule.choices)
        return [(rule, f"{rule}: {labels[rule]}") for rule in self.rules()]

    def fit_kind(self) -> None:
        """After a change of kind: a rule that no longer fits goes back to the default, and the new
        kind's options start from sensible values."""
        if self.consensus_rule not in self.rules():
            self.consensus_rule = ""
        if self.kind in SCALE_KINDS and not (self.min.strip() and self.max.strip()):
            lo, hi = SCALE_DEFAULTS[Kind(self.kind)]
            self.min, self.max = str(lo), str(hi)
        if self.kind in CHOICE_KINDS and not self.choices.strip():
            self.choices = "\n".join(NEW_CHOICES)
        if self.kind in EXPECTATION_KINDS:
            self.assessment_type = "expectation"


def _int(value: str, default: Any) -> Any:
    try:
        return int(str(value).strip())
    except ValueError:
        return value if str(value).strip() else default


def draft_from_questions(questions: Iterable[Question]) -> list[DraftQuestion]:
    out = []
    for question in questions:
        spec = question_spec_of(question)
        opts = spec["options"]
        out.append(
            DraftQuestion(
                key=spec["key"],
                title=spec["title"],
                kind=spec["kind"],
                instructions=spec["instructions"],
                assessment_type=spec["assessment_type"],
                required=spec["required"],
                consensus_rule=question.consensus_rule,
                max_spread=str(spec["max_spread"]),
                min=str(opts.get("min", "")),
                max=str(opts.get("max", "")),
                min_label=str(opts.get("min_label", "")),
                max_label=str(opts.get("max_label", "")),
                choices="\n".join(map(str, opts.get("choices", []))),
                saved=True,
            )
        )
    return out


def draft_from_post(data: QueryDict, *, saved_keys: set[str]) -> list[DraftQuestion]:
    try:
        count = min(int(data.get("count", "0")), MAX_QUESTIONS + 1)
    except ValueError:
        count = 0
    out = []
    for i in range(max(count, 0)):
        prefix = f"q-{i}-"
        if f"{prefix}kind" not in data:
            continue
        key = data.get(f"{prefix}key", "").strip()
        out.append(
            DraftQuestion(
                key=key,
                title=data.get(f"{prefix}title", ""),
                kind=data.get(f"{prefix}kind", ""),
                instructions=data.get(f"{prefix}instructions", ""),
                assessment_type=data.get(f"{prefix}assessment_type", "feedback"),
                required=data.get(f"{prefix}required") == "on",
                consensus_rule=data.get(f"{prefix}consensus_rule", ""),
                max_spread=data.get(f"{prefix}max_spread", "1"),
                min=data.get(f"{prefix}min", ""),
                max=data.get(f"{prefix}max", ""),
                min_label=data.get(f"{prefix}min_label", ""),
                max_label=data.get(f"{prefix}max_label", ""),
                choices=data.get(f"{prefix}choices", ""),
                saved=key in saved_keys and data.get(f"{prefix}saved") == "1",
            )
        )
    return out


def draft_new_question(kind: str, existing: list[DraftQuestion]) -> DraftQuestion:
    """A blank question of ``kind`` with a key not yet used (the curator may change it before saving)."""
    kind = kind if kind in Kind.values else Kind.PASS_FAIL
    taken = {q.key for q in existing}
    n, key = 1, kind
    while key in taken:
        n += 1
        key = f"{kind}_{n}"
    question = DraftQuestion(
        key=key,
        title=NEW_TITLES[Kind(kind)],
        kind=kind,
        assessment_type="expectation" if kind in EXPECTATION_KINDS else "feedback",
        required=kind not in (Kind.TEXT, Kind.EXPECTED_RESPONSE, Kind.EXPECTED_FACTS),
    )
    if kind in SCALE_KINDS:
        lo, hi = SCALE_DEFAULTS[Kind(kind)]
        question.min, question.max = str(lo), str(hi)
    if kind in CHOICE_KINDS:
        question.choices = "\n".join(NEW_CHOICES)
    return question


def draft_document(draft: list[DraftQuestion]) -> dict[str, Any]:
    return {"questions": [q.spec() for q in draft]}


def draft_add_errors(draft: list[DraftQuestion], errors: Iterable[FieldError]) -> list[str]:
    """Attach a refusal's errors to the questions they name; returns those about the whole document."""
    general = []
    for error in errors:
        index = error.get("index")
        if index is not None and 0 <= index < len(draft):
            draft[index].errors.setdefault(error.get("field", ""), []).append(error.get("message", ""))
        else:
            general.append(error.get("message", ""))
    return general


def preview_questions(draft: list[DraftQuestion]) -> list[Question]:
    """The draft as unsaved rows, shaped as the review form reads them (best effort while invalid)."""
    questions = []
    for i, q in enumerate(draft):
        kind = q.kind if q.kind in Kind.values else Kind.TEXT
        options = q.options()
        if kind in SCALE_KINDS:
            lo, hi = SCALE_DEFAULTS[Kind(kind)]
            low, high = options.get("min"), options.get("max")
            if not (isinstance(low, int) and isinstance(high, int)) or not 0 < high - low <= 10:
                options.update(min=lo, max=hi)
        if kind in CHOICE_KINDS:
            options["choices"] = list(dict.fromkeys(options.get("choices", [])))[:9]
        questions.append(
            Question(
                key=q.key or f"question-{i + 1}",
                title=q.title or "(untitled)",
                kind=kind,
                instructions=q.instructions,
                required=q.required,
                order=i + 1,
                options=options,
            )
        )
    return questions


def sample_item() -> Item:
    """An unsaved item for the preview when the project has none yet."""
    return Item(
        request="How do I reset my password?",
        response="Open **Settings**, choose *Security* and then *Reset password*. A link arrives by mail.",
        retrieved_context=[
            {"doc_uri": "docs/account.md", "content": "Passwords are reset from Settings → Security."},
            {"doc_uri": "docs/billing.md", "content": "Invoices are sent on the first day of each month."},
        ],
    )


def draft_apply_op(draft: list[DraftQuestion], op: str, add_kind: str = "") -> list[DraftQuestion]:
    """Add, move, remove or refit a question of the draft (``op``: ``add``, ``up:<i>``, ``down:<i>``,
    ``remove:<i>``, ``refresh:<i>`` after its kind changed)."""
    name, _, arg = op.partition(":")
    if name == "add":
        if len(draft) < MAX_QUESTIONS:
            draft.append(draft_new_question(add_kind, draft))
        return draft
    try:
        i = int(arg)
    except ValueError:
        return draft
    if not 0 <= i < len(draft):
        return draft
    if name == "refresh":
        draft[i].fit_kind()
    elif name == "remove":
        del draft[i]
    elif name == "up" and i > 0:
        draft[i - 1], draft[i] = draft[i], draft[i - 1]
    elif name == "down" and i < len(draft) - 1:
        draft[i + 1], draft[i] = draft[i], draft[i + 1]
    return draft
