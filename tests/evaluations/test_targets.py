"""Generation targets: validation, stored responses, chat endpoints over real HTTP (MLflow: test_demo_rag)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from evaluations.endpoints import endpoint_create
from evaluations.scorers.registry import ScoreInput
from evaluations.targets import GeneratedResponse, responses_generate, target_validate
from pipelines.adapters.errors import PermanentPipelineError
from reviewapp.errors import ValidationFailed
from tests.fakes.http import Reply
from tests.fakes.openai_chat import FakeChatServer

KEY_ENV = "REVIEWDESK_SECRET_TEST_TARGET_KEY"


def errors_of(target: object) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        target_validate(target)  # type: ignore[arg-type]
    return {e["field"]: e["message"] for e in caught.value.errors}


@pytest.fixture
def server(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeChatServer]:  # type: ignore[no-untyped-def]
    with FakeChatServer(model="candidate-llm").running() as fake:
        monkeypatch.setenv(KEY_ENV, fake.token)
        settings.EVALUATION_ENDPOINTS = [
            {
                "name": "candidate",
                "kind": "openai_compatible",
                "url": fake.base_url,
                "model": fake.model,
                "credential_env": KEY_ENV,
                "timeout_seconds": 2,
                "max_retries": 1,
                "max_concurrency": 3,
                "backoff_seconds": 0.01,
            }
        ]
        yield fake


def test_valid_targets_come_back_canonical() -> None:
    assert target_validate({"kind": "stored"}) == {"kind": "stored"}
    assert target_validate({"kind": "mlflow_model", "model_uri": " models:/support-assistant/2 "}) == {
        "kind": "mlflow_model",
        "model_uri": "models:/support-assistant/2",
    }


@pytest.mark.parametrize(
    ("target", "field", "message"),
    [
        ({"kind": "mlflow_model"}, "target.model_uri", "models:/<name>/<version>"),
        ({"kind": "mlflow_model", "model_uri": "models:/support-assistant@champion"}, "target.model_uri", "alias"),
        ({"kind": "mlflow_model", "model_uri": "runs:/abc/model"}, "target.model_uri", "registered model version"),
        ({"kind": "magic"}, "target.kind", "stored, mlflow_model, endpoint"),
        ({"kind": "stored", "model_uri": "models:/a/1"}, "target.model_uri", "Unknown field"),
        ("stored", "target", "Give an object"),
    ],
)
def test_invalid_targets_name_the_bad_field(target: object, field: str, message: str) -> None:
    assert message in errors_of(target)[field]


def test_a_target_reports_every_bad_field_at_once() -> None:
    errors = errors_of({"kind": "mlflow_model", "model_uri": 7, "colour": "red"})

    assert errors == {
        "target.model_uri": (
            "Must be a registered model version, models:/<name>/<version> (a run pins the version; "
            "resolve an alias such as @champion to its version first)."
        ),
        "target.colour": "Unknown field: an mlflow_model target takes kind and model_uri.",
    }
    assert errors_of({"kind": "endpoint", "endpoint": "  "}) == {
        "target.endpoint": "Name an endpoint from the endpoint registry."
    }
    assert errors_of({}) == {"target.kind": "Use one of: stored, mlflow_model, endpoint."}


@pytest.mark.django_db
def test_an_endpoint_target_must_name_an_enabled_endpoint() -> None:
    endpoint_create(name="retired", kind="openai_compatible", url="http://x/v1", model="m", enabled=False)

    assert "no endpoint named 'nope'" in errors_of({"kind": "endpoint", "endpoint": "nope"})["target.endpoint"]
    assert "'retired' is disabled" in errors_of({"kind": "endpoint", "endpoint": "retired"})["target.endpoint"]
    assert "Name an endpoint" in errors_of({"kind": "endpoint"})["target.endpoint"]


def test_the_stored_target_returns_the_items_own_responses() -> None:
    rows = [
        ScoreInput(
            request="q1",
            response="a1",
            retrieved_context=[{"doc_uri": "d", "content": "c"}],
            metadata={"latency_ms": 812},
        ),
        ScoreInput(request="q2", response="a2"),
    ]

    assert responses_generate(target={"kind": "stored"}, rows=rows) == [
        GeneratedResponse("a1", [{"doc_uri": "d", "content": "c"}], 812.0),
        GeneratedResponse("a2", [], None),
    ]


@pytest.mark.django_db
def test_an_endpoint_target_asks_the_endpoint_for_each_request(server: FakeChatServer) -> None:
    server.answer = lambda messages: f"answer to: {messages[-1]['content']}"
    chat = {
        "messages": [
            {"role": "system", "content": "You are Lumen's assistant."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "How do refunds work?"},
        ]
    }
    rows = [ScoreInput(request="What is SSO?", response="old"), ScoreInput(request=chat, response="old")]

    generated = responses_generate(target={"kind": "endpoint", "endpoint": "candidate"}, rows=rows)

    assert [g.response for g in generated] == ["answer to: What is SSO?", "answer to: How do refunds work?"]
    assert all(g.error == "" and g.latency_ms is not None and g.retrieved_context is None for g in generated)
    sent = sorted((c.json["messages"] for c in server.chat_calls()), key=len)
    assert sent == [[{"role": "user", "content": "What is SSO?"}], chat["messages"]]
    assert {c.json["model"] for c in server.chat_calls()} == {"candidate-llm"}


@pytest.mark.django_db
def test_one_failing_request_does_not_sink_the_others(server: FakeChatServer) -> None:
    def answer(messages: list[dict[str, str]]) -> str | Reply:
        if "poison" in messages[-1]["content"]:
            return Reply(400, {"error": {"message": "This prompt was rejected by the content filter."}})
        return "fine"

    server.answer = answer
    rows = [ScoreInput(request=text, response="") for text in ("a", "poison", "b", "c")]

    generated = responses_generate(target={"kind": "endpoint", "endpoint": "candidate"}, rows=rows)

    assert [g.response for g in generated] == ["fine", "", "fine", "fine"]
    assert generated[1].error == ("endpoint 'candidate': HTTP 400: 'This prompt was rejected by the content filter.'")
    assert server.max_in_flight <= 3


@pytest.mark.django_db
def test_an_endpoint_down_after_retries_errors_each_row(server: FakeChatServer) -> None:
    server.fail_next(100, Reply(502, b"bad gateway"))

    generated = responses_generate(
        target={"kind": "endpoint", "endpoint": "candidate"}, rows=[ScoreInput(request="a", response="")]
    )

    assert generated[0].error == "endpoint 'candidate': HTTP 502 (gave up after 2 attempts)"


@pytest.mark.django_db
def test_a_target_whose_endpoint_went_away_fails_as_a_whole(server: FakeChatServer, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EVALUATION_ENDPOINTS = []

    with pytest.raises(PermanentPipelineError, match=r"target\.endpoint: There is no endpoint named 'candidate'"):
        responses_generate(
            target={"kind": "endpoint", "endpoint": "candidate"}, rows=[ScoreInput(request="a", response="")]
        )
