"""The demo RAG chain: BM25, retrieval over the Lumen corpus, the two MLflow versions and how they compare."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from evaluations.scorers.registry import ScoreInput
from evaluations.targets import responses_generate
from pipelines.adapters import mlflow_registry
from pipelines.adapters.errors import PermanentPipelineError
from pipelines.demo_models import VARIANT_TAG, demo_passages
from pipelines.demo_rag.bm25 import BM25, tokenize
from pipelines.demo_rag.chain import VARIANTS, RagChain, sentences
from pipelines.wiring import mlflow_config
from reviewapp.demo.items import CASES

# mlflow 3.17.2's own SQLAlchemy store uses a deprecated loader option; not ours to fix.
# End to end: the demo chain logged to MLflow and run as a model target.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]

# An independent measure of answer quality (not the chain's own tokenizer): the share of each
# expected fact's content words that appear in the response, averaged over facts and cases.
WORD = re.compile(r"[a-z0-9$€£]+(?:[.,][0-9]+)*")
COMMON = set("the a an and or of to in on for is are be by with from can your you it its at as that this".split())


def content_words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if w not in COMMON}


def facts_recall(response: str, facts: tuple[str, ...]) -> float:
    said = content_words(response)
    return statistics.mean(len(content_words(f) & said) / len(content_words(f)) for f in facts)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Both demo versions logged to a fresh SQLite MLflow store, via the management command."""
    root: Path = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with override_settings(MLFLOW_TRACKING_URI=uri, MLFLOW_ARTIFACT_ROOT=str(root / "artifacts")):
        out = StringIO()
        call_command("log_demo_models", stdout=out)
        assert "models:/support-assistant/1 (variant v1): registered" in out.getvalue()
        assert "models:/support-assistant/2 (variant v2): registered" in out.getvalue()
        yield uri


def test_bm25_follows_the_okapi_formula() -> None:
    docs = ["refund annual plan", "annual invoice", "slack app install guide"]
    index = BM25(docs, k1=1.2, b=0.75)
    n, avgdl = 3, (3 + 2 + 4) / 3
    idf = math.log((n - 2 + 0.5) / (2 + 0.5) + 1)  # "annual" is in two documents

    expected = idf * 1 * (1.2 + 1) / (1 + 1.2 * (1 - 0.75 + 0.75 * 2 / avgdl))

    assert index.scores("annual")[1] == pytest.approx(expected)
    assert index.top("refund annual", 3)[0][0] == 0
    assert index.top("nothing matches", 3) == []
    assert tokenize("The refunds aren't Lumen's") == ["refund", "aren't", "lumen"]


def test_markdown_sections_split_into_plain_sentences() -> None:
    body = "Intro sentence. Second one!\n\n- **Team**: $8 per member.\n| a | b |\n|---|---|\n`code` here."
    assert sentences(body) == ["Intro sentence.", "Second one!", "Team: $8 per member.", "a ; b", "code here."]


@pytest.mark.parametrize(
    ("question", "article"),
    [
        ("I forgot to cancel our monthly plan and got charged. Can I get a refund?", "kb/billing/refunds.md"),
        ("How do I add our VAT number to our invoices?", "kb/billing/invoices-and-payments.md"),
        ("I lost my phone and can't pass two-factor authentication", "kb/account/two-factor-authentication.md"),
        ("What happens when we go over the API rate limit and get a 429?", "kb/api/rate-limits.md"),
        ("Can I keep editing pages offline on a plane?", "kb/offline/offline-mode.md"),
    ],
)
def test_retrieval_finds_the_right_article(question: str, article: str) -> None:
    chain = RagChain(demo_passages(), VARIANTS["v2"])
    assert chain.retrieve(question)[0][0].doc_uri == article


def test_v2_retrieves_a_cited_article_for_every_demo_question() -> None:
    chain = RagChain(demo_passages(), VARIANTS["v2"])
    misses = [
        case.key
        for case in CASES
        if not {p.doc_uri for p, _ in chain.retrieve(chain_query(case))} & {ref.split("#")[0] for ref in case.context}
    ]
    assert misses == []


def chain_query(case: object) -> str:
    from pipelines.demo_rag.chain import query_text

    return query_text(case.request_value(), "all_user")  # type: ignore[attr-defined]


