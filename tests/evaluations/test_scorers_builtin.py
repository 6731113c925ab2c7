"""Built-in code scorers on hand-made rows, edge cases included (empty context, chat requests)."""

from __future__ import annotations

from typing import Any

import pytest

from evaluations.scorers import builtin
from evaluations.scorers.builtin import LABELED_CONTEXT_KEY, iban_valid, luhn_valid, pii_find
from evaluations.scorers.registry import Score, ScoreInput, scorer_get, scorer_list

CONTEXT = [
    {"doc_uri": "kb/account.md", "content": "Passwords are reset from Settings, under Security."},
    {"doc_uri": "kb/billing.md", "content": "Invoices are emailed on the first day of each month."},
]
CHAT = {
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "When are invoices sent?"},
        {"role": "assistant", "content": "Monthly."},
        {"role": "user", "content": "On which day of the month are invoices emailed?"},
    ]
}


def row(response: str = "", **fields: Any) -> ScoreInput:
    values: dict[str, Any] = {
        "request": "How do I reset my password?",
        "response": response,
        "retrieved_context": CONTEXT,
    }
    values.update(fields)
    return ScoreInput(**values)


def score(name: str, r: ScoreInput, threshold: float | None = None, **params: Any) -> Score:
    """Run a registered scorer the way the runner does: defaults merged with params, then the verdict."""
    spec = scorer_get(name)
    return spec.judge(spec.fn(r, {**spec.params, **params}), threshold)


def test_every_builtin_is_registered_as_code() -> None:
    names = {s.name for s in scorer_list() if s.fn.__module__ == builtin.__name__}
    assert names == {
        "exact_match",
        "normalised_match",
        "token_f1",
        "expected_facts_coverage",
        "lexical_groundedness",
        "context_relevance",
        "retrieval_precision",
        "retrieval_recall",
        "pii",
        "unsafe_content",
        "response_length",
        "latency",
    }
    assert all(scorer_get(n).source_type == "CODE" for n in names)


# --- against the expected response -------------------------------------------------------------


def test_exact_match_ignores_only_surrounding_whitespace() -> None:
    assert score("exact_match", row(" Reset it. ", expected_response="Reset it.")) == Score(
        True, "Identical.", passed=True
    )
    assert score("exact_match", row("reset it.", expected_response="Reset it.")).passed is False


def test_normalised_match_ignores_case_punctuation_articles_and_accents() -> None:
    r = row("The café is OPEN!", expected_response="a cafe is open")
    assert score("normalised_match", r).passed is True
    assert score("exact_match", r).passed is False
    assert score("normalised_match", row("The café is closed", expected_response="a cafe is open")).passed is False


@pytest.mark.parametrize("expected", [None, "", "   "])
def test_without_an_expected_response_the_match_scorers_say_why(expected: str | None) -> None:
    for name in ("exact_match", "normalised_match", "token_f1"):
        result = score(name, row("anything", expected_response=expected))
        assert result.value is None and result.passed is None and not result.error
        assert "No expected response" in result.rationale


def test_token_f1_is_squad_f1() -> None:
    # got: open settings choose reset (4); want: open settings then reset password (5); common 3
    result = score(
        "token_f1", row("Open the Settings, choose Reset.", expected_response="Open Settings then reset password")
    )
    precision, recall = 3 / 4, 3 / 5
    assert result.value == pytest.approx(2 * precision * recall / (precision + recall), abs=1e-4)
    assert result.passed is True  # default threshold 0.5
    assert score("token_f1", row("Nothing in common", expected_response="Open settings")).value == 0.0
    assert score("token_f1", row("", expected_response="Open settings")).value == 0.0
    assert score("token_f1", row("x", expected_response="Open settings"), threshold=0.9).passed is False


def test_expected_facts_coverage_counts_facts_found_and_names_the_missing() -> None:
    r = row(
        "Passwords are reset from Settings. Invoices arrive monthly.",
        expected_facts=["Passwords are reset in Settings", "A reset link expires after 24 hours", "  "],
    )
    result = score("expected_facts_coverage", r)
    assert result.value == 0.5
    assert "1 of 2 facts found" in result.rationale and "expires after 24 hours" in result.rationale
    assert result.passed is False  # default threshold: every fact
    assert score("expected_facts_coverage", r, threshold=0.5).passed is True


def test_expected_facts_coverage_matches_word_forms_and_respects_the_fact_threshold() -> None:
    r = row("You can reset passwords in the settings page.", expected_facts=["Password resetting happens in Settings"])
    assert score("expected_facts_coverage", r).value == 1.0  # reset(ting)/password(s)/setting(s)
    assert (
        score("expected_facts_coverage", row("Settings.", expected_facts=["Password reset in Settings"])).value == 0.0
    )
    loose = score(
        "expected_facts_coverage", row("Settings.", expected_facts=["Password reset in Settings"]), fact_threshold=0.3
    )
    assert loose.value == 1.0


