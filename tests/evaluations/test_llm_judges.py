"""LLM judges end to end: real client, local chat servers, the judge cache, faults, custom scorer modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluations.models import JudgeCacheEntry
from evaluations.scorers.llm_judges import PROMPTS, judge_answer_parse, judge_params_validate, judge_rows
from evaluations.scorers.registry import Score, ScoreInput, scorer_get
from tests.fakes.databricks_api import FakeDatabricks
from tests.fakes.http import Reply
from tests.fakes.openai_chat import FakeChatServer

ROOT = Path(__file__).resolve().parents[2]
KEY_ENV = "REVIEWDESK_SECRET_TEST_JUDGE_KEY"
CONTEXT = [{"doc_uri": "kb/billing/refunds.md", "content": "Annual plans are refundable within 14 days."}]


def row(response: str, **fields: object) -> ScoreInput:
    values: dict[str, object] = {
        "request": "Can I get a refund on my annual plan?",
        "response": response,
        "retrieved_context": CONTEXT,
        "expected_facts": ["Annual plans are refundable in full within 14 days of purchase."],
    }
    values.update(fields)
    return ScoreInput(**values)  # type: ignore[arg-type]


def declared(server: FakeChatServer, name: str = "judge", **overrides: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "name": name,
        "kind": "openai_compatible",
        "url": server.base_url,
        "model": server.model,
        "credential_env": KEY_ENV,
        "timeout_seconds": 2,
        "max_retries": 2,
        "max_concurrency": 4,
        "backoff_seconds": 0.01,
    }
    entry.update(overrides)
    return entry


@pytest.fixture
def server(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeChatServer]:  # type: ignore[no-untyped-def]
    with FakeChatServer().running() as fake:
        monkeypatch.setenv(KEY_ENV, fake.token)
        settings.EVALUATION_ENDPOINTS = [declared(fake)]
        settings.EVALUATION_JUDGE_ENDPOINT = "judge"
        yield fake


@pytest.mark.django_db
def test_the_five_judges_are_registered_as_llm_judges_with_an_endpoint_param() -> None:
    for name in ("correctness", "groundedness", "relevance_to_query", "safety", "guideline"):
        spec = scorer_get(name)
        assert spec.source_type == "LLM_JUDGE"
        assert spec.direction == "bool"
        assert "endpoint" in spec.params
    assert scorer_get("guideline").params == {"endpoint": None, "guideline": None}


@pytest.mark.django_db
def test_a_judge_answers_yes_or_no_with_the_rationale(server: FakeChatServer) -> None:
    spec = scorer_get("correctness")

    good = spec.fn(row("Yes, within 14 days of purchase you get a full refund."), {"endpoint": None})
    bad = spec.fn(row("No refunds ever. [[no]]"), {"endpoint": None})

    assert good == Score(value=True, rationale="The fake judge found no 'no' marker.")
    assert bad == Score(value=False, rationale="The fake judge found a 'no' marker.")
    assert spec.judge(good, None).passed is True
    assert spec.judge(bad, None).passed is False


@pytest.mark.django_db
def test_each_judge_prompt_carries_what_it_judges(server: FakeChatServer) -> None:
    rows = [row("Refunds take 14 days.", guidelines=["Answer in one sentence."])]
    for name in PROMPTS:
        judge_rows(name=name, rows=rows, params={"endpoint": "judge"})
    calls = server.chat_calls()
    prompts = {name: call.json["messages"][1]["content"] for name, call in zip(PROMPTS, calls, strict=True)}

    assert all(call.json["temperature"] == 0 for call in server.chat_calls())
    assert all(call.json["messages"][0]["role"] == "system" for call in server.chat_calls())
    assert "Annual plans are refundable in full within 14 days of purchase." in prompts["correctness"]
    assert "[1] (kb/billing/refunds.md)\nAnnual plans are refundable within 14 days." in prompts["groundedness"]
    assert "Can I get a refund on my annual plan?" in prompts["relevance_to_query"]
    assert "Refunds take 14 days." in prompts["safety"]
    assert "- Answer in one sentence." in prompts["guideline"]


@pytest.mark.django_db
def test_a_chat_request_is_shown_to_the_judge_as_the_conversation(server: FakeChatServer) -> None:
    chat = {
        "messages": [
            {"role": "system", "content": "SECRET SYSTEM PROMPT"},
            {"role": "user", "content": "We are on Team."},
            {"role": "assistant", "content": "How can I help?"},
            {"role": "user", "content": "What does a new seat cost?"},
        ]
    }
    judge_rows(name="relevance_to_query", rows=[row("$8 a month.", request=chat)], params={})

    prompt = server.chat_calls()[0].json["messages"][1]["content"]
    assert "user: We are on Team.\nassistant: How can I help?\nuser: What does a new seat cost?" in prompt
    assert "SECRET SYSTEM PROMPT" not in prompt


@pytest.mark.django_db
def test_the_guideline_param_is_the_guideline(server: FakeChatServer) -> None:
    spec = scorer_get("guideline")

    score = spec.fn(row("Refunds within 14 days.", guidelines=["row guideline"]), {"guideline": "Cite the article."})

    assert score.value is True
    prompt = server.chat_calls()[0].json["messages"][1]["content"]
    assert "- Cite the article." in prompt
    assert "row guideline" not in prompt


@pytest.mark.django_db
def test_a_rerun_is_answered_from_the_cache(server: FakeChatServer) -> None:
    rows = [row(f"Answer {i}" + (" [[no]]" if i % 3 == 0 else "")) for i in range(12)]

    first = judge_rows(name="groundedness", rows=rows, params={})
    calls_after_first = len(server.chat_calls())
    second = judge_rows(name="groundedness", rows=rows, params={})

    assert calls_after_first == 12
    assert len(server.chat_calls()) == 12  # not one more call
    assert second == first
    assert [s.value for s in first] == [i % 3 != 0 for i in range(12)]
    assert (
        JudgeCacheEntry.objects.filter(judge="groundedness", prompt_version=PROMPTS["groundedness"].version).count()
        == 12
    )


@pytest.mark.django_db
def test_the_same_prompt_to_another_model_is_not_a_cache_hit(server: FakeChatServer, settings) -> None:  # type: ignore[no-untyped-def]
    with FakeChatServer(model="bigger-judge").running() as other:
        other.token = server.token
        settings.EVALUATION_ENDPOINTS = [declared(server), declared(other, name="judge-2")]
        rows = [row("Refunds within 14 days.")]

        judge_rows(name="safety", rows=rows, params={"endpoint": "judge"})
        judge_rows(name="safety", rows=rows, params={"endpoint": "judge-2"})
        judge_rows(name="safety", rows=rows, params={"endpoint": "judge-2"})

        assert len(server.chat_calls()) == 1
        assert len(other.chat_calls()) == 1
    assert JudgeCacheEntry.objects.count() == 2


@pytest.mark.django_db
def test_a_failing_row_is_marked_and_the_others_are_scored(server: FakeChatServer, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EVALUATION_ENDPOINTS = [declared(server, max_retries=0)]
    server.answer = lambda messages: (
        Reply(500, {"error": {"message": "boom"}}) if "explode" in messages[-1]["content"] else '{"value": "yes"}'
    )
    rows = [row("fine 1"), row("explode"), row("fine 2")]

    scores = judge_rows(name="safety", rows=rows, params={})

    assert [s.value for s in scores] == [True, None, True]
    assert scores[1].error == "endpoint 'judge': HTTP 500 (gave up after 1 attempts)"
    assert scores[1].rationale == ""
    # Errors are not cached: the next run asks again for that row only.
    judge_rows(name="safety", rows=rows, params={})
    assert len(server.chat_calls()) == 4


@pytest.mark.django_db
def test_a_judge_that_times_out_gives_an_errored_row(server: FakeChatServer, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EVALUATION_ENDPOINTS = [declared(server, timeout_seconds=0.2, max_retries=1)]
    server.latency = 0.5

    [score] = judge_rows(name="correctness", rows=[row("x")], params={})

    assert score.value is None
    assert score.error == "endpoint 'judge': no answer within 0.2 s (gave up after 2 attempts)"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("I think the answer is mostly fine.", "the judge's answer has no yes/no verdict: 'I think the answer"),
        ('{"value": "maybe", "rationale": "unsure"}', "no yes/no verdict"),
    ],
)
def test_a_judge_answer_without_a_verdict_gives_an_errored_row(server: FakeChatServer, answer: str, error: str) -> None:
    server.answer = lambda messages: answer

    [score] = judge_rows(name="correctness", rows=[row("x")], params={})

    assert score.value is None
    assert error in score.error
    assert not JudgeCacheEntry.objects.exists()


def test_the_answer_parser_is_forgiving_about_form_only() -> None:
    assert judge_answer_parse('{"value": "yes", "rationale": "ok"}') == (True, "ok")
    assert judge_answer_parse('```json\n{"value": "NO", "rationale": "contradicts"}\n```') == (False, "contradicts")
    assert judge_answer_parse('Here is my verdict: {"verdict": "fail", "reason": "r"} Thanks') == (False, "r")
    assert judge_answer_parse('{"value": true}') == (True, "")
    assert judge_answer_parse("{'value': 'yes', 'rationale': 'single quotes'}") == (True, "single quotes")
    assert judge_answer_parse("No. The response invents a fee.") == (False, "The response invents a fee.")
    with pytest.raises(ValueError, match="no yes/no verdict"):
        judge_answer_parse('{"score": 4}')
    with pytest.raises(ValueError, match="no yes/no verdict"):
        judge_answer_parse("Not sure.")


@pytest.mark.django_db
def test_rows_without_what_the_judge_needs_are_skipped_without_a_call(server: FakeChatServer) -> None:
    bare = row("x", retrieved_context=[], expected_facts=None)

    correctness = judge_rows(name="correctness", rows=[bare], params={})[0]
    groundedness = judge_rows(name="groundedness", rows=[bare], params={})[0]
    guideline = judge_rows(name="guideline", rows=[bare], params={})[0]

    assert correctness == Score(value=None, rationale="Not judged: the row has no expected_response or expected_facts.")
    assert groundedness.value is None and "no retrieved_context" in groundedness.rationale
    assert guideline.value is None and "no guideline" in guideline.rationale
    assert server.chat_calls() == []


@pytest.mark.django_db
def test_an_unknown_or_missing_endpoint_errors_every_row(server: FakeChatServer, settings) -> None:  # type: ignore[no-untyped-def]
    unknown = judge_rows(name="safety", rows=[row("a"), row("b")], params={"endpoint": "nope"})
    settings.EVALUATION_JUDGE_ENDPOINT = ""
    missing = judge_rows(name="safety", rows=[row("a")], params={})

    assert [s.error for s in unknown] == ["There is no endpoint named 'nope'."] * 2
    assert "REVIEWDESK_JUDGE_ENDPOINT" in missing[0].error
    assert server.chat_calls() == []


@pytest.mark.django_db
def test_judge_params_are_checked_at_save_time(server: FakeChatServer, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EVALUATION_ENDPOINTS = [
        declared(server),
        {"name": "candidate", "kind": "mlflow_model", "model": "models:/support-assistant/2"},
    ]

    assert judge_params_validate(name="safety", params={"endpoint": "judge"}) == []
    assert judge_params_validate(name="safety", params={"endpoint": "nope"})[0]["field"] == "params.endpoint"
    assert (
        "needs a chat endpoint" in judge_params_validate(name="safety", params={"endpoint": "candidate"})[0]["message"]
    )
    assert judge_params_validate(name="guideline", params={"guideline": 3})[0]["field"] == "params.guideline"


@pytest.mark.django_db
def test_concurrent_calls_stay_within_the_endpoint_limit(server: FakeChatServer) -> None:
    server.latency = 0.05
    rows = [row(f"answer {i}") for i in range(24)]

    scores = judge_rows(name="safety", rows=rows, params={})

    assert all(s.value is True for s in scores)
    assert server.max_in_flight == 4  # max_concurrency of the endpoint, reached and not exceeded


@pytest.mark.django_db
def test_a_databricks_serving_endpoint_can_be_the_judge(settings, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for key in list(os.environ):
        if key.startswith("DATABRICKS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "absent.cfg"))
    with FakeDatabricks().running() as fake:
        fake.add_chat_endpoint("judge-llm")
        monkeypatch.setenv("REVIEWDESK_SECRET_TEST_DBX_TOKEN", fake.token)
        settings.EVALUATION_ENDPOINTS = [
            {
                "name": "dbx",
                "kind": "databricks_serving",
                "url": fake.url,
                "endpoint_name": "judge-llm",
                "credential_env": "REVIEWDESK_SECRET_TEST_DBX_TOKEN",
                "timeout_seconds": 5,
            }
        ]

        scores = judge_rows(name="groundedness", rows=[row("ok"), row("made up [[no]]")], params={"endpoint": "dbx"})

        assert [s.value for s in scores] == [True, False]
        assert len(fake.invocations()) == 2
        assert all(call.json["messages"][0]["role"] == "system" for call in fake.invocations())


def test_a_team_scorer_module_named_in_the_environment_is_registered() -> None:
    env = {
        **os.environ,
        "REVIEWDESK_TESTING": "true",
        "DJANGO_SETTINGS_MODULE": "reviewapp.settings",
        "REVIEWDESK_SCORER_MODULES": "tests.evaluations.team_scorers",
    }
    code = (
        "import django, json; django.setup()\n"
        "from evaluations.scorers.registry import ScoreInput, scorer_get\n"
        "spec = scorer_get('mentions_lumen')\n"
        "score = spec.fn(ScoreInput(request='q', response='Lumen can do that.'), dict(spec.params))\n"
        "print(json.dumps([spec.source_type, spec.params, score.value, spec.judge(score, None).passed]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == ["CODE", {"word": "lumen"}, 1.0, True]


def test_a_missing_team_scorer_module_fails_loudly() -> None:
    env = {
        **os.environ,
        "REVIEWDESK_TESTING": "true",
        "DJANGO_SETTINGS_MODULE": "reviewapp.settings",
        "REVIEWDESK_SCORER_MODULES": "tests.evaluations.no_such_module",
    }
    code = "import django; django.setup()\nfrom evaluations.scorers.registry import scorer_list\nscorer_list()\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    assert proc.returncode != 0
    assert "No module named 'tests.evaluations.no_such_module'" in proc.stderr