def test_an_unanswerable_question_falls_back_to_a_handover() -> None:
    answer = RagChain(demo_passages(), VARIANTS["v2"]).answer("zzz qqq")
    assert answer == {
        "response": "I couldn't find this in the Lumen help centre. Would you like me to pass your question to a "
        "person on our support team?",
        "retrieved_context": [],
    }


@pytest.mark.slow
def test_the_registered_versions_load_and_answer_with_their_context(registry: str) -> None:
    with override_settings(MLFLOW_TRACKING_URI=registry):
        [v2] = mlflow_registry.pyfunc_predict(
            mlflow_config(),
            model_uri="models:/support-assistant/2",
            inputs=[{"request": "Monthly plan charged yesterday, can I get a refund?"}],
        )
        [v1] = mlflow_registry.pyfunc_predict(
            mlflow_config(),
            model_uri="models:/support-assistant/1",
            inputs=[{"request": "Monthly plan charged yesterday, can I get a refund?"}],
        )
        versions = mlflow_registry.model_versions_list(mlflow_config(), model_name="support-assistant")

    assert v2["response"].startswith("Monthly subscriptions are not refunded, including partial months. [1]")
    assert "Sources: [1] Refunds and cancellations — Monthly plans (kb/billing/refunds.md)" in v2["response"]
    assert len(v2["retrieved_context"]) == 3
    assert v2["retrieved_context"][0]["doc_uri"] == "kb/billing/refunds.md"
    assert len(v1["retrieved_context"]) == 1
    assert "[1]" not in v1["response"]
    assert [(v.version, v.tags[VARIANT_TAG]) for v in versions] == [("1", "v1"), ("2", "v2")]


def test_log_demo_models_is_idempotent(registry: str) -> None:
    with override_settings(MLFLOW_TRACKING_URI=registry):
        out = StringIO()
        call_command("log_demo_models", stdout=out)
        versions = mlflow_registry.model_versions_list(mlflow_config(), model_name="support-assistant")

    assert "models:/support-assistant/1 (variant v1): already registered" in out.getvalue()
    assert "models:/support-assistant/2 (variant v2): already registered" in out.getvalue()
    assert len(versions) == 2


def test_v2_beats_v1_on_expected_facts_through_the_mlflow_target(registry: str) -> None:
    rows = [ScoreInput(request=case.request_value(), response="") for case in CASES]
    with override_settings(MLFLOW_TRACKING_URI=registry):
        v1 = responses_generate(target={"kind": "mlflow_model", "model_uri": "models:/support-assistant/1"}, rows=rows)
        v2 = responses_generate(target={"kind": "mlflow_model", "model_uri": "models:/support-assistant/2"}, rows=rows)

    assert all(not g.error and g.retrieved_context and g.latency_ms is not None for g in v1 + v2)
    recall_v1 = statistics.mean(facts_recall(g.response, c.expected_facts) for g, c in zip(v1, CASES, strict=True))
    recall_v2 = statistics.mean(facts_recall(g.response, c.expected_facts) for g, c in zip(v2, CASES, strict=True))
    print(f"\nexpected-facts word recall over {len(CASES)} demo questions: v1 {recall_v1:.3f}, v2 {recall_v2:.3f}")
    assert recall_v2 > recall_v1 + 0.15


def test_a_missing_model_version_fails_the_whole_target(registry: str) -> None:
    with override_settings(MLFLOW_TRACKING_URI=registry), pytest.raises(PermanentPipelineError, match="not found"):
        responses_generate(
            target={"kind": "mlflow_model", "model_uri": "models:/support-assistant/9"},
            rows=[ScoreInput(request="hi", response="")],
        )


@pytest.mark.django_db
@pytest.mark.slow
def test_an_mlflow_model_endpoint_is_a_generation_target(registry: str, settings) -> None:  # type: ignore[no-untyped-def]
    settings.MLFLOW_TRACKING_URI = registry
    settings.EVALUATION_ENDPOINTS = [
        {"name": "candidate", "kind": "mlflow_model", "model": "models:/support-assistant/2"}
    ]
    chat = {"messages": [{"role": "user", "content": "We're on Team."}, {"role": "user", "content": "Add 3 seats?"}]}

    [generated] = responses_generate(
        target={"kind": "endpoint", "endpoint": "candidate"}, rows=[ScoreInput(request=chat, response="")]
    )

    assert not generated.error
    assert "[1]" in generated.response
    assert generated.retrieved_context and generated.retrieved_context[0]["doc_uri"] == "kb/billing/plans.md"