def test_expected_facts_coverage_without_facts_is_not_applicable() -> None:
    for facts in (None, [], ["", " "]):
        result = score("expected_facts_coverage", row("x", expected_facts=facts))
        assert result.value is None and "No expected facts" in result.rationale


# --- RAG --------------------------------------------------------------------------------------


def test_groundedness_is_the_share_of_supported_sentences() -> None:
    r = row(
        "**Passwords** are reset from Settings, under Security.\n"
        "- Invoices are emailed on the first day of the month.\n"
        "Our office in Paris answers phone calls at night.\n"
        "Hope this helps!"
    )
    result = score("lexical_groundedness", r)
    assert result.value == pytest.approx(2 / 3, abs=1e-4)  # the greeting is too short to judge
    assert "Paris" in result.rationale
    assert result.passed is False  # default threshold 0.8


def test_groundedness_pools_chunks_so_a_sentence_may_combine_two() -> None:
    result = score("lexical_groundedness", row("Passwords are reset in Settings and invoices are emailed monthly."))
    assert result.value == 1.0 and result.passed is True


@pytest.mark.parametrize(
    ("context", "response", "why"),
    [
        ([], "Passwords are reset from Settings.", "No retrieved context"),
        ([{"doc_uri": "a", "content": "  "}], "Passwords are reset from Settings.", "No retrieved context"),
        (CONTEXT, "", "Empty response"),
        (CONTEXT, "Yes. Sure!", "No sentence"),
    ],
)
def test_groundedness_without_context_or_sentences_is_not_applicable(
    context: list[Any], response: str, why: str
) -> None:
    result = score("lexical_groundedness", row(response, retrieved_context=context))
    assert result.value is None and result.passed is None and why in result.rationale


def test_context_relevance_is_the_mean_overlap_of_chunks_with_the_request() -> None:
    result = score("context_relevance", row("x"))
    # request content words: reset, password; chunk 1 has both, chunk 2 neither
    assert result.value == 0.5
    assert "1.00, 0.00" in result.rationale


def test_context_relevance_of_a_chat_uses_the_last_user_turn() -> None:
    result = score("context_relevance", row("x", request=CHAT))
    # last turn: day, month, invoice, emailed -> chunk 2 has all four, chunk 1 none
    assert result.value == 0.5 and "last user turn" in result.rationale


@pytest.mark.parametrize(
    ("request_value", "context", "why"),
    [
        ("How do I reset my password?", [], "No retrieved context"),
        ({"messages": [{"role": "system", "content": "be nice"}]}, CONTEXT, "no user turn"),
        ("Is it that?", CONTEXT, "no content words"),
    ],
)
def test_context_relevance_edge_cases(request_value: Any, context: list[Any], why: str) -> None:
    result = score("context_relevance", row("x", request=request_value, retrieved_context=context))
    assert result.value is None and why in result.rationale


# --- retrieval against human per-chunk labels ----------------------------------------------------


def labelled(ratings: list[int | None], **fields: Any) -> ScoreInput:
    return row("x", human={"chunks": ratings, "correct": True}, **fields)


def test_retrieval_precision_and_recall_from_human_chunk_labels() -> None:
    r = labelled([2, 0])
    precision = score("retrieval_precision", r, human_question="chunks")
    assert precision.value == 0.5 and precision.passed is True
    recall = score("retrieval_recall", r, human_question="chunks")
    assert recall.value == 1.0 and "1 of 1 relevant" in recall.rationale


def test_relevant_min_and_top_k() -> None:
    r = labelled([1, 2])
    assert score("retrieval_precision", r, human_question="chunks").value == 1.0
    assert score("retrieval_precision", r, human_question="chunks", relevant_min=2).value == 0.5
    # only the first chunk retrieved in the top 1: it is relevant at >= 2? no; recall of the relevant one (chunk 2) is 0
    assert score("retrieval_recall", r, human_question="chunks", relevant_min=2, k=1).value == 0.0


def test_generated_context_is_matched_to_labelled_chunks_by_document_and_text() -> None:
    """A generation target retrieved other chunks: labels follow the chunks they were given for."""
    other = {"doc_uri": "kb/other.md", "content": "Unrelated."}
    r = row(
        "x",
        retrieved_context=[other, CONTEXT[1]],
        human={"chunks": [2, 0], LABELED_CONTEXT_KEY: CONTEXT},
    )
    precision = score("retrieval_precision", r, human_question="chunks")
    assert precision.value == 0.0 and "1 retrieved chunks have no label" in precision.rationale
    assert score("retrieval_recall", r, human_question="chunks").value == 0.0  # the relevant chunk was missed


@pytest.mark.parametrize(
    ("human", "why"),
    [
        (None, "No curated per-chunk relevance labels"),
        ({"correct": True}, "No curated per-chunk relevance labels"),
        ({"chunks": [2]}, "The labels cover 1 chunks but 2 were retrieved"),
        ({"chunks": [None, None]}, "empty"),
    ],
)
def test_retrieval_scorers_without_usable_labels_say_why(human: Any, why: str) -> None:
    for name in ("retrieval_precision", "retrieval_recall"):
        result = score(name, row("x", human=human), human_question="chunks")
        assert result.value is None and why in result.rationale


def test_recall_when_humans_found_nothing_relevant_is_not_applicable() -> None:
    result = score("retrieval_recall", labelled([0, 0]), human_question="chunks")
    assert result.value is None and "nothing to recall" in result.rationale
    assert score("retrieval_precision", labelled([0, 0]), human_question="chunks").value == 0.0


def test_retrieval_scorers_need_the_question_named() -> None:
    result = score("retrieval_precision", labelled([2, 0]))
    assert result.value is None and "human_question" in result.rationale


# --- safety -----------------------------------------------------------------------------------


def test_luhn_and_iban_checks() -> None:
    assert luhn_valid("4242424242424242") and not luhn_valid("4242424242424241")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82 WEST 1234 5698 7654 33")


def test_pii_finds_emails_phones_valid_cards_and_ibans_and_masks_them() -> None:
    text = (
        "Write to jane.doe@example.com or call +44 20 7946 0958. Card 4242-4242-4242-4242 "
        "and IBAN DE89 3704 0044 0532 0130 00."
    )
    kinds = sorted(kind for kind, _ in pii_find(text))
    assert kinds == ["card", "email", "iban", "phone"]
    result = score("pii", row(text))
    assert result.value == 4 and result.passed is False
    assert "j***@example.com" in result.rationale and "4242-4242" not in result.rationale


@pytest.mark.parametrize(
    "text",
    [
        "Order 2024-01-15 shipped; version 1.2.3; plan costs 12 USD for 30 days.",
        "Card 4242 4242 4242 4241 is not a real number (fails Luhn).",
        "GB82 WEST 1234 5698 7654 33 has a bad checksum.",
        "Reset your password from Settings.",
    ],
)
def test_pii_ignores_look_alikes(text: str) -> None:
    result = score("pii", row(text))
    assert result.value == 0 and result.passed is True


def test_pii_kinds_param_narrows_the_search() -> None:
    assert score("pii", row("mail a@b.co, call 020 7946 0958"), kinds=["email"]).value == 1


def test_unsafe_content_flags_categories_and_custom_patterns() -> None:
    assert score("unsafe_content", row("Your password is: hunter22")).value == 1
    assert score("unsafe_content", row("Here is how to build a pipe bomb")).passed is False
    assert score("unsafe_content", row("The API key is sk-abcdefghijklmnopqrstuvwx")).value >= 1
    safe = score("unsafe_content", row("The password is stored encrypted; reset it from Settings."))
    assert safe.value == 0 and safe.passed is True
    custom = score("unsafe_content", row("Call our competitor Acme"), extra_patterns=[r"\bacme\b"])
    assert custom.value == 1 and "custom" in custom.rationale
    assert score("unsafe_content", row("Your password is: hunter22"), categories=["weapons"]).value == 0


# --- shape and speed --------------------------------------------------------------------------


def test_response_length_in_words_or_characters() -> None:
    assert score("response_length", row("**Open** the [Settings](http://x) page")).value == 4
    assert score("response_length", row("abc de"), unit="chars").value == 6
    assert score("response_length", row("one two three"), threshold=2).passed is False
    assert score("response_length", row("")).value == 0


def test_latency_reads_metadata_latency_ms() -> None:
    assert score("latency", row("x", metadata={"latency_ms": 1200})) == Score(1200.0, "1200 ms.", passed=True)
    assert score("latency", row("x", metadata={"latency_ms": 9000})).passed is False
    missing = score("latency", row("x", metadata={}))
    assert missing.value is None and "No latency_ms" in missing.rationale
    bad = score("latency", row("x", metadata={"latency_ms": "fast"}))
    assert bad.value is None and "not a number" in bad.error


def test_chat_requests_never_crash_a_scorer() -> None:
    r = row(
        "Invoices are emailed on the first day of each month.",
        request=CHAT,
        expected_response="On the first day of the month.",
        expected_facts=["Invoices are emailed on the first day"],
        human={"chunks": [0, 2]},
        metadata={"latency_ms": 10},
    )
    for spec in scorer_list():
        if spec.fn.__module__ != builtin.__name__:
            continue
        result = spec.judge(
            spec.fn(
                r, {**spec.params, "human_question": "chunks"} if "human_question" in spec.params else dict(spec.params)
            ),
            None,
        )
        assert isinstance(result, Score) and not result.error, spec.name
