"""The demo project, its label schema (one question of every kind) and the demo logins."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_SLUG = "support-assistant"
PROJECT_NAME = "Support assistant"
PROJECT_DESCRIPTION = (
    "Answers from Lumen's customer-support assistant (a RAG chain over the Lumen help centre), "
    "versions 1 and 2 side by side. Lumen is a fictional team note-taking and knowledge-base SaaS."
)
REVIEWS_PER_ITEM = 2  # two reviewers per item, so agreement can be measured
GUIDELINES = (Path(__file__).resolve().parent / "guidelines.md").read_text(encoding="utf-8")

ISSUE_CHOICES = ["none", "incorrect", "ungrounded", "incomplete", "unsafe"]
TONE_CHOICES = ["clear", "friendly", "too long", "too terse", "robotic"]

# Arguments for services.projects.question_create, in display order.
QUESTIONS: list[dict[str, Any]] = [
    {
        "key": "correct",
        "title": "Is the answer correct?",
        "kind": "pass_fail",
        "instructions": "Pass only if everything that matters is right according to the retrieved excerpts.",
    },
    {
        "key": "helpfulness",
        "title": "How helpful is it for the customer?",
        "kind": "rating",
        "options": {"min": 1, "max": 5, "min_label": "Useless or harmful", "max_label": "Fully resolves it"},
    },
    {
        "key": "issue",
        "title": "Main issue",
        "kind": "choice",
        "instructions": "The one problem that hurts the customer most.",
        "options": {"choices": ISSUE_CHOICES},
    },
    {
        "key": "tone",
        "title": "Tone",
        "kind": "multi_choice",
        "instructions": "Tick every word that fits.",
        "options": {"choices": TONE_CHOICES},
    },
    {
        "key": "notes",
        "title": "Notes",
        "kind": "text",
        "required": False,
        "consensus_rule": "skip",  # free notes never block a curated label
        "instructions": "Anything the next reviewer or the engineers should know.",
    },
    {
        "key": "expected_response",
        "title": "Expected response",
        "kind": "expected_response",
        "assessment_type": "expectation",
        "required": False,
        "instructions": "How the ideal answer reads, grounded in the excerpts.",
    },
    {
        "key": "expected_facts",
        "title": "Expected facts",
        "kind": "expected_facts",
        "assessment_type": "expectation",
        "required": False,
        "instructions": "One fact per line that any good answer must contain.",
    },
    {
        "key": "chunk_relevance",
        "title": "Relevance of each retrieved excerpt",
        "kind": "context_relevance",
        "required": False,
        "instructions": "Rate the retrieval, not the answer.",
        "options": {"min": 0, "max": 2, "min_label": "Irrelevant", "max_label": "Answers the question"},
    },
]


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    role: str
    superuser: bool = False

    @property
    def email(self) -> str:
        return f"{self.username}@example.com"


# Weak on purpose and printed on screen: the load_demo command refuses to run outside DEBUG/TESTING.
DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("reviewer", "reviewer", "reviewer"),
    DemoUser("curator", "curator", "curator"),
    DemoUser("engineer", "engineer", "engineer"),
    DemoUser("admin", "admin", "admin", superuser=True),
)
