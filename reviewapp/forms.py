"""Forms of the browser UI: they parse posted fields and shape them for templates.

They do not validate answers: ``services.answers.answers_validate`` is the one place that knows
the rules, and its ``ValidationFailed.errors`` are attached back here, next to each question.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, cast

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.http import QueryDict
from django.utils import timezone

from reviewapp.errors import FieldError
from reviewapp.models import ApiToken, Item, Question
from reviewapp.models.projects import QueueMode
from reviewapp.selectors.items import ItemQuery

Kind = Question.Kind
RADIO_KINDS = {Kind.PASS_FAIL, Kind.RATING, Kind.CHOICE}
TEXT_KINDS = {Kind.TEXT, Kind.EXPECTED_RESPONSE, Kind.EXPECTED_FACTS}
_CHUNK_FIELD = re.compile(r"^answers\.(?P<key>[-\w]+)\[(?P<index>\d+)\]$")


@dataclass
class Option:
    value: str
    label: str
    key: str  # keyboard shortcut shown next to the option ("" when it has none)
    checked: bool = False


@dataclass
class QuestionField:
    question: Question
    options: list[Option] = field(default_factory=list)
    text: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.question.key

    @property
    def kind(self) -> str:
        return self.question.kind

    @property
    def name(self) -> str:
        return f"answers.{self.question.key}"

    @property
    def min_label(self) -> str:
        return str((self.question.options or {}).get("min_label", ""))

    @property
    def max_label(self) -> str:
        return str((self.question.options or {}).get("max_label", ""))

    @property
    def scale_text(self) -> str:
        """Like '0 = off topic … 2 = relevant', or just the range without labels."""
        scale = _scale(self.question)
        lo, hi = scale[0], scale[-1]
        if self.min_label or self.max_label:
            return f"{lo} = {self.min_label or lo} … {hi} = {self.max_label or hi}"
        return f"{lo}\N{EN DASH}{hi}"


@dataclass
class Chunk:
    """One retrieved chunk, with its relevance control when the schema asks for one."""

    index: int
    doc_uri: str
    content: str
    relevance_name: str = ""
    relevance: list[Option] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _digit(value: int) -> str:
    return str(value) if 0 <= value <= 9 else ""


def _scale(question: Question) -> range:
    opts = question.options or {}
    lo, hi = (1, 5) if question.kind == Kind.RATING else (0, 2)
    return range(int(opts.get("min", lo)), int(opts.get("max", hi)) + 1)


def _options(question: Question, selected: Any) -> list[Option]:
    chosen = set(selected) if isinstance(selected, list) else {selected}
    if question.kind == Kind.PASS_FAIL:
        pairs = [("true", "Pass", "y"), ("false", "Fail", "n")]
    elif question.kind == Kind.RATING:
        pairs = [(str(n), str(n), _digit(n)) for n in _scale(question)]
    else:
        choices = (question.options or {}).get("choices", [])
        pairs = [(str(c), str(c), _digit(i + 1)) for i, c in enumerate(choices)]
    return [Option(value=v, label=label, key=k, checked=v in chosen) for v, label, k in pairs]


def raw_from_answer(question: Question, value: Any) -> Any:
    """A stored (typed) answer as the strings the form fields hold."""
    if value is None:
        return None
    if question.kind == Kind.PASS_FAIL:
        return "true" if value is True else "false" if value is False else str(value)
    if question.kind == Kind.MULTI_CHOICE:
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if question.kind == Kind.EXPECTED_FACTS:
        return "\n".join(map(str, value)) if isinstance(value, list) else str(value)
    if question.kind == Kind.CONTEXT_RELEVANCE:
        return ["" if v is None else str(v) for v in value] if isinstance(value, list) else []
    return str(value)


def _chunk_parts(raw: Any) -> tuple[str, str]:
    if isinstance(raw, Mapping):
        return str(raw.get("doc_uri") or ""), str(raw.get("content") or "")
    return "", str(raw)


class ReviewAnswersForm:
    """The answers to one item: built from a POST, from a stored review, or blank for a new item."""

    def __init__(
        self,
        *,
        questions: list[Question],
        item: Item,
        data: QueryDict | None = None,
        answers: Mapping[str, Any] | None = None,
        comment: str = "",
    ) -> None:
        self.questions = questions
        self.item = item
        self.non_field_errors: list[str] = []
        chunks = item.retrieved_context or []
        if data is not None:
            self.raw = self._raw_from_post(data, n_chunks=len(chunks))
            self.comment = data.get("comment", "")
        else:
            # A new item's expected response starts empty: an expectation is only what a person wrote
            # or explicitly took over ("start from the model's answer", key m), never a silent copy.
            self.raw = {q.key: raw_from_answer(q, (answers or {}).get(q.key)) for q in questions}
            self.comment = comment
        self.time_on_task_ms = _int_or_none(data.get("time_on_task_ms")) if data is not None else None
        self.fields = [self._field(q) for q in questions]
        relevance = next((q for q in questions if q.kind == Kind.CONTEXT_RELEVANCE), None)
        self.chunks: list[Chunk] = []
        for i, raw_chunk in enumerate(chunks):
            doc_uri, content = _chunk_parts(raw_chunk)
            chunk = Chunk(index=i, doc_uri=doc_uri, content=content)
            if relevance is not None:
                values = self.raw.get(relevance.key) or []
                current = values[i] if i < len(values) else ""
                chunk.relevance_name = f"answers.{relevance.key}[{i}]"
                chunk.relevance = [
                    Option(value=str(n), label=str(n), key=_digit(n), checked=str(n) == current)
                    for n in _scale(relevance)
                ]
            self.chunks.append(chunk)

    def _raw_from_post(self, data: QueryDict, *, n_chunks: int) -> dict[str, Any]:
        raw: dict[str, Any] = {}
        for q in self.questions:
            name = f"answers.{q.key}"
            if q.kind == Kind.MULTI_CHOICE:
                raw[q.key] = data.getlist(name)
            elif q.kind == Kind.CONTEXT_RELEVANCE:
                raw[q.key] = [data.get(f"{name}[{i}]", "") for i in range(n_chunks)]
            else:
                raw[q.key] = data.get(name)
        return raw

    def _field(self, question: Question) -> QuestionField:
        value = self.raw.get(question.key)
        f = QuestionField(question=question)
        if question.kind in RADIO_KINDS or question.kind == Kind.MULTI_CHOICE:
            f.options = _options(question, value)
        elif question.kind in TEXT_KINDS:
            f.text = value or ""
        return f

    @property
    def answers(self) -> dict[str, Any]:
        """The posted answers in the shape ``review_submit`` takes; unanswered questions are left out."""
        out: dict[str, Any] = {}
        for q in self.questions:
            value = self.raw.get(q.key)
            if q.kind == Kind.PASS_FAIL and value in ("true", "false"):
                out[q.key] = value == "true"
            elif q.kind == Kind.CONTEXT_RELEVANCE:
                if any(v not in (None, "") for v in value or []):
                    out[q.key] = [None if v in (None, "") else v for v in value or []]
            elif value not in (None, "", []):
                out[q.key] = value
        return out

    def add_errors(self, errors: Iterable[FieldError]) -> None:
        """Attach a service's field errors to the questions (and chunks) they name."""
        by_key = {f.key: f for f in self.fields}
        for error in errors:
            name, message = error.get("field", ""), error.get("message", "")
            chunk_match = _CHUNK_FIELD.match(name)
            if chunk_match and int(chunk_match["index"]) < len(self.chunks):
                self.chunks[int(chunk_match["index"])].errors.append(message)
                continue
            key = name.removeprefix("answers.")
            if name.startswith("answers.") and key in by_key:
                by_key[key].errors.append(message)
            else:
                self.non_field_errors.append(message)

    @property
    def relevance_field(self) -> QuestionField | None:
        return next((f for f in self.fields if f.kind == Kind.CONTEXT_RELEVANCE), None)

    @property
    def has_errors(self) -> bool:
        return bool(self.non_field_errors) or any(f.errors for f in self.fields) or any(c.errors for c in self.chunks)


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(float(value)) if value else None
    except (TypeError, ValueError, OverflowError):  # "inf" too
        return None


def _choice_field(form: forms.BaseForm, name: str) -> forms.ChoiceField:
    """One of ``form``'s choice fields (``form.fields`` knows each only as a Field)."""
    return cast(forms.ChoiceField, form.fields[name])


class BulkAssignForm(forms.Form):
    """The curators' "assign by filter" form; ``item_query()`` gives its ItemQuery."""

    ACTIONS = [
        ("assign", "Assign to the reviewers and/or group below"),
        ("unassign", "Unassign (anyone may take them in a shared pool)"),
        ("priority", "Only set the priority"),
    ]
    ids = forms.CharField(required=False, label="Item ids", help_text="Separated by commas or spaces.")
    model_version = forms.CharField(required=False, max_length=100)
    source = forms.CharField(required=False, max_length=100)
    metadata = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="key=value, one per line; all must match."
    )
    created_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    created_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="Inclusive.")
    action = forms.ChoiceField(choices=ACTIONS, initial="assign", widget=forms.RadioSelect)
    reviewers = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    group = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    priority = forms.IntegerField(required=False, help_text="Higher is reviewed first; leave empty to keep it.")

    def __init__(
        self,
        *args: Any,
        reviewers: Iterable[str] = (),
        groups: Iterable[tuple[int, str]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        _choice_field(self, "reviewers").choices = [(name, name) for name in reviewers]
        _choice_field(self, "group").choices = [("", "No group"), *groups]

    @property
    def filter_fields(self) -> list[forms.BoundField]:
        """The one-line fields, laid out in a grid by the template."""
        return [self[name] for name in ("ids", "model_version", "source", "created_from", "created_to", "priority")]

    def clean_ids(self) -> tuple[int, ...] | None:
        raw = self.cleaned_data["ids"].replace(",", " ").split()
        if not raw:
            return None
        if not all(part.isdigit() for part in raw):
            raise forms.ValidationError("Give whole numbers separated by commas or spaces.")
        return tuple(int(part) for part in raw)

    def clean_metadata(self) -> dict[str, str]:
        pairs: dict[str, str] = {}
        for line in self.cleaned_data["metadata"].splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise forms.ValidationError(f"Not key=value: {line.strip()!r}.")
            pairs[key.strip()] = value.strip()
        return pairs

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        action = data.get("action")
        if action == "assign" and not data.get("reviewers") and data.get("group") is None:
            self.add_error("reviewers", "Pick reviewers or a group to assign to.")
        if action == "priority" and data.get("priority") is None:
            self.add_error("priority", "Give the priority to set.")
        return data

    def item_query(self) -> ItemQuery:
        data = self.cleaned_data

        def start_of(day: date | None) -> datetime | None:
            return timezone.make_aware(datetime.combine(day, time.min)) if day else None

        return ItemQuery(
            ids=data["ids"],
            model_version=data["model_version"] or None,
            source=data["source"] or None,
            metadata=data["metadata"],
            created_from=start_of(data["created_from"]),
            created_to=start_of(data["created_to"] + timedelta(days=1)) if data["created_to"] else None,
        )


class QueueSettingsForm(forms.Form):
    queue_mode = forms.ChoiceField(choices=QueueMode.choices, widget=forms.RadioSelect)
    gold_rate = forms.FloatField(min_value=0.0, max_value=1.0, help_text="0 to 1, e.g. 0.05 for one lease in 20.")
    lease_seconds = forms.IntegerField(
        min_value=30, max_value=24 * 3600, help_text="How long a reviewer holds an item, in seconds."
    )
    # Blind review (admins only: disabled for curators, who see them).
    show_model_to_reviewers = forms.BooleanField(
        required=False,
        label="Show models to reviewers",
        help_text="Off (blind): reviewers never see an item's model, version, trace id, source or external id.",
    )
    sibling_spacing = forms.IntegerField(
        min_value=0,
        max_value=1000,
        help_text="Other items a reviewer gets between two answers to the same request (0: off).",
    )

    def __init__(self, *args: Any, can_manage: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.can_manage = can_manage
        if not can_manage:
            for name in ("show_model_to_reviewers", "sibling_spacing"):
                self.fields[name].disabled = True

    def settings(self) -> dict[str, Any]:
        """The cleaned settings this user may change (admins' ones only for admins)."""
        data = dict(self.cleaned_data)
        if not self.can_manage:
            data.pop("show_model_to_reviewers", None)
            data.pop("sibling_spacing", None)
        return data


class ReviewerGroupForm(forms.Form):
    name = forms.CharField(max_length=100)
    members = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, reviewers: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choice_field(self, "members").choices = [(name, name) for name in reviewers]


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"placeholder": "e.g. ingest from CI"}))
    scopes = forms.MultipleChoiceField(choices=ApiToken.Scope.choices, widget=forms.CheckboxSelectMultiple)
    project = forms.ChoiceField(required=False, help_text="Optional: the token then works only on this project.")

    def __init__(self, *args: Any, projects: Iterable[tuple[str, str]] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choice_field(self, "project").choices = [("", "All my projects"), *projects]


class ThrottledLoginMixin:
    """Refuse sign-ins while their username or address is slowed down or locked
    (services.login_throttle), and count failures. For the app's and the admin's login forms."""

    request: Any
    cleaned_data: dict[str, Any]

    def clean(self) -> dict[str, Any]:
        from reviewapp.services.login_throttle import (
            login_throttle_check,
            login_throttle_failed,
            login_throttle_succeeded,
        )

        username = str(self.data.get("username") or "")  # type: ignore[attr-defined]
        ip = self.request.META.get("REMOTE_ADDR") if self.request is not None else None
        refusal = login_throttle_check(username=username, ip=ip)
        if refusal is not None:
            raise forms.ValidationError(refusal.message, code="throttled")
        try:
            cleaned = super().clean()  # type: ignore[misc]
        except forms.ValidationError as exc:
            if getattr(exc, "code", None) == "invalid_login":
                login_throttle_failed(username=username, ip=ip)
            raise
        login_throttle_succeeded(username=username)
        return cleaned


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass
